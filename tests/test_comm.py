"""The in-process communicator: ranks that disagree or leave early fail fast, never hang."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threaded_ranks import run_ranks

from qmmar.interpreter.comm import CollectiveError, DisagreementError, Site

SITE = Site("qmm.allgather", "f.mlir:1:1", "tp", 4)


def test_all_gather_and_all_to_all():
    def body(comm):
        x = np.full((2,), comm.rank)
        gathered = comm.all_gather(x, SITE)
        received = comm.all_to_all([np.array([comm.rank * 10 + j]) for j in range(4)], SITE)
        return gathered, received

    results, errors = run_ranks(4, body)
    assert errors == [None] * 4
    for rank, (gathered, received) in enumerate(results):
        assert [g.tolist() for g in gathered] == [[r, r] for r in range(4)]
        assert [x.tolist() for x in received] == [[j * 10 + rank] for j in range(4)]


def test_ranks_at_different_collectives_fail():
    def body(comm):
        site = SITE if comm.rank else Site("qmm.allgather", "f.mlir:9:1", "dp", 4)
        return comm.all_gather(np.zeros(1), site)

    _, errors = run_ranks(4, body)
    assert all(isinstance(e, CollectiveError) for e in errors)
    assert "ranks 0 and 1 disagree" in str(errors[0])


def test_different_shapes_fail():
    _, errors = run_ranks(2, lambda comm: comm.all_gather(np.zeros(comm.rank + 1), SITE))
    assert "send different shapes" in str(errors[0])


def test_a_rank_that_returns_early_releases_the_others():
    def body(comm):
        if comm.rank == 2:
            return None
        return comm.all_gather(np.zeros(1), SITE)

    _, errors = run_ranks(4, body)
    assert errors[2] is None
    assert "for rank 2, which returned" in str(errors[0])


def test_a_failed_rank_releases_the_others():
    def body(comm):
        if comm.rank == 1:
            raise ValueError("boom")
        return comm.all_gather(np.zeros(1), SITE)

    _, errors = run_ranks(2, body)
    assert str(errors[1]) == "boom"
    assert isinstance(errors[0], CollectiveError) and "which failed" in str(errors[0])


collective = st.tuples(st.sampled_from(["gather", "to_all"]), st.integers(0, 3), st.sampled_from(["i8", "f4", "u2"]))


@given(st.integers(1, 12), st.lists(collective, min_size=1, max_size=4))
@settings(max_examples=60, deadline=None)
def test_collectives_deliver_in_rank_order(world_size, calls):
    """Every rank gets exactly what the others sent, for any sequence of collectives."""

    def sent(rank, i, to, rows, dtype):  # what `rank` sends to `to` at call i: its origin, readable
        return np.full((rows, 2), rank * 1000 + i * 10 + to % 10, dtype=dtype)

    def body(comm):
        got = []
        for i, (kind, rows, dtype) in enumerate(calls):
            site = Site("qmm.x", f"f.mlir:{i}:1", "tp", world_size)
            if kind == "gather":
                got.append(comm.all_gather(sent(comm.rank, i, 0, rows, dtype), site))
            else:
                got.append(comm.all_to_all([sent(comm.rank, i, j, rows, dtype) for j in range(world_size)], site))
        return got

    results, errors = run_ranks(world_size, body)
    assert errors == [None] * world_size
    for rank, got in enumerate(results):
        for i, ((kind, rows, dtype), received) in enumerate(zip(calls, got, strict=True)):
            to = 0 if kind == "gather" else rank
            expected = [sent(j, i, to, rows, dtype) for j in range(world_size)]
            assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(received, expected, strict=True))


def test_many_ranks():
    """W=512: the in-process group costs each rank O(W) per collective (timings:
    benchmarks/world_size.py)."""
    results, errors = run_ranks(512, lambda comm: comm.all_gather(np.array([comm.rank]), SITE_512))
    assert errors == [None] * 512
    assert all(np.concatenate(r).tolist() == list(range(512)) for r in results)


SITE_512 = Site("qmm.allgather", "f.mlir:1:1", "tp", 512)


@pytest.mark.parametrize("differs", [None, 0, 3])
def test_values_that_must_be_the_same_on_every_rank(differs):
    def body(comm):
        s1 = np.full(8, 0.5, np.float32)
        s2 = np.full(8, 0.25, np.float32)
        if comm.rank == differs:
            s2 = s2.copy()
            s2[5] = np.nextafter(s2[5], np.float32(1))  # one ulp: bit for bit
        comm.check_same_on_every_rank({"s1": s1, "s2": s2}, SITE)

    _, errors = run_ranks(4, body)
    if differs is None:
        assert errors == [None] * 4
    else:  # every rank knows, so that none goes on alone
        other = 1 if differs == 0 else differs
        assert all(isinstance(e, DisagreementError) for e in errors)
        assert str(errors[0]) == f"s2 must be the same on every rank, but rank {other}'s differs from rank 0's"


def test_shape_or_dtype_differences_are_disagreements():
    def body(comm):
        s1 = np.zeros(8 + (comm.rank == 1), np.float32)
        comm.check_same_on_every_rank({"s1": s1}, SITE)

    _, errors = run_ranks(4, body)
    assert "s1 must be the same on every rank, but rank 1's differs" in str(errors[2])
