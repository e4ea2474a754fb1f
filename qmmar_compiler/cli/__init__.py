"""The qmmar driver: command-line tools (argument parsing and exit codes only)."""
