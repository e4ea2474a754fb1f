"""The qmmar driver: command-line tools, interpreter, targets, xdsl.universe registration."""
