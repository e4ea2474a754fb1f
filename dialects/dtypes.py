"""Element types: the short names the rules use, their xDSL and numpy forms, and the dtype
facts of the operator that more than one reader needs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    BFloat16Type,
    DenseIntOrFPElementsAttr,
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

ui64 = IntegerType(64, Signedness.UNSIGNED)

_BY_NAME: dict[str, tuple[Attribute, np.dtype]] = {
    "i8": (i8, np.dtype(np.int8)),
    "i32": (i32, np.dtype(np.int32)),
    "i64": (i64, np.dtype(np.int64)),
    "ui64": (ui64, np.dtype(np.uint64)),
    "f16": (f16, np.dtype(np.float16)),
    "bf16": (bf16, np.dtype(ml_dtypes.bfloat16)),
    "f32": (f32, np.dtype(np.float32)),
}
_FLOAT_NAMES: dict[type[Attribute], str] = {Float16Type: "f16", BFloat16Type: "bf16", Float32Type: "f32"}
_INTEGER_PREFIX = {Signedness.SIGNLESS: "i", Signedness.SIGNED: "si", Signedness.UNSIGNED: "ui"}
_NAMES: dict[Attribute, str] = {}
"""Names of the other types, filled on first sight: the printer runs once per type, never
per call."""
_NAMES_OF_NUMPY = {dtype: name for name, (_, dtype) in _BY_NAME.items()}

OUTPUT_DTYPES = ("f16", "bf16")
"""The operator's output (and x3, communication scales) dtypes: D in SEMANTICS.md."""
DEQUANT_SCALE_DTYPES = ("bf16", "f32", "i64", "ui64")
"""The dequant scale of an int32 value: as is (bf16, f32), or packed by TransQuantParamV2."""
PACKED_SCALE_DTYPES = ("i64", "ui64")


def dtype_name(element_type: Attribute) -> str:
    """'i8', 'bf16', ...: MLIR's spelling, read off the type (hashing a type is not cheap);
    any other type's is printed once and cached."""
    if isinstance(element_type, IntegerType):
        return f"{_INTEGER_PREFIX[element_type.signedness.data]}{element_type.width.data}"
    name = _FLOAT_NAMES.get(type(element_type))
    if name is None and (name := _NAMES.get(element_type)) is None:
        name = _NAMES[element_type] = str(element_type)
    return name


def name_of_numpy(dtype: np.dtype) -> str:
    """'i8', 'bf16', ... for a numpy dtype; numpy's own name for any other."""
    dtype = np.dtype(dtype)
    return _NAMES_OF_NUMPY.get(dtype, dtype.name)


def element_attr(name: str) -> Attribute:
    return _BY_NAME[name][0]


def numpy_dtype(name: str) -> np.dtype:
    return _BY_NAME[name][1]


def dense_f32(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    """An f32 dense attribute's values, bit for bit (NaN payloads too), in its shape."""
    values = np.frombuffer(attr.data.data, dtype="<f4")
    return np.broadcast_to(values, attr.get_shape()) if values.size == 1 else values.reshape(attr.get_shape())


def scale_is_packed(scale: str, output: str, has_pertoken: bool) -> bool:
    """An f32 dequant scale for f16 output without pertoken scales goes through
    TransQuantParamV2: that is how Ascend dequantises int32 to f16 (SEMANTICS.md step 2).
    The fusion pass packs it; the numerics pack and unpack it in the unfused form."""
    return scale == "f32" and output == "f16" and not has_pertoken


def output_dtype_for_scale(scale: str) -> str:
    """The output dtype a legal dequant scale implies: bf16 for a bf16 scale, else f16."""
    return "bf16" if scale == "bf16" else "f16"


def tensor_type(value_type: Attribute, what: str) -> TensorType:
    if not isinstance(value_type, TensorType):
        raise VerifyException(f"{what} must be a ranked tensor, got {value_type}")
    return value_type


def shape_of(value_type: TensorType, name: str) -> tuple[Dim, ...]:
    """The static shape, a dynamic dimension named '<name>.d<axis>'."""
    return tuple(
        f"{name}.d{axis}" if size == DYNAMIC_INDEX else size for axis, size in enumerate(value_type.get_shape())
    )


def static_shape(shape: tuple[Dim, ...]) -> list[int]:
    """A shape as a type spells it: a named (dynamic) dimension becomes `?`."""
    return [DYNAMIC_INDEX if isinstance(d, str) else d for d in shape]
