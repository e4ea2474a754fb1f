"""What every qmmar tool shares: `--version`, and exits a script can trust.

Every tool's `main` runs its body through `tool_main`, which turns the ways a run ends
without a result into one line on stderr and a documented exit code: Ctrl-C (130), a reader
that closed the pipe (141, as a Unix tool killed by SIGPIPE), memory exhausted (1), and a
bug in qmmar (1, one line naming the exception; `QMMAR_TRACEBACK=1` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib.metadata import version

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE

RECURSION_LIMIT = 10_000
"""xDSL parses, verifies and prints recursively, about 8 Python frames per nested region:
Python's default limit of 1000 stops at ~120 nested regions, this one at ~1200.  Deeper
still, frames of C (generators resumed by `Operation.walk`) could overflow the 8 MiB stack
(seen at 10000 regions with no limit), so the limit stays finite and a deeper program is a
located error."""


def version_line(prog: str) -> str:
    from qmmar import __version__

    return f"{prog} {__version__} (xDSL {version('xdsl')})"


def add_version(parser: argparse.ArgumentParser, prog: str) -> None:
    parser.add_argument("--version", action="version", version=version_line(prog))


def tool_main(prog: str, body: Callable[[], int]) -> int:
    """Run a tool's body; whatever ends it early is one line on stderr and an exit code."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    try:
        return body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read stdout has gone (`| head -1`): stop quietly, and keep Python from
        # failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except MemoryError as err:
        print(f"{prog}: error: out of memory{f': {err}' if str(err) else ''}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:
        if os.environ.get("QMMAR_TRACEBACK"):
            raise
        print(f"{prog}: internal error: {type(err).__name__}: {err} "
              "(a bug in qmmar; QMMAR_TRACEBACK=1 shows where)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE
