"""Ranks as threads of this process over an `InProcessGroup`, for tests of what one rank runs."""

import threading

from qmmar.interpreter.comm import InProcessGroup


def run_ranks(world_size, body):
    """body(comm) on every rank at once: (results, errors), each in rank order."""
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
        t.join(timeout=60)  # a guard against a hang, far above any run under load
        assert not t.is_alive(), "a rank hangs"
    return results, errors
