"""A run's summary statistics, computed a block at a time, are those of the whole result."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qmmar.dialects import numerics as nx
from qmmar.interpreter import results
from qmmar.interpreter.results import RankStats


@settings(max_examples=100, deadline=None)
@given(x=hnp.arrays(st.sampled_from([np.float32, np.int32, np.int8]), hnp.array_shapes(min_dims=0, max_side=9)),
       block=st.integers(1, 40), as_bf16=st.booleans())  # fmt: skip
def test_statistics_by_blocks_are_the_whole_arrays(x, block, as_bf16):
    if as_bf16 and x.dtype == np.float32:
        x = nx.round_to(x, nx.BF16)
    whole = x.astype(np.float64).reshape(-1)
    finite = whole[np.isfinite(whole)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(results, "STATS_BLOCK", block)
        stats = RankStats.of(x)
    assert (stats.dtype, stats.shape) == (str(x.dtype), x.shape)
    assert (stats.count, stats.nonfinite) == (finite.size, whole.size - finite.size)
    if finite.size:
        assert (stats.min, stats.max) == (finite.min(), finite.max())
        assert np.isclose(stats.total, finite.sum(), rtol=1e-12, atol=1e-12 * np.abs(finite).sum())
    else:
        assert np.isnan(stats.min) and np.isnan(stats.max) and stats.total == 0
    assert stats.digest == hashlib.blake2b(x.tobytes(), digest_size=16).digest()
