"""Typed config schemas: dataclasses whose fields carry a default, a range, choices and help.

A schema is a dataclass; each field is declared with :func:`option`::

    @dataclass
    class TimeSchema:
        dt: float = option(0.01, "integration step", gt=0)

:func:`check` validates a composed config section against a schema — unknown
and missing keys, types (``true``/``false`` only for booleans; no ``1``, ``no``
or ``"false"``), non-finite numbers, ranges and choices — and raises
:class:`~dynlab.errors.ConfigError` with one line naming the key, the value and
what is accepted. :func:`defaults` gives the nested defaults (what the YAML files
no longer repeat) and :func:`describe` the ``--help`` listing.

Supported field types: ``bool``, ``int``, ``float`` (an int is accepted),
``str``, ``Any``, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict`` (a free
mapping, checked by its owner) and nested schema dataclasses.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import math
import types
import typing
from dataclasses import MISSING
from typing import Any, Mapping, Sequence

from .errors import ConfigError

__all__ = ["option", "REQUIRED", "check", "check_value", "defaults", "describe", "is_schema"]

#: the default of a key the user must give (hydra's "mandatory value" marker)
REQUIRED = "???"


def option(default: Any = REQUIRED, help: str = "", *, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A schema field: ``default`` (``REQUIRED`` for a key without default), one-line ``help``,
    numeric bounds and allowed ``choices``. Mutable defaults are copied per instance."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "choices": tuple(choices) if choices is not None else None}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    if dataclasses.is_dataclass(default) and not isinstance(default, type):
        return dataclasses.field(default_factory=lambda d=default: dataclasses.replace(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def is_schema(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _hints(schema: type) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return REQUIRED


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def defaults(schema: type) -> dict[str, Any]:
    """The nested defaults of ``schema`` as plain containers (``REQUIRED`` where none)."""
    hints = _hints(schema)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(schema):
        tp = hints[f.name]
        value = _field_default(f)
        if is_schema(tp) and (value is REQUIRED or value is None):
            out[f.name] = defaults(tp) if value is REQUIRED else None
        else:
            out[f.name] = _plain(value)
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple, Sequence):
        return "a list"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if is_schema(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _bounds_text(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]:g}")
    return " and ".join(parts)


def _fail(key: str, value: Any, expected: str) -> ConfigError:
    shown = "null" if value is None else repr(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else repr(value)
    return ConfigError(f"{key}={shown} is invalid: expected {expected}")


def check_value(value: Any, tp: Any, meta: Mapping[str, Any], key: str) -> Any:
    """Check one value against its type and metadata; returns it (tuples as lists)."""
    if isinstance(value, str) and value == REQUIRED:
        help_ = meta.get("help") or ""
        raise ConfigError(f"{key} is required{': ' + help_ if help_ else ''} (set {key}=...)")
    origin = typing.get_origin(tp)
    if tp is Any:
        choices = meta.get("choices")
        if choices is not None and not any(value is c or (type(value) is type(c) and value == c) for c in choices):
            raise _fail(key, value, "one of " + ", ".join(str(c).lower() if isinstance(c, bool) else str(c)
                                                          for c in choices))
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _fail(key, value, _type_name(tp))
        non_null = [a for a in args if a is not type(None)]
        errors = []
        for arg in non_null:
            try:
                return check_value(value, arg, meta, key)
            except ConfigError as err:
                errors.append(err)
        if len(non_null) == 1:
            raise errors[0]
        raise _fail(key, value, _type_name(tp))
    if value is None:
        raise _fail(key, value, _type_name(tp) + " (not null)")
    if is_schema(tp):
        return check(value, tp, key)
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _fail(key, value, "a mapping, e.g. {a: 1}")
        return dict(value)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, collections.abc.Sequence):
            raise _fail(key, value, "a list, e.g. [a, b]")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _fail(key, list(value), f"a list of {len(args)} items")
            item_types = list(args)
        else:
            item_types = [args[0] if args else Any] * len(value)
        item_meta = {k: v for k, v in meta.items() if k != "choices"}
        out = [check_value(v, t, item_meta, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_types))]
        if meta.get("choices") is not None:
            bad = [v for v in out if v not in meta["choices"]]
            if bad:
                raise _fail(key, out, f"items from {', '.join(map(str, meta['choices']))}")
        return out
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(key, value, "true or false")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, value, "an integer" + (f" {_bounds_text(meta)}" if _bounds_text(meta) else ""))
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(key, value, "a number" + (f" {_bounds_text(meta)}" if _bounds_text(meta) else ""))
        if not math.isfinite(value):
            raise _fail(key, value, "a finite number" + (f" {_bounds_text(meta)}" if _bounds_text(meta) else ""))
    elif tp is str:
        if not isinstance(value, str):
            raise _fail(key, value, "a string" + (f" from {', '.join(map(str, meta['choices']))}"
                                                  if meta.get("choices") else ""))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, ok in (("ge", lambda v, b: v >= b), ("gt", lambda v, b: v > b),
                          ("le", lambda v, b: v <= b), ("lt", lambda v, b: v < b)):
            b = meta.get(bound)
            if b is not None and not ok(value, b):
                raise _fail(key, value, f"{_type_name(tp)} {_bounds_text(meta)}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise _fail(key, value, f"one of {', '.join(map(str, choices))}")
    return float(value) if tp is float else value


def check(section: Any, schema: type, prefix: str = "") -> dict[str, Any]:
    """Validate a config mapping against ``schema``: returns the checked mapping with defaults
    filled in for absent keys. Raises :class:`ConfigError` (one line) at the first problem."""
    where = prefix or "the config"
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {section!r}")
    hints = _hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(str(k) for k in section if k not in fields)
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"unknown config key {key!r}; {where} accepts: {', '.join(sorted(fields))}")
    out: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        value = section[name] if name in section else _plain(_field_default(f))
        tp = hints[name]
        if is_schema(tp) and name not in section and value is REQUIRED:
            value = defaults(tp)
        out[name] = check_value(value, tp, f.metadata, key)
    return out


def describe(schema: type, prefix: str = "") -> list[tuple[str, Any, str]]:
    """``(key, default, help)`` of every leaf of ``schema``, depth first (for ``--help``)."""
    hints = _hints(schema)
    rows: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(schema):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        default = _field_default(f)
        if is_schema(tp):
            rows.extend(describe(tp, key))
            continue
        text = f.metadata.get("help", "")
        extra = []
        if _bounds_text(f.metadata):
            extra.append(_bounds_text(f.metadata))
        if f.metadata.get("choices") is not None:
            extra.append("one of " + ", ".join(map(str, f.metadata["choices"])))
        if extra:
            text = f"{text} ({'; '.join(extra)})" if text else "; ".join(extra)
        rows.append((key, _plain(default), text))
    return rows
