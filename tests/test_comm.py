"""The in-process communicator: ranks that disagree or leave early fail fast, never hang."""

import threading

import numpy as np

from qmmar.interpreter.comm import CollectiveError, InProcessGroup, Site


def run_ranks(world_size, body):
    group = InProcessGroup(world_size)
    errors = [None] * world_size
    results = [None] * world_size

    def main(rank):
        try:
            results[rank] = body(group.communicator(rank))
        except Exception as err:
            errors[rank] = err
        group.leave(rank, "failed" if errors[rank] else "returned")

    threads = [threading.Thread(target=main, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive(), "a rank hangs"
    return results, errors


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
