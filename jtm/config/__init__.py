"""Params: `params.yaml` is the single source of truth that DVC, Snakemake and `jtm <stage>`
all read. `load` reads it and applies overrides, `sections` types each section as a frozen
dataclass (unknown or missing keys are errors), `schema` checks every value against what is
allowed. Defaults live in params.yaml only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

from jtm.config.load import get_dotted, load_params, params_hash, set_dotted, subset
from jtm.config.schema import check_params, params_schema
from jtm.config.sections import (
    SECTIONS,
    ClusterConfig,
    DataConfig,
    DemoConfig,
    DownstreamConfig,
    EmbedConfig,
    IndexConfig,
    MlflowConfig,
    Paths,
    PretrainConfig,
    ReportConfig,
    ResampleConfig,
    output_fields,
)
from jtm.errors import ConfigError

T = TypeVar("T")

__all__ = [
    "SECTIONS",
    "ClusterConfig",
    "ConfigError",
    "DataConfig",
    "DemoConfig",
    "DownstreamConfig",
    "EmbedConfig",
    "IndexConfig",
    "MlflowConfig",
    "Paths",
    "PretrainConfig",
    "ReportConfig",
    "ResampleConfig",
    "check_params",
    "get_dotted",
    "load_params",
    "output_fields",
    "params_hash",
    "params_schema",
    "section",
    "set_dotted",
    "subset",
    "validate_params",
]


def section(params: dict, name: str, cls: type[T]) -> T:
    """Build the frozen dataclass `cls` from `params[name]`, rejecting unknown or missing keys."""
    raw = params.get(name)
    if not isinstance(raw, dict):
        raise ConfigError(f"params has no section {name!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    missing = sorted(fields - set(raw))
    if unknown or missing:
        raise ConfigError(f"params section {name!r}: unknown keys {unknown}, missing keys {missing}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return cls(**values)


def validate_params(params: dict, source: str | Path | None = "params.yaml") -> None:
    """Check every section's keys and values (see jtm.config.schema), so a typo or a bad value
    fails when the workflow loads rather than when its stage finally runs. `source`: the params
    file the errors name (None: the caller names it)."""
    check_params(params, source)
    for name, cls in SECTIONS.items():
        section(params, name, cls)
