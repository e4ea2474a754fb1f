"""Options as a user types them, checked in one place whatever the way in.

`check_option` is the one check of an option's value against its field's type: the kind
(str, int, float, bool), the choices of a `Literal`, and the range an `Annotated` type carries
(`Rows`, `Positive`, `AtLeast`).  Its readers: the pipeline (`-p 'name{option=value ...}'`, `-t`,
through `CheckedOptions`: an unknown option or a missing value is reported there too), the
Python API (`check_fields` in a dataclass's `__post_init__`), `torch.compile(options=)` and the
drivers' argparse flags (`argparse_type`).  Each reports one `ValueError` naming the option as
the user writes it.  (xDSL's own check says only "Incompatible types: given ('zz',), expected
typing.Literal['nd', 'nz']".)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.arg_spec import ArgSpec, ArgSpecConvertible, ParameterListType, ParameterType
from xdsl.utils.exceptions import PassFailedException

from qmmar.dialects.target import DEFAULT_CANN, SOC_NAMES, Target, parse_cann, resolve_target


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


@dataclass(frozen=True)
class AtLeast:
    """A number option's range, carried in its type: `Annotated[int, AtLeast(0)]`; `what`
    names the kind of number in the message (e.g. "a whole number of rows")."""

    least: float
    what: str = ""
    strictly: bool = False  # above `least`, and finite

    def holds(self, value: float) -> bool:
        return math.isfinite(value) and value > self.least if self.strictly else value >= self.least

    def wanted(self, kind: str) -> str:
        if self.what:
            return self.what
        return "a positive number" if self.strictly and self.least == 0 else f"{kind} >= {self.least:g}"


@dataclass(frozen=True)
class TextAsTyped:
    """A text option that the pipeline lexer may read as a number (`cann=9.1`, `soc=950`): the
    number is taken as the text it was typed as, then the text is checked."""

    holds: Callable[[str], bool]
    wanted: str
    """What the value must be, in a sentence after "{option} must be"; `{option}` is replaced."""


def _is_version(value: str) -> bool:
    try:
        return bool(parse_cann(value))
    except ValueError:
        return False


Rows = Annotated[int, AtLeast(0, "a whole number of rows, at least 0")]
Positive = Annotated[float, AtLeast(0, strictly=True)]
Count = Annotated[int, AtLeast(0, "a whole number, at least 0")]

_KINDS: dict[object, str] = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


Version = Annotated[str, TextAsTyped(lambda v: not v or _is_version(v), "a version as major.minor (e.g. {option}=9.1)")]
"""A version option, or empty: not given."""
SocName = Annotated[str, TextAsTyped(lambda v: v in ("", *SOC_NAMES, "950"), "one of " + ", ".join(SOC_NAMES))]
"""A SoC option, or empty: not given (950 passes, for `Target` to refuse with what it would need)."""


def _parts(hint: object) -> tuple[object, tuple[Any, ...], AtLeast | TextAsTyped | None]:
    """A field type's base, its choices (a Literal's) and its range (an Annotated AtLeast) or
    form (TextAsTyped)."""
    ranges = (
        [m for m in typing.get_args(hint)[1:] if isinstance(m, AtLeast | TextAsTyped)]
        if typing.get_origin(hint) is Annotated
        else []
    )
    base = typing.get_args(hint)[0] if ranges else hint
    choices = typing.get_args(base) if typing.get_origin(base) is Literal else ()
    return base, choices, ranges[0] if ranges else None


def checks(hint: object) -> bool:
    """Whether `check_option` knows a field of this type (others are left to xDSL)."""
    base, choices, _ = _parts(hint)
    return bool(choices) or base in _KINDS


def check_option(option: str, hint: object, value: object, as_typed: Callable[[Any], str] = repr) -> Any:
    """The value of an option of type `hint`, checked: the one check of every way in.  An int
    passes for a float; `as_typed` writes a value that is not a float as the user typed it (a
    float reads as `%g` does: 0, -1.5, nan)."""
    base, choices, within = _parts(hint)

    def shown(v: object) -> str:
        return f"{v:g}" if isinstance(v, float) else as_typed(v)

    if choices:
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ValueError(f"{option} must be one of {', '.join(map(str, choices))}, not {shown(value)}")
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(within, TextAsTyped):
        if number:
            value = str(value)
        if not isinstance(value, str) or not within.holds(value):
            raise ValueError(f"{option} must be {within.wanted.format(option=option)}, not {shown(value)}")
        return value
    if base is float and number:
        value = float(value)  # type: ignore[arg-type]  # a number
    kind_ok = isinstance(value, bool) if base is bool else number and isinstance(value, base) if base in (int, float) \
        else isinstance(value, str)  # fmt: skip
    if not kind_ok:
        if base is str:
            raise ValueError(
                f'{option} must be text, not {shown(value)}: write it in quotes, {option}="{shown(value)}"'
            )
        raise ValueError(f"{option} must be {_KINDS[base]}, not {shown(value)}")
    if within is not None and not within.holds(value):  # type: ignore[arg-type]  # a number
        raise ValueError(f"{option} must be {within.wanted(_KINDS[base])}, not {shown(value)}")
    return value


def check_fields(options: object) -> None:
    """Every field of a dataclass of options, as `check_option` checks it (for `__post_init__`:
    options given from Python are checked as the pipeline parser checks them)."""
    hints = typing.get_type_hints(type(options), include_extras=True)
    for f in dataclasses.fields(options):  # type: ignore[arg-type]  # a dataclass
        if f.init and checks(hints[f.name]):
            check_option(kebab(f.name), hints[f.name], getattr(options, f.name))


def argparse_type(owner: type, field: str) -> Callable[[str], Any]:
    """An argparse `type=` for the flag of one option field: the text read as the field's kind,
    then checked; a message as the pipeline's, with the value as typed."""
    hint = typing.get_type_hints(owner, include_extras=True)[field]
    base = _parts(hint)[0]

    def parse(text: str) -> Any:
        value: object = text
        try:
            value = base(text) if base in (int, float) else text
        except ValueError:
            pass
        try:
            return check_option(kebab(field), hint, value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _check(option: str, hint: object, values: ParameterListType) -> ParameterListType:
    """The values of an option of type `hint` from a pipeline spec, checked; types that
    `check_option` does not know are left to xDSL."""
    if not checks(hint):
        return values
    if not values:
        if _parts(hint)[0] is bool:  # `{check-only}`: a flag, as in MLIR
            return (True,)
        raise ValueError(f"{option} needs a value ({option}=...)")
    if len(values) > 1:
        raise ValueError(f"{option} takes one value, not {len(values)}: {','.join(map(_shown, values))}")
    (value,) = values
    if _parts(hint)[0] is float and not isinstance(value, bool):
        value = _number(option, value)
    return (check_option(option, hint, value, _shown),)


def normalized_spec(owner: type, spec: ArgSpec) -> ArgSpec:
    """The spec with float options as floats, and a message naming the option for an option
    `owner` (a pass or target class) lacks, a value of the wrong kind or a choice not offered."""
    hints = typing.get_type_hints(owner, include_extras=True)
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


@dataclass(frozen=True)
class TargetOptions:
    """The `soc` and `cann` options of every pass that compiles for a target (fusion, lowering,
    qmmar-check, the torch backend, the API); empty: the module's recorded target, else the
    default (`dialects.target`)."""

    soc: SocName = ""
    """a2 | a3: the Ascend SoC (950 is refused, with what it would need); by default the one
    the module records (qmmar.target), else a2."""
    cann: Version = ""
    """The CANN version, major.minor (on A2, 9.1 or later calls V5, before it V3); by default
    the module's, else 9.0."""

    def __post_init__(self) -> None:
        """Options from Python are checked as the pipeline parser checks them; the target as
        `Target` checks it (950, a CANN without the SoC's operators)."""
        check_fields(self)
        if self.soc or self.cann:
            Target(self.soc or "a2", self.cann or DEFAULT_CANN)  # type: ignore[arg-type]  # checked by Target

    def target_of(self, module: ModuleOp) -> Target:
        """The target this pass compiles `module` for: a pass failure when the options
        contradict what the module records."""
        try:
            return resolve_target(module, self.soc, self.cann)
        except ValueError as err:
            raise PassFailedException(str(err)) from None
