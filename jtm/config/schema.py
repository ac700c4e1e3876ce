"""Params checked by value, in one place: a JSON Schema made from the section dataclasses.

Each field's type gives its JSON type; its metadata (jtm/config/sections.py) the allowed names
(from jtm.choices) and ranges. The CLI, the Snakefile and the stage runner all check params
right after loading (`validate_params`), so a bad value fails before any stage runs, as one
`ConfigError` (exit status 2) that names the params file, the key, the value and what is
allowed. `jtm schema` prints the schema.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path

import jsonschema

from jtm.config.load import upgrade_names
from jtm.config.sections import SECTIONS, check_keys
from jtm.errors import ConfigError

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "object"}
_RANGES = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusive_minimum": "exclusiveMinimum",
    "exclusive_maximum": "exclusiveMaximum",
}
# YAML 1.1 (PyYAML, hence Snakemake's config) reads 1e-3 as a string; YAML 1.2 (DVC) as a number.
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _type_schema(hint) -> dict:
    """JSON Schema of a field's type: int, float, str, bool, dict, X | None, tuple[X, ...]."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        options = [_type_schema(a) for a in args if a is not type(None)]
        return {"anyOf": options + ([{"type": "null"}] if type(None) in args else [])}
    if typing.get_origin(hint) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0])}
        return {
            "type": "array",
            "prefixItems": [_type_schema(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    return {"type": _JSON_TYPES[hint]}


def _constrain(schema: dict, meta: typing.Mapping) -> dict:
    """Add a field's choices and ranges to its type schema (to the items of an array)."""
    rules = {_RANGES[k]: v for k, v in meta.items() if k in _RANGES}
    if "choices" in meta:
        rules["enum"] = list(meta["choices"])
    if "min_items" in meta:
        schema = schema | {"minItems": meta["min_items"]}
    if meta.get("unique"):
        schema = schema | {"uniqueItems": True}
    if "items_schema" in meta:
        return schema | {"items": meta["items_schema"]}
    if not rules:
        return schema
    if schema.get("type") == "array":
        if "items" in schema:
            return schema | {"items": schema["items"] | rules}
        return schema | {"prefixItems": [item | rules for item in schema["prefixItems"]]}
    if "anyOf" in schema:
        return {"anyOf": [_constrain(s, meta) if s["type"] != "null" else s for s in schema["anyOf"]]}
    return schema | rules


def section_schema(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return {
        "type": "object",
        "properties": {f.name: _constrain(_type_schema(hints[f.name]), f.metadata) for f in fields},
        "required": [f.name for f in fields],
        "additionalProperties": False,
    }


def params_schema() -> dict:
    """The whole params file's JSON Schema (draft 2020-12)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "jtm params.yaml",
        "type": "object",
        "properties": {name: section_schema(cls) for name, cls in SECTIONS.items()},
        "required": list(SECTIONS),
        "additionalProperties": False,
    }


def _coerce_numbers(params: dict) -> None:
    """Turn YAML 1.1's number strings ("1e-3") into floats where a field wants a number."""
    for name, cls in SECTIONS.items():
        node = params.get(name)
        if not isinstance(node, dict):
            continue
        for key, hint in typing.get_type_hints(cls).items():
            if float in typing.get_args(hint) + (hint,) and isinstance(node.get(key), str):
                if _FLOAT.match(node[key].strip()):
                    node[key] = float(node[key])
            elif typing.get_origin(hint) is tuple and float in typing.get_args(hint):
                if isinstance(node.get(key), list):
                    node[key] = [float(v) if isinstance(v, str) and _FLOAT.match(v) else v for v in node[key]]


def validate_params(params: dict, source: str | Path | None = "params.yaml") -> None:
    """Check every section's keys and every value's type, name and range, in place (old key
    names renamed, YAML 1.1 number strings read as numbers), so a typo or a bad value fails when
    the workflow loads rather than when its stage finally runs. Raise one ConfigError naming
    `source` (the params file; None: the caller names it) and the first bad key."""
    upgrade_names(params, source)
    for name, cls in SECTIONS.items():
        check_keys(params, name, cls, source)
    _coerce_numbers(params)
    validator = jsonschema.Draft202012Validator(params_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    error = errors[0]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)[1:]
    if error.validator in ("required", "additionalProperties"):
        where = f"section {key!r}" if key else "the top level"
        raise ConfigError(f"{where}: {error.message}", source=source)
    raise ConfigError(f"{key}={error.instance!r}: {_allowed(error)}", source=source)


def bounds_in_words(rule: dict) -> list[str]:
    """A schema's numeric bounds as [">= 1", "< 1"]: what error messages and the reference say."""
    words = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))
    return [f"{word} {rule[key]}" for key, word in words if key in rule]


def _allowed(error: jsonschema.ValidationError) -> str:
    """What the schema allows where `error` happened, in words."""
    rule = error.schema
    if "enum" in rule:
        return f"use one of {rule['enum']}"
    if "anyOf" in rule:
        kinds = [s.get("type") or repr(s.get("const")) for s in rule["anyOf"]]
        return f"expected {' or '.join(kinds)}"
    bounds = bounds_in_words(rule)
    if error.validator in _RANGES.values() or error.validator in ("minimum", "maximum"):
        return "must be " + " and ".join(bounds)
    if error.validator == "minItems":
        return f"needs at least {rule['minItems']} item(s)"
    if error.validator == "type":
        return f"expected {rule['type']}" + (f" ({' and '.join(bounds)})" if bounds else "")
    return error.message
