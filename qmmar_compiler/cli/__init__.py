"""The qmmar driver: command-line tools (argument parsing and exit codes only)."""

from qmmar.cli.interrupt import guard_start_up

guard_start_up()  # before a tool's modules load: see interrupt.py
