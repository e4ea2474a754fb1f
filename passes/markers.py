"""The names of the attributes a user writes into the IR to steer fusion: one home, read by
the fusion pass and by the drivers' help texts."""

MUST_FUSE = "qmmar.must_fuse"
"""A unit attribute on a chain's last op (its all-reduce, or its final dequant): the chain
must fuse; check-only mode and `qmmar-check` fail when it cannot."""

SCENARIO = "qmmar.scenario"
"""A `func.func` attribute: `qmmar.scenario = "decode"` marks an incremental (decode)
function, where MC2 is not used."""

DECODE = "decode"
