"""Row-only reshapes between a 3-D [b, s, n] value and its 2-D [b*s, n] view, as both the
fuse and unfuse passes write them."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import tensor
from xdsl.dialects.builtin import DYNAMIC_INDEX, ArrayAttr, IntegerAttr, TensorType, i64
from xdsl.ir import SSAValue

ROWS = ArrayAttr([ArrayAttr([IntegerAttr(0, i64), IntegerAttr(1, i64)]), ArrayAttr([IntegerAttr(2, i64)])])


def collapse_rows(value: SSAValue) -> tensor.CollapseShapeOp:
    """[b, s, n] -> [b*s, n]; a dynamic b or s makes b*s dynamic."""
    t = value.type
    assert isinstance(t, TensorType)
    b, s, n = t.get_shape()
    rows = DYNAMIC_INDEX if DYNAMIC_INDEX in (b, s) else b * s
    return tensor.CollapseShapeOp.create(
        operands=[value], result_types=[TensorType(t.element_type, [rows, n])],
        properties={"reassociation": ROWS},
    )  # fmt: skip


def expand_rows(value: SSAValue, shape: Sequence[int], sizes: Sequence[SSAValue] = ()) -> tensor.ExpandShapeOp:
    """[b*s, n] -> [b, s, n]; `sizes` are the run-time sizes of shape's dynamic dimensions."""
    t = value.type
    assert isinstance(t, TensorType)
    return tensor.ExpandShapeOp(value, sizes, ROWS, shape, TensorType(t.element_type, shape))
