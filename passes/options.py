"""Pass options as a user types them, checked when the pipeline is parsed."""

from __future__ import annotations

import typing
from typing import Literal

from xdsl.utils.arg_spec import ArgSpec, ParameterType


def _number(option: str, value: ParameterType) -> float:
    """A float option's value: 320, 0.5 and 1e9 alike (the pipeline lexer reads 1e9 as a word)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except ValueError:
        raise ValueError(f"{option} must be a number, not {value!r}") from None


def _check(option: str, hint: object, value: ParameterType) -> ParameterType:
    if hint is float:
        return _number(option, value)
    if typing.get_origin(hint) is Literal and value not in (choices := typing.get_args(hint)):
        raise ValueError(f"{option} must be one of {', '.join(map(str, choices))}, not {value!r}")
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{option} must be true or false, not {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{option} must be a whole number, not {value!r}")
    return value


def normalized_spec(pass_type: type, spec: ArgSpec) -> ArgSpec:
    """The spec with float options as floats, and a message naming the option for a value of
    the wrong kind or a choice not offered (xDSL's own says only "Incompatible types")."""
    hints = typing.get_type_hints(pass_type)
    parameters = {}
    for option, values in spec.parameters.items():
        hint = hints.get(option.replace("-", "_"))
        if hint is not None and len(values) == 1:
            values = (_check(option, hint, values[0]),)
        parameters[option] = values
    return ArgSpec(spec.name, parameters)
