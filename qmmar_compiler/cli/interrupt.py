"""Ctrl-C at any moment of a tool's life is `TOOL: interrupted` and exit code 130.

A console script imports its tool (xDSL, numpy: about half a second) before `tool_main`
runs, and Python may swallow a KeyboardInterrupt raised where it cannot propagate (a weakref
callback, an import that a library wraps into its own error).  So SIGINT is handled in three
phases: while the tool's modules load, it ends the process at once (nothing is written yet);
while the body runs, it raises KeyboardInterrupt and is remembered, so that whatever the body
then ends with, the tool says `interrupted`; once the body has ended, it is only remembered,
and, in a tool's own process, ends it at once.  This module imports only the standard library,
so that the first phase starts before anything heavy loads.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType

EXIT_INTERRUPTED = 130  # 128 + SIGINT

_signalled = threading.Event()  # a SIGINT arrived while a body ran or ended
_raising = False  # whether a SIGINT raises KeyboardInterrupt now (a body runs)


def tool_process() -> bool:
    """Whether this process is one of qmmar's tools (a console script, or `python -m`), not a
    program that imports qmmar (a test, a notebook) and keeps its own Ctrl-C."""
    return (
        os.path.basename(sys.argv[0]).startswith("qmmar-")
        or sys.argv[0] == "-m"
        or (getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", "").startswith("qmmar.cli."))
    )


def _end_now(signum: int, frame: FrameType | None) -> None:
    os.write(2, f"{os.path.basename(sys.argv[0])}: interrupted\n".encode())
    os._exit(EXIT_INTERRUPTED)


def _while_running(signum: int, frame: FrameType | None) -> None:
    _signalled.set()
    if _raising:
        raise KeyboardInterrupt


def guard_start_up() -> None:
    """Phase one, in a tool's own process: Ctrl-C while its modules load ends it at once."""
    if tool_process() and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _end_now)


def _quiet_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """A KeyboardInterrupt that Python could not raise (in a weakref callback, say) is already
    remembered: the tool says `interrupted`, without Python's `Exception ignored` report."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _quiet_excepthook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    """The same for one that a C extension prints and replaces (numpy's `import_array` calls
    `PyErr_Print`, which calls this hook, and raises its own ImportError)."""
    if not isinstance(value, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)


class Interruptible:
    """Phases two and three around a tool's body (`with Interruptible(): ...`); `interrupted`
    says afterwards whether a SIGINT arrived, whatever the body ended with."""

    def __enter__(self) -> Interruptible:
        global _raising
        self._previous = signal.getsignal(signal.SIGINT), sys.unraisablehook, sys.excepthook
        _signalled.clear()
        signal.signal(signal.SIGINT, _while_running)
        sys.unraisablehook, sys.excepthook = _quiet_unraisable, _quiet_excepthook
        _raising = True
        return self

    def __exit__(self, *exc: object) -> None:
        global _raising
        _raising = False  # first: from here on a SIGINT is only remembered
        handler, sys.unraisablehook, sys.excepthook = self._previous
        signal.signal(signal.SIGINT, _end_now if tool_process() else handler)

    @property
    def interrupted(self) -> bool:
        return _signalled.is_set()
