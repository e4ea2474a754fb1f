"""The interpreter's ranks give freed arrays back to the system (`interpreter.memory`): a rank
thread that frees most of its arrays shrinks the process, where glibc's own threshold would
keep them in the thread's heap."""

import subprocess
import sys

PROBE = """
import threading
import numpy as np
from qmmar.interpreter.memory import unmap_large_frees

def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

if {set_it} and not unmap_large_frees():
    print("not glibc")
    raise SystemExit
found = {{}}

def rank():
    a = np.ones(8 << 20, np.uint8)
    del a  # glibc now serves blocks up to 8 MiB from this thread's heap
    arrays = [np.ones(4 << 20, np.uint8) for _ in range(8)]
    found["held"] = resident_mib()
    del arrays[:-1]  # below the last one: no heap trim can return them
    found["freed"] = resident_mib()

thread = threading.Thread(target=rank)
thread.start()
thread.join()
print(round(found["held"] - found["freed"]))
"""


def returned_mib(set_it: bool) -> str:
    r = subprocess.run([sys.executable, "-c", PROBE.format(set_it=set_it)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_rank_thread_gives_its_freed_arrays_back():
    returned = returned_mib(True)
    if returned != "not glibc":
        assert int(returned) >= 24  # of the 28 MiB freed


def test_without_it_glibc_keeps_them():
    """The probe detects what the setting changes (on glibc)."""
    if returned_mib(True) != "not glibc":
        assert int(returned_mib(False)) < 8
