"""The arena placement of the aclnn-cpp prelude (`qmmar_place_n`), compiled with
AddressSanitizer/UBSan and run on random slots: every offset aligned, no two slots live at the
same time sharing a byte, the arena no smaller than the live peak and no larger than one
allocation per slot."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxx.harness import compile_cxx, runtime_object
from qmmar.targets.prelude import ARENA_ALIGNMENT, PRELUDE

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

DRIVER = """
#include <vector>
int main() {
  size_t n = 0;
  if (std::scanf("%zu", &n) != 1) return 2;
  std::vector<int64_t> size(n), offset(n), trial(n);
  std::vector<int32_t> first(n), last(n);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i)
    if (std::scanf("%lld %d %d", reinterpret_cast<long long *>(&size[i]), &first[i], &last[i]) != 3) return 2;
  const int64_t total = qmmar_place_n(n, size.data(), first.data(), last.data(), offset.data(), order.data(),
                                      trial.data());
  std::printf("%lld", static_cast<long long>(total));
  for (size_t i = 0; i < n; ++i) std::printf(" %lld", static_cast<long long>(offset[i]));
  std::printf("\\n");
  return 0;
}
"""


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("place")
    (workdir / "place.cpp").write_text(PRELUDE + DRIVER)
    compile_cxx([workdir / "place.cpp", runtime_object()], workdir / "place")

    def run(slots: list[tuple[int, int, int]]) -> tuple[int, list[int]]:
        text = f"{len(slots)}\n" + "".join(f"{size} {first} {last}\n" for size, first, last in slots)
        out = subprocess.run([str(workdir / "place")], input=text, capture_output=True, text=True, check=True)
        total, *offsets = map(int, out.stdout.split())
        return total, offsets

    return run


slot = st.tuples(st.one_of(st.integers(0, 600), st.integers(0, 20_000)), st.integers(-8, 60), st.integers(0, 25))


@settings(max_examples=150, deadline=None)
@given(st.lists(slot, max_size=40))
def test_no_two_live_slots_share_a_byte(place, drawn):
    slots = [(size, first, first + length) for size, first, length in drawn]
    total, offsets = place(slots)
    assert all(o % ARENA_ALIGNMENT == 0 and o + s <= total for o, (s, _, _) in zip(offsets, slots, strict=True))
    for i, (si, fi, li) in enumerate(slots):
        for j in range(i):
            sj, fj, lj = slots[j]
            if si and sj and fi <= lj and fj <= li:
                assert offsets[i] + si <= offsets[j] or offsets[j] + sj <= offsets[i], (i, j, offsets)
    times = {f for _, f, _ in slots}
    peak = max((sum(s for s, first, last in slots if first <= t <= last) for t in times), default=0)
    aligned = sum(-(-s // ARENA_ALIGNMENT) * ARENA_ALIGNMENT for s, _, _ in slots)
    assert peak <= total <= aligned
