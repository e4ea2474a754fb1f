"""Run many `qmmar-run` command lines in one MPI job (test scaffolding).

    mpiexec -n W python tests/mpi_batch.py CASES.json

CASES.json holds a list of argument lists; each is given to `qmmar.cli.run.main` in turn, on
every rank, as `mpiexec -n W qmmar-run ARGS` would run it, so that a test pays the start of
W processes once for many programs.  Rank 0 writes the exit codes to CASES.json.codes.
"""

import json
import sys

from qmmar.cli.run import main

if __name__ == "__main__":
    path = sys.argv[1]
    with open(path) as f:
        cases = json.load(f)
    codes = [main(argv) for argv in cases]
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_rank() == 0:
        with open(path + ".codes", "w") as f:
            json.dump(codes, f)
