"""Typed options of the config: the base class every option's pydantic model derives from, the shared field types, and
the reading and checking of a block of keys against its option.

Each option's keys, types, bounds, defaults (of keys a YAML may leave out) and meaning are written once, as a
pydantic v2 model in strict mode (integers stay integers, ``1`` is not ``true``, unknown keys are refused), in the
``options.py`` of the package whose code reads them (``qadapt/adapters/options.py``: ``CUAAdapter``, read by
``adapters/cua.py``; ``devices/``, ``models/``, ``data/`` (tasks), ``training/`` the same); ``RootConfig`` and the
registry ``SCHEMAS`` (group -> option name -> class, the names from each class's ``name``) in ``qadapt/config.py``.
Everything else is derived from them: the check ``qadapt.config.compose`` runs, the keys ``key=value`` may set, and
``docs/configs.md`` (:mod:`qadapt.configdocs`). A value of the wrong type or range exits 2 with one line that names
the key and what it accepts (the phrase is read from the field's type, :func:`accepts`)::

    error: adapter.qubits_per_block='abc': expected an integer >= 1
    error: train.max_grad_norm=null: expected a number > 0

``compose`` validates the plain composed config and keeps it as composed: the models never rewrite it, since a
round trip would turn integers given to number fields into floats (``adapter.alpha=16`` -> 16.0) and change the
config hash that names run directories. A field with a default may be absent from its YAML (``absent = ...`` in its
description; the default is what the code reads); every other field must be present.

The bottom layer (every room's options import it), so no torch, PennyLane or Qiskit here.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import annotated_types as at
from omegaconf import DictConfig, ListConfig, OmegaConf
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .paths import CONFIG_DIR

GROUPS = ("model", "adapter", "device", "task", "train")


class Accepts:
    """What a type accepts, in words, where the words read from the type would not say it (``Annotated[..., Accepts(
    "a sha256 digest (64 hex digits)")]``)."""

    def __init__(self, text: str):
        self.text = text


def _not_nan(x: float) -> float:
    if math.isnan(x):
        raise ValueError("nan")
    return x


# a real number, an integer kept as it is (strict: not a bool, not a string), never nan; inf passes
Number = Annotated[float, AfterValidator(_not_nan)]
# a non-empty string
Text = Annotated[str, Field(min_length=1)]


def choices(*values: Any) -> str:
    return f"one of the valid choices: {', '.join(_word(v) for v in values)}"


def _word(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


class Option(BaseModel):
    """One option of a config group (or the root keys, or a nested block of keys): strict, closed, immutable.

    ``help(cls)`` lists every field with what it accepts and its meaning (added to the docstring)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    # the config group the option belongs to (error messages name its keys group.key): from its name field, or set
    # by a class without one (train's)
    group: ClassVar[str] = "root"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.model_fields.get("name")
        if name is not None and isinstance(name.json_schema_extra, dict) and "group" in name.json_schema_extra:
            cls.group = name.json_schema_extra["group"]
        lines = [
            f"        {name} ({field_accepts(cls, name)}): {fl.description}" for name, fl in cls.model_fields.items()
        ]
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Fields:\n" + "\n".join(lines) + "\n"


def name_field(option: str, group: str) -> Any:
    """The ``name`` key of ``group=option``: exactly the option's name (the code dispatches on it)."""
    return Field(
        description=f"the option's name ({group}={option}): the code dispatches on it; recorded in results rows and "
        "run directory names",
        json_schema_extra={"group": group},
    )


def added_later(default: Any, description: str) -> Any:
    """A key added to an option after runs of it were recorded: absent means ``default`` (the behaviour before it),
    and at ``default`` it is left out of the config hash, so those runs keep their directories
    (``qadapt.config.config_hash``; docs/architecture.md, "The config hash, and new keys")."""
    return Field(default, description=description, json_schema_extra={"added_later": True})


def hash_neutral(cls: type[Option]) -> dict[str, Any]:
    """The keys of ``cls`` declared with :func:`added_later`: key -> the default the config hash leaves out."""
    out = {}
    for name, fl in cls.model_fields.items():
        if isinstance(fl.json_schema_extra, dict) and fl.json_schema_extra.get("added_later"):
            out[name] = fl.default
    return out


# ---------------------------------------------------------------------------------------------------------------
# what a type accepts, in words (for errors, docstrings and docs/configs.md)


def _bounds(meta: list[Any]) -> str:
    lo = hi = None
    lo_open = hi_open = False
    for m in meta:
        for c in getattr(m, "metadata", [m]):
            if isinstance(c, at.Gt):
                lo, lo_open = c.gt, True
            elif isinstance(c, at.Ge):
                lo, lo_open = c.ge, False
            elif isinstance(c, at.Lt):
                hi, hi_open = c.lt, True
            elif isinstance(c, at.Le):
                hi, hi_open = c.le, False

    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)

    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {num(hi)}"
    return ""


