"""Pass and target options as a user types them, checked when the pipeline is parsed.

`-p 'name{option=value ...}'` and `-t 'name{...}'`: an unknown option, a missing value, a value
of the wrong kind or a choice not offered is one `ValueError` that names the pass (or target)
and the option as the user writes it, in kebab-case.  (xDSL's own check says only
"Incompatible types: given ('zz',), expected typing.Literal['nd', 'nz']".)  Every qmmar pass
and target takes its options through `CheckedOptions`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal, Self

from xdsl.utils.arg_spec import ArgSpec, ArgSpecConvertible, ParameterListType, ParameterType


def kebab(field: str) -> str:
    """An option's name as a user types it (`min_m` is `min-m`)."""
    return field.replace("_", "-")


def _typed(value: ParameterType) -> str:
    """A value as the user typed it (the pipeline lexer reads `true` as a bool, `1` as an int)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _shown(value: ParameterType) -> str:
    """A value in a message: text quoted (and on one line, whatever it holds)."""
    return repr(value) if isinstance(value, str) else _typed(value)


def _number(option: str, value: ParameterType) -> float:
    """A float option's value: 320, 0.5 and 1e9 alike (the pipeline lexer reads 1e9 as a word)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except ValueError:
        raise ValueError(f"{option} must be a number, not {_shown(value)}") from None


def _check(option: str, hint: object, values: ParameterListType) -> ParameterListType:
    """The values of an option of type `hint` (one of str, int, float, bool or a Literal of
    choices: what qmmar's options are), checked; others are left to xDSL."""
    choices = typing.get_args(hint) if typing.get_origin(hint) is Literal else None
    if hint not in (str, int, float, bool) and choices is None:
        return values
    if not values:
        if hint is bool:  # `{check-only}`: a flag, as in MLIR
            return (True,)
        raise ValueError(f"{option} needs a value ({option}=...)")
    if len(values) > 1:
        raise ValueError(f"{option} takes one value, not {len(values)}: {','.join(map(_shown, values))}")
    (value,) = values
    if hint is float:
        return (_number(option, value),)
    if choices is not None and value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(map(str, choices))}, not {_shown(value)}")
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{option} must be true or false, not {_shown(value)}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{option} must be a whole number, not {_shown(value)}")
    if hint is str and not isinstance(value, str):
        raise ValueError(f'{option} must be text, not {_typed(value)}: write it in quotes, {option}="{_typed(value)}"')
    return values


def normalized_spec(owner: type, spec: ArgSpec) -> ArgSpec:
    """The spec with float options as floats, and a message naming the option for an option
    `owner` (a pass or target class) lacks, a value of the wrong kind or a choice not offered."""
    hints = typing.get_type_hints(owner)
    options = {f.name: hints[f.name] for f in dataclasses.fields(owner) if f.init}
    parameters = {}
    for option, values in spec.parameters.items():
        field = option.replace("-", "_")
        if field not in options:
            known = f"its options are {', '.join(map(kebab, options))}" if options else "it takes no options"
            raise ValueError(f"unknown option {kebab(option)}; {known}")
        parameters[option] = _check(kebab(field), options[field], values)
    return ArgSpec(spec.name, parameters)


class CheckedOptions(ArgSpecConvertible):
    """A pass or target (a frozen dataclass) whose options are checked by `normalized_spec`,
    wherever a spec names it: qmmar-opt's -p and -t, and stock xdsl-opt's."""

    @classmethod
    def from_spec(cls, spec: ArgSpec) -> Self:
        try:
            return super().from_spec(normalized_spec(cls, spec))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{cls.name}: {err}") from None
