"""``params.yaml``: every knob of every stage, grouped by stage, read into typed param groups.

A param group is a frozen dataclass deriving from ``ParamGroup``: its fields are the group's keys
with their types and defaults (the defaults are the values ``params.yaml`` ships, so the file and
the code say the same thing; a test holds them to it). ``Group.from_params(mapping)`` is the one
place where a group is checked: unknown keys are errors, every value is converted to its field's
type or rejected with a message naming the key, then the group's own ``validate`` runs.

Fields made with ``run_knob`` (workers, device, log_every, ...) change how a stage runs, not what
it writes: ``outputs()`` leaves them out, so they enter no fingerprint, and ``dvc.yaml`` does not
track them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

G = TypeVar("G", bound="ParamGroup")


class ParamsKeyError(KeyError):
    """A params.yaml key or group that is not where the code looks for it."""

    def __str__(self) -> str:  # KeyError's repr-quoting makes long messages unreadable
        return str(self.args[0])


class UnknownKeyError(ParamsKeyError):
    """A key that no field of its param group knows (a misspelt knob)."""


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run stages from the repository root")
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must hold a mapping of param groups")
    return params


def group(params: dict[str, Any], name: str) -> dict[str, Any]:
    """One param group of a loaded ``params.yaml``; a missing group (a misspelt name, say) is
    an error, an empty one takes every default."""
    if name not in params:
        groups = sorted(k for k, v in params.items() if isinstance(v, dict))
        raise ParamsKeyError(f"params.yaml has no '{name}' group (it has {groups})")
    g = params[name] or {}
    if not isinstance(g, dict):
        raise ValueError(f"params.yaml '{name}' must be a group of keys, not {g!r}")
    return g


def check_keys(name: str, g: Mapping[str, Any], allowed: set[str]) -> None:
    """A misspelt knob is an error, not a silently ignored default."""
    unknown = sorted(set(g) - allowed)
    if unknown:
        raise UnknownKeyError(
            f"params.yaml '{name}' group: unknown key(s) {unknown}; known: {sorted(allowed)}"
        )


def run_knob(default: Any) -> Any:
    """A field that changes how a stage runs, never what it writes (see the module docstring)."""
    return dataclasses.field(default=default, metadata={"run": True})


@dataclasses.dataclass(frozen=True)
class ParamGroup:
    """Base of every param group. Subclasses set ``GROUP`` (the name in params.yaml), may list
    in ``FLATTEN`` nested-group fields whose keys sit at this group's top level, and override
    ``validate`` for checks across fields."""

    GROUP: ClassVar[str] = ""
    FLATTEN: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def accepted_keys(cls) -> set[str]:
        """Every key this group accepts in params.yaml."""
        out = set()
        for f in dataclasses.fields(cls):
            if f.name in cls.FLATTEN:
                out |= _hints(cls)[f.name].accepted_keys()
            else:
                out.add(f.name)
        return out

    @classmethod
    def run_keys(cls) -> set[str]:
        """The keys made with ``run_knob``."""
        out = set()
        for f in dataclasses.fields(cls):
            if f.name in cls.FLATTEN:
                out |= _hints(cls)[f.name].run_keys()
            elif f.metadata.get("run"):
                out.add(f.name)
        return out

    @classmethod
    def from_params(cls: type[G], g: Mapping[str, Any] | None, name: str | None = None) -> G:
        """The group from its params.yaml mapping (missing keys take their defaults)."""
        name = name or cls.GROUP
        g = {} if g is None else g
        if not isinstance(g, Mapping):
            raise ValueError(f"params.yaml '{name}' must be a group of keys, not {g!r}")
        check_keys(name, g, cls.accepted_keys())
        hints = _hints(cls)
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in cls.FLATTEN:
                sub = hints[f.name]
                kw[f.name] = sub.from_params({k: g[k] for k in sub.accepted_keys() if k in g}, name)
            elif f.name in g:
                kw[f.name] = _convert(g[f.name], hints[f.name], f"{name}.{f.name}")
        p = cls(**kw)
        p.validate()
        return p

    def validate(self) -> None:
        """Checks across fields; raise ``ValueError`` naming the param."""

    def outputs(self) -> dict[str, Any]:
        """The fields that decide a stage's outputs (run knobs left out), for fingerprints."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.metadata.get("run"):
                continue
            out[f.name] = v.outputs() if isinstance(v, ParamGroup) else _plain(v)
        return out


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v):
        return dataclasses.asdict(v)
    return v


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_PLURAL.get(args[0], _describe(args[0]))}"
        return "[lo, hi]" if len(args) == 2 else f"a list of {len(args)} values"
    if origin is dict:
        return "a mapping"
    if hint is type(None):
        return "null"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


_PLURAL = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the type ``hint`` describes, or a ``ValueError`` naming ``key``."""
    bad = ValueError(f"{key} must be {_describe(hint)}, not {value!r} (params.yaml)")
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        for a in args:  # a value already of one of the types keeps it (int | str: 1 stays 1)
            if a is not type(None) and typing.get_origin(a) is None and type(value) is a:
                return value
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ValueError:
                continue
        raise bad
    if origin is tuple:
        args = typing.get_args(hint)
        variadic = len(args) == 2 and args[1] is Ellipsis
        if value is None and variadic:  # `key: null` or `key:` in YAML: an empty list
            return ()
        if not isinstance(value, list | tuple):
            raise bad
        if variadic:
            return tuple(_convert(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise bad
        return tuple(_convert(v, a, key) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        kt, vt = typing.get_args(hint)
        return {_convert(k, kt, key): _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, ParamGroup):
        return hint.from_params(value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if hint is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if hint is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads 1e-4 as a string; DVC (YAML 1.2) as a number
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"param {key}: no conversion for type {hint!r}")
