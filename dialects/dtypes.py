"""Element types: the short names the rule table uses, their xDSL and numpy forms."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    Float16Type,
    Float32Type,
    IntegerType,
    Signedness,
    TensorType,
    bf16,
    f16,
    f32,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute
from xdsl.utils.exceptions import VerifyException

from qmmar.dialects.logic import Dim
from qmmar.dialects.mc2_rules import TensorSig
from qmmar.dialects.numerics import BF16

ui64 = IntegerType(64, Signedness.UNSIGNED)

_BY_NAME: dict[str, tuple[Attribute, np.dtype]] = {
    "i8": (i8, np.dtype(np.int8)),
    "i32": (i32, np.dtype(np.int32)),
    "i64": (i64, np.dtype(np.int64)),
    "ui64": (ui64, np.dtype(np.uint64)),
    "f16": (f16, np.dtype(np.float16)),
    "bf16": (bf16, BF16),
    "f32": (f32, np.dtype(np.float32)),
}
_NAME_OF_ATTR = {attr: name for name, (attr, _) in _BY_NAME.items()}


def dtype_name(element_type: Attribute) -> str:
    """'i8', 'bf16', ...; the MLIR spelling of anything the dialects do not use."""
    return _NAME_OF_ATTR.get(element_type, str(element_type))


def element_attr(name: str) -> Attribute:
    return _BY_NAME[name][0]


def numpy_dtype(name: str) -> np.dtype:
    return _BY_NAME[name][1]


def is_float(element_type: Attribute) -> bool:
    return isinstance(element_type, Float16Type | BFloat16Type | Float32Type)


def tensor_type(value_type: Attribute, what: str) -> TensorType:
    if not isinstance(value_type, TensorType):
        raise VerifyException(f"{what} must be a ranked tensor, got {value_type}")
    return value_type


def shape_of(value_type: TensorType, name: str) -> tuple[Dim, ...]:
    """The static shape, a dynamic dimension named '<name>.d<axis>'."""
    return tuple(
        f"{name}.d{axis}" if size == DYNAMIC_INDEX else size for axis, size in enumerate(value_type.get_shape())
    )


def tensor_sig(value_type: Attribute, name: str) -> TensorSig:
    t = tensor_type(value_type, name)
    return TensorSig(dtype_name(t.element_type), shape_of(t, name))