def _length(meta: list[Any]) -> tuple[int, int | None]:
    lo, hi = 0, None
    for m in meta:
        for c in getattr(m, "metadata", [m]):
            if isinstance(c, at.MinLen):
                lo = c.min_length
            elif isinstance(c, at.MaxLen):
                hi = c.max_length
    return lo, hi


def accepts(tp: Any, plural: bool = False, in_union: bool = False) -> str:
    """What the type ``tp`` accepts, in words: ``an integer >= 1``, ``a non-empty list of strings``, ``auto or an
    integer >= 0``; ``plural`` for a list's entries (``integers >= 1``)."""
    meta: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        tp, *more = typing.get_args(tp)
        meta = more + meta
    for m in meta:
        if isinstance(m, Accepts):
            return m.text
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "nulls" if plural else "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(accepts(a, plural, in_union=True) for a in args)
    if origin is Literal:
        if in_union and len(args) == 1:
            return _word(args[0])
        return ("entries from the valid choices: " + ", ".join(map(_word, args))) if plural else choices(*args)
    if tp is bool:
        return "booleans (true or false)" if plural else "true or false"
    if tp is int:
        return ("integers" if plural else "an integer") + _bounds(meta)
    if tp is float:
        return ("numbers" if plural else "a number") + _bounds(meta)
    if tp is str:
        nonempty = _length(meta)[0] >= 1
        if plural:
            return "non-empty strings" if nonempty else "strings"
        return "a non-empty string" if nonempty else "a string"
    if origin is list:
        if plural:
            return f"lists of {accepts(args[0], True)}"
        lo, hi = _length(meta)
        size = f"{lo} " if hi is not None and lo == hi else ("non-empty " if lo >= 1 else "")
        return f"a {size}list of {accepts(args[0], True)}"
    if origin is dict:
        return f"{'mappings' if plural else 'a mapping'} of {accepts(args[0], True)} to {accepts(args[1], True)}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "blocks of keys" if plural else f"a block of keys ({', '.join(tp.model_fields)})"
    raise TypeError(f"no words for the type {tp!r}")


def field_accepts(cls: type[Option], name: str) -> str:
    """What field ``name`` of ``cls`` accepts, in words (its ``name`` key: the option's own name)."""
    fl = cls.model_fields[name]
    extra = fl.json_schema_extra
    if isinstance(extra, dict) and "group" in extra:
        names, group = typing.get_args(fl.annotation), extra["group"]
        said = " or ".join(repr(n) for n in names)
        return f"{said} (the name of {group}={'|'.join(names)}; choose another option with {group}=<option>)"
    tp = Annotated[(fl.annotation, *fl.metadata)] if fl.metadata else fl.annotation
    return accepts(tp)


def _accepts_a_string(tp: Any) -> bool:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_accepts_a_string(a) for a in typing.get_args(tp))
    return tp is str


# ---------------------------------------------------------------------------------------------------------------
# shared types

PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]
Seed = Annotated[int, Field(ge=0)]
Modules = Annotated[list[Text], Field(min_length=1)]
Layers = list[int] | None
Side = Literal["input", "output"]
Fraction = Literal["quarter", "half", "full"]
LayerPattern = Literal["spread", "last", "random"]
DType = Literal["float32", "bfloat16", "float16"]
# transformers.get_scheduler names that need no extra arguments
Schedule = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"
]
DeviceName = Annotated[
    Text | Annotated[int, Field(ge=0)], Accepts("a device (auto, cpu, cuda, cuda:0, disk) or a GPU index")
]
# accelerate's module -> device map; the module "" is the whole model
DeviceMap = Annotated[
    None | DeviceName | dict[str, DeviceName],
    Accepts("null, a device (auto, cpu, cuda, cuda:0) or a mapping of module names to devices"),
]
EncoderArchitecture = Annotated[
    dict[Text, Text | Number | bool | list[Text] | list[Number]],
    Accepts("a mapping of transformers config fields: model_type and AutoConfig.for_model's keyword arguments"),
]
MaxMemory = (
    Annotated[
        dict[Text | Annotated[int, Field(ge=0)], Text | Annotated[int, Field(ge=0)]],
        Accepts("a mapping of devices to memory caps, e.g. {0: 70GiB, cpu: 100GiB}"),
    ]
    | None
)


# ---------------------------------------------------------------------------------------------------------------
# reading and checking a block of keys against its option


