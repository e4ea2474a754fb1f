"""What every qmmar tool shares: `--version`, and exits a script can trust.

Every tool's `main` runs its whole body (argument parsing included) through `tool_main`,
which turns the ways a run ends without a result into one line on stderr and a documented
exit code: Ctrl-C (130), a reader that closed the pipe (141, as a Unix tool killed by
SIGPIPE; also when the pipe breaks at the last flush, after --version, say), memory
exhausted (1), and a bug in qmmar (1, one line naming the exception; `QMMAR_TRACEBACK=1`
shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

from qmmar.cli.interrupt import EXIT_INTERRUPTED, Interruptible

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE

RECURSION_LIMIT = 10_000
"""xDSL parses, verifies and prints recursively, about 8 Python frames per nested region:
Python's default limit of 1000 stops at ~120 nested regions, this one at ~1200.  Deeper
still, frames of C (generators resumed by `Operation.walk`) could overflow the 8 MiB stack
(seen at 10000 regions with no limit), so the limit stays finite and a deeper program is a
located error."""


def version_format(prog: str) -> str:
    """`prog`'s --version line, with `{xdsl_version}` left for the moment it is printed
    (looking the installed version up takes ~35 ms: not on every start)."""
    from qmmar import __version__

    return f"{prog} {__version__} (xDSL {{xdsl_version}})"


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, prog: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit", **kwargs)
        self.prog = prog

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_format(self.prog).format(xdsl_version=version("xdsl")))
        parser.exit()


def add_version(parser: argparse.ArgumentParser, prog: str) -> None:
    parser.add_argument("--version", action=_Version, prog=prog)


def add_library(parser: argparse.ArgumentParser) -> None:
    """--library MODULE (repeatable): the modules defining the custom ops a PyTorch program calls."""
    parser.add_argument("--library", metavar="MODULE", action="append", default=[],
                        help="a Python module (a name or a .py file) that defines custom ops the program calls; "
                        "repeatable")  # fmt: skip


def check_writable(path: str, what: str = "the output") -> None:
    """Fail before the work, not after it, when `path` cannot be written."""
    from qmmar.dialects.diagnostics import LocatedError

    existed = os.path.exists(path)
    try:
        open(path, "ab").close()
    except OSError as err:
        raise LocatedError(path, f"cannot write {what}: {err.strerror}") from None
    if not existed:
        os.remove(path)


def tool_main(prog: str, body: Callable[[], int]) -> int:
    """Run a tool's body; whatever ends it early is one line on stderr and an exit code."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    code: int | None = None
    guard = Interruptible()
    try:
        with guard:
            code = _ended(prog, body, guard)
    except KeyboardInterrupt:  # raised by the body, or at its last step
        pass
    if code is not None and not guard.interrupted:
        return code
    if threading.active_count() > 1:
        # Rank threads are still inside native code (BLAS, torch): Python's shutdown would
        # wait on them or abort under them; end now, as the signal itself would have.  What
        # they print from here on (a progress line) goes nowhere: this line is the last.
        sys.stdout.flush()
        sys.stderr.flush()
        stderr = os.dup(2)
        nowhere = os.open(os.devnull, os.O_WRONLY)
        os.dup2(nowhere, 1)
        os.dup2(nowhere, 2)
        os.write(stderr, f"{prog}: interrupted\n".encode())
        os._exit(EXIT_INTERRUPTED)
    print(f"{prog}: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _ended(prog: str, body: Callable[[], int], guard: Interruptible) -> int | None:
    """The body's exit code, or the one of what ended it; None if a SIGINT did (its
    KeyboardInterrupt passes, or a library turned it into an error of its own)."""
    try:
        try:
            return body()
        finally:  # a closed pipe fails here at the latest (after --version, say), not at exit
            sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read stdout has gone (`| head -1`): stop quietly, and keep Python from
        # failing again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except MemoryError as err:
        print(f"{prog}: error: out of memory{f': {err}' if str(err) else ''}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:
        if guard.interrupted:
            return None
        if os.environ.get("QMMAR_TRACEBACK"):
            raise
        from qmmar.dialects.diagnostics import one_line

        print(f"{prog}: internal error: {type(err).__name__}: {one_line(err)} "
              "(a bug in qmmar; QMMAR_TRACEBACK=1 shows where)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE


def integer_at_least(lowest: int) -> Callable[[str], int]:
    """An argparse type: a whole number, at least `lowest` (else argparse's usage error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, got {value}")
        return value

    return parse
