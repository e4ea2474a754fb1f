"""What int8 communication costs in accuracy on the shipped examples: `qmmar-run --ideal`'s
figures for each int8-communication chain, with communication scales of four kinds.

    python benchmarks/int8_error.py [--seed 1] [--out DIR]

The other arguments are `--random-inputs SEED`'s.  The scales:
- random: as --random-inputs draws them (1-D floats in [2**-8, 2**-6)), not fitted to the data;
- calibrated: per channel, s1 = max |z_r| / 127 over ranks and rows (z_r: each rank's value
  before the all-reduce), s2 = max |sum over ranks of z_r| / 127: nothing saturates;
- s1 / 4: the quantisation saturates the largest quarter of the range;
- s2 / 4: the requantisation of the sum saturates.
With --out, each case's inputs are written as DIR/<example>-<case>.npz, so that any row is
one command: qmmar-run examples/<example>.mlir -w W -i DIR/<example>-<case>.npz --ideal
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from xdsl.ir import BlockArgument

from qmmar.api import ideal_run
from qmmar.context import qmmar_context
from qmmar.dialects import numerics as nx
from qmmar.interpreter.ideal import COLUMNS, IdealRun, before_reduction, figure_cells
from qmmar.interpreter.spmd import entry_function
from qmmar.interpreter.values import for_file, random_args
from qmmar.source import read_module

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"two_layers": 8, "layer": 4}


def calibrated(run: IdealRun, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The inputs with each int8-communication chain's s1 and s2 fitted to the last run's data."""
    fitted = list(inputs)
    for target, values in zip(run.targets, run.probed(), strict=True):
        if "s1" not in values:
            continue
        z = before_reduction(target, values).z
        dtype = values["result"].dtype
        s1 = np.max(np.abs(np.stack(z).astype(np.float64)), axis=(0, 1)) / 127
        s2 = np.max(np.abs(nx.reduce_sum(z).astype(np.float64)), axis=0) / 127
        for name, scale in (("s1", s1), ("s2", s2)):
            arg = target.values[name]
            assert isinstance(arg, BlockArgument), f"{target.location}: {name} is not an argument"
            fitted[arg.index] = nx.round_to(np.maximum(scale, 2.0**-24).reshape(inputs[arg.index].shape), dtype)
    return fitted


def scaled(run: IdealRun, inputs: list[np.ndarray], name: str, factor: float) -> list[np.ndarray]:
    out = list(inputs)
    for target in run.targets:
        if name in target.values:
            i = target.values[name].index  # type: ignore[attr-defined]
            out[i] = nx.round_to(nx.to_f32(inputs[i]) * np.float32(factor), inputs[i].dtype)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="a folder for the inputs of every case")
    args = parser.parse_args()
    print(f"--random-inputs {args.seed} for the rest; figures of rank 0's result against the f64 ideal")
    header = ("example", "scales", "SNR dB", "rel RMS", "max abs", "sat. quant", "sat. requant", "SNR dB without int8")
    rows = [header]
    for example, world_size in EXAMPLES.items():
        path = str(ROOT / "examples" / f"{example}.mlir")
        module = read_module(qmmar_context(), path)
        fn = entry_function(module, "main")
        run = ideal_run(module, "main")
        base = random_args(fn.function_type.inputs.data, world_size, args.seed)
        run.run(base, world_size)
        fitted = calibrated(run, base)
        cases = {"random": base, "calibrated": fitted, "s1 / 4": scaled(run, fitted, "s1", 0.25),
                 "s2 / 4": scaled(run, fitted, "s2", 0.25)}  # fmt: skip
        for case, inputs in cases.items():
            run.run(inputs, world_size)
            for f in run.figures():
                cells = dict(zip(COLUMNS, figure_cells(f), strict=True))
                if f.comm == "int8":
                    rows.append((example, case, *(cells[c] for c in header[2:])))
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                name = f"{example}-{case.replace(' / ', '-div')}.npz"
                np.savez(os.path.join(args.out, name), **{f"arg{i}": for_file(a) for i, a in enumerate(inputs)})
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for row in rows:
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