def option_file(group: str, option: str) -> dict[str, Any]:
    """The keys ``configs/<group>/<option>.yaml`` writes, those of the same-group files its ``defaults`` list first
    (``train=paper`` on ``train=default``), interpolations unresolved."""
    path = CONFIG_DIR / f"{option}.yaml" if group == "root" else CONFIG_DIR / group / f"{option}.yaml"
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    raw.pop("hydra", None)
    defaults = raw.pop("defaults", [])
    out: dict[str, Any] = {}
    for parent in [] if group == "root" else defaults:
        if isinstance(parent, str) and parent != "_self_":
            out = _merge(out, option_file(group, parent))
    return _merge(out, raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def named(*classes: type[Option]) -> dict[str, type[Option]]:
    """option name -> its class, for every name a class's ``name`` literal allows (one class may serve several: the
    PennyLane simulators); what ``qadapt.config.SCHEMAS`` is built from."""
    return {name: cls for cls in classes for name in typing.get_args(cls.model_fields["name"].annotation)}


def read(block: Any, cls: type[Option]) -> Any:
    """A block of keys (``cfg.adapter``, a run's saved adapter config) as its validated option ``cls``: typed
    attributes, the keys a YAML (or a run recorded before the key existed) leaves out read as their declared defaults.

    Raises:
        ConfigError: the block does not validate (the key, the value, what the key accepts).
    """
    plain = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block)
    try:
        return cls.model_validate(plain)
    except ValidationError as err:
        raise ConfigError("; ".join(_problems(err, plain, cls, f"{cls.group}.", cls.group))) from None


def value(block: Any, cls: type[Option], key: str) -> Any:
    """``block[key]``, or the default the option ``cls`` declares for ``key`` where the block leaves it out (a YAML that
    leaves the key out, a run recorded before the key existed): the one place such a default is written.

    Raises:
        ConfigError: the key is absent and the option declares no default for it.
    """
    if key in block:
        return block[key]
    fl = cls.model_fields[key]
    if fl.is_required():
        raise ConfigError(f"{key} is missing: expected {field_accepts(cls, key)}")
    return fl.default


def show(value: Any) -> str:
    """A value as it would be typed in an override: ``'abc'``, ``null``, ``true``, ``[1, 2]``."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _section(cls: type[Option], name: str) -> type[Option] | None:
    tp = cls.model_fields[name].annotation
    return tp if isinstance(tp, type) and issubclass(tp, Option) else None


def _problems(err: ValidationError, block: Mapping[str, Any], cls: type[Option], prefix: str, where: str) -> list[str]:
    """pydantic's errors as ours, one per key: the key, its value, what it accepts (the key's own, not pydantic's
    words for each member of a union); unknown keys first, as the YAML's reader meets them."""
    unknown, wrong, seen = [], [], set()
    for e in err.errors():
        loc, owner, value, key = list(e["loc"]), cls, block, prefix
        # descend into nested blocks of keys (task.mc.mmlu_shots); stop at the field whose value is wrong
        while len(loc) > 1 and isinstance(loc[0], str) and loc[0] in owner.model_fields and _section(owner, loc[0]):
            sub = _section(owner, loc[0])
            key, value, owner, loc = f"{key}{loc[0]}.", value.get(loc[0], {}), sub, loc[1:]
        name = str(loc[0])
        if (key, name) in seen:
            continue
        seen.add((key, name))
        if e["type"] == "extra_forbidden":
            owner_where = where if owner is cls else key.rstrip(".")
            unknown.append(f"{key}{name}: not a key of {owner_where}; its keys: {', '.join(owner.model_fields)}")
        elif e["type"] == "missing":
            wrong.append(f"{key}{name} is missing: expected {field_accepts(owner, name)}")
        else:
            given = value[name]
            hint = ""
            if _accepts_a_string(owner.model_fields[name].annotation) and (
                isinstance(given, (int, float, bool)) and not isinstance(given, str)
            ):
                hint = f" (quote it: {key}{name}='{_word(given)}')"
            wrong.append(f"{key}{name}={show(given)}: expected {field_accepts(owner, name)}{hint}")
    return unknown + wrong


def check_block(block: Any, cls: type[Option], prefix: str, where: str) -> list[str]:
    """Problems of one block of keys against the option ``cls``: values of the wrong type or range, keys it does not
    declare, keys it needs that are absent. ``prefix`` is the block's dotted key (``adapter.``), ``where`` names the
    option for unknown keys (``adapter=cua``)."""
    plain = OmegaConf.to_container(block, resolve=True) if isinstance(block, DictConfig) else dict(block)
    try:
        cls.model_validate(plain)
    except ValidationError as err:
        return _problems(err, plain, cls, prefix, where)
    return []


def schema_keys(cls: type[Option], prefix: str = "") -> dict[str, str]:
    """Every dotted key of an option (nested blocks included): key -> what it accepts, in words."""
    out: dict[str, str] = {}
    for name in cls.model_fields:
        out[prefix + name] = field_accepts(cls, name)
        sub = _section(cls, name)
        if sub is not None:
            out.update(schema_keys(sub, f"{prefix}{name}."))
    return out
