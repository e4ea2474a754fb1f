"""Ranks as threads of one process against ranks as MPI processes: wall time and peak memory.

    python benchmarks/mpi.py [--m 2048 --k 8192 --n 8192] [--world-sizes 2 4 8] [--repeat 3]

For each world size W: one tensor-parallel layer, the fused op (mc2.quant_matmul_all_reduce,
bf16 output, int8 communication) with x1 [m, k] and x2 [k, n] per rank, its inputs in one
.npz file ((W,) + shape for x1 and x2, scales shared), run as a user runs it:

    qmmar-run layer.mlir -w W -i in.npz -o out.npz             (threads)
    mpiexec -n W qmmar-run layer.mlir -i in.npz -o out.npz     (MPI)

Wall time is the whole command (start, reading, the run, writing), the median of --repeat
runs; CPU time is the user + system seconds of every qmmar-run process (median); peak RSS
is each process's high-water mark (VmHWM), in MiB: the one process of the threaded run,
each rank's process under MPI (the largest, and their sum).  On a machine shared with other
work, W processes take a larger share of the cores than one process whose ranks take turns
at the GEMM: compare CPU seconds as well as wall seconds.  The two
output files are checked to hold the same bytes.  The default shape is the layer of issue
11 (m = 2048, k = n = 8192): W = 8 takes minutes and GiBs on a small machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from qmmar.dialects import numerics as nx

MEASURED = (
    "import resource, sys; from qmmar.cli.run import main; from qmmar.interpreter.observe import high_water_mark; "
    "code = main(sys.argv[1:]); u = resource.getrusage(resource.RUSAGE_SELF); "
    "print('measured', high_water_mark() // 1024, u.ru_utime + u.ru_stime, file=sys.stderr); sys.exit(code)"
)
"""qmmar-run, then its process's peak resident memory (KiB) and CPU seconds on stderr.  The peak
is VmHWM, not getrusage's ru_maxrss: Linux carries the larger of the parent's resident memory
at fork into ru_maxrss across exec (a benchmark that has just written 1.4 GiB of inputs
measured a 682 MiB run as 1466 MiB)."""


def program(w: int, m: int, k: int, n: int) -> str:
    x1, x2, out, vec = f"tensor<{m}x{k}xi8>", f"tensor<{k}x{n}xi8>", f"tensor<{m}x{n}xbf16>", f"tensor<{n}xbf16>"
    return (
        f"func.func @main(%x1: {x1}, %x2: {x2}, %s: {vec}, %s1: {vec}, %s2: {vec}) -> {out} {{\n"
        f"  %o = mc2.quant_matmul_all_reduce %x1, %x2 dequant_scale(%s : {vec}) comm_quant_scale_1(%s1 : {vec}) "
        f'comm_quant_scale_2(%s2 : {vec}) on "tp" world_size = {w} : {x1}, {x2} -> {out}\n'
        f"  func.return %o : {out}\n}}\n"
    )


def write_inputs(path: Path, w: int, m: int, k: int, n: int) -> None:
    """int8 shards per rank; scales as a calibrated layer has them (the dequantised output
    near unit scale, the int8 communication using most of its range)."""
    rng = np.random.default_rng(0)
    acc_std = np.sqrt(k) * 128 * 128 / 3
    np.savez(
        path,
        arg0=rng.integers(-128, 128, size=(w, m, k), dtype=np.int8),
        arg1=rng.integers(-128, 128, size=(w, k, n), dtype=np.int8),
        arg2=nx.round_to(np.full(n, 1 / acc_std, np.float32), nx.BF16).view(np.uint16),
        arg3=nx.round_to(np.full(n, 4 / 127, np.float32), nx.BF16).view(np.uint16),
        arg4=nx.round_to(np.full(n, 4 * np.sqrt(w) / 127, np.float32), nx.BF16).view(np.uint16),
    )


def measure(command: list[str]) -> tuple[float, list[int], float]:
    """Wall seconds of the command, the peak RSS (bytes) of each qmmar-run process, and the
    CPU seconds of them all."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr}")
    measured = [line.split()[1:] for line in done.stderr.splitlines() if line.startswith("measured ")]
    return seconds, [int(kib) * 1024 for kib, _ in measured], sum(float(cpu) for _, cpu in measured)


def same_outputs(a: Path, b: Path) -> bool:
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        return za.namelist() == zb.namelist() and all(
            za.open(name).read() == zb.open(name).read() for name in za.namelist()
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, default=2048)
    parser.add_argument("--k", type=int, default=8192)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    python = [sys.executable, "-c", MEASURED]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for w in args.world_sizes:
            layer, inputs = folder / "layer.mlir", folder / "in.npz"
            layer.write_text(program(w, args.m, args.k, args.n))
            write_inputs(inputs, w, args.m, args.k, args.n)
            common = [str(layer), "-i", str(inputs)]
            runs = {
                "threads": [*python, *common, "-w", str(w), "-o", str(folder / "threads.npz")],
                "MPI": [mpiexec, "-n", str(w), *python, *common, "-o", str(folder / "mpi.npz")],
            }
            for mode, command in runs.items():
                times, peaks, cpu = [], [], []
                for _ in range(args.repeat):
                    seconds, peak, cpu_seconds = measure(command)
                    times.append(seconds)
                    peaks.append(peak)
                    cpu.append(cpu_seconds)
                per_process = [max(p) for p in zip(*peaks, strict=True)]  # the largest of the repeats
                rows.append((w, mode, len(per_process), statistics.median(times), statistics.median(cpu),
                             max(per_process), sum(per_process)))  # fmt: skip
            if not same_outputs(folder / "threads.npz", folder / "mpi.npz"):
                sys.exit(f"world size {w}: the MPI run's output differs from the threaded run's")
            print(f"world size {w}: outputs identical", file=sys.stderr, flush=True)

    print(f"m={args.m}, k={args.k}, n={args.n} per rank, bf16 with int8 communication; wall: median of {args.repeat}")
    print("| W | ranks as | processes | wall s | CPU s | peak RSS MiB, largest process | peak RSS MiB, sum |")
    print("|---|----------|-----------|--------|-------|-------------------------------|-------------------|")
    for w, mode, processes, seconds, cpu, largest, total in rows:
        print(f"| {w} | {mode:<8} | {processes:>9} | {seconds:6.1f} | {cpu:5.1f} | {largest / 2**20:29.0f} "
              f"| {total / 2**20:17.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
