"""Reading a `.pt2` file, and writing a program's weights in qmmar-run's `.npz` convention."""

from __future__ import annotations

import io
import logging
import re
import sys
import warnings
import zipfile
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from qmmar.dialects.diagnostics import LocatedError, one_line
from qmmar.frontends.torch.importer import ImportedProgram
from qmmar.frontends.torch.standins.registry import declare_schemas
from qmmar.interpreter.numerics_torch import to_numpy
from qmmar.interpreter.values import for_file
from qmmar.source import STDIN, display_name

_UNRESOLVED = re.compile(r"failed to resolve (\S+) to an operator")


class _Collect(logging.Filter):
    """Keeps what torch logs while it loads, instead of printing it: torch logs the cause of
    a failure with a traceback, then raises an exception that does not carry it."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.causes: list[str] = []  # the exceptions logged, outermost first

    def filter(self, record: logging.LogRecord) -> bool:
        self.text.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            self.causes.extend(str(e) for e in _chain(record.exc_info[1]))
            self.text.extend(self.causes)
        return False


_ENFORCE = re.compile(r"\[enforce fail at [^\]]*\]\s*\.?\s*")
"""The prefix of a c10 check's message (`[enforce fail at inline_container.cc:180] . `)."""


def load_program(path: str) -> torch.export.ExportedProgram:
    """A program saved by `torch.export.save` (`-`: standard input); a problem raises one
    `LocatedError` naming the file."""
    declare_schemas()
    where = display_name(path)
    export_log = logging.getLogger("torch.export")
    collect = _Collect()
    export_log.addFilter(collect)
    try:
        # an open file, whatever its name (torch warns about a path not ending in .pt2)
        with io.BytesIO(sys.stdin.buffer.read()) if path == STDIN else open(path, "rb") as f:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.export.load(f)
    except OSError as err:
        raise LocatedError(where, f"cannot read the input: {err.strerror or err}") from None
    except zipfile.BadZipFile:
        raise LocatedError(where, "not a torch.export program: a .pt2 file is a zip archive "
                          "written by torch.export.save") from None  # fmt: skip
    except Exception as err:  # torch's deserialiser raises many kinds
        text = " ".join([*collect.text, *(str(e) for e in _chain(err))])
        if (found := _UNRESOLVED.search(text)) is not None:
            raise LocatedError(where, f"the program calls {found.group(1)}, which no library in this process "
                              "defines: load the module that registers it with --library MODULE") from None  # fmt: skip
        # the cause torch logged, when it did: the exception it raises then only points at the log
        reason = _ENFORCE.sub("", collect.causes[-1]) if collect.causes else str(err)
        raise LocatedError(where, f"not a torch.export program: {one_line(reason) or type(err).__name__}") from None
    finally:
        export_log.removeFilter(collect)


def _chain(err: BaseException | None) -> list[BaseException]:
    found: list[BaseException] = []
    while err is not None and err not in found:
        found.append(err)
        err = err.__cause__ or err.__context__
    return found


def program_state(program: torch.export.ExportedProgram) -> dict[str, torch.Tensor]:
    """The program's parameters, buffers and constants, by fully qualified name."""
    return {**program.state_dict, **program.constants}


def weight_arrays(imported: ImportedProgram, states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """`arg{i}` for each parameter, buffer and constant of the imported program, from one state
    (the same on every rank) or one per rank (stacked as (W,) + shape), each by qualified name."""
    arrays = {}
    for i, arg in enumerate(imported.arguments):
        if arg.kind != "input":
            values = [for_file(to_numpy(state[arg.target].detach().cpu())) for state in states]
            arrays[f"arg{i}"] = values[0] if len(values) == 1 else np.stack(values)
    return arrays


def write_weights(path: str, imported: ImportedProgram, program: torch.export.ExportedProgram) -> None:
    """The program's own weights, as qmmar-run reads them (`--inputs`)."""
    np.savez(path, allow_pickle=False, **weight_arrays(imported, [program_state(program)]))  # numeric: no pickles
