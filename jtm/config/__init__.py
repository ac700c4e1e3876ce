"""Params: `params.yaml` is the single source of truth that DVC, Snakemake and `jtm <stage>`
all read. `load` reads it and applies overrides, `sections` types each section as a frozen
dataclass (unknown or missing keys are errors), `schema` checks every value against what is
allowed. Defaults live in params.yaml only.
"""

from __future__ import annotations

from typing import TypeVar

from jtm.config.load import get_dotted, load_params, params_hash, set_dotted, subset
from jtm.config.schema import params_schema, validate_params
from jtm.config.sections import (
    SECTIONS,
    ClusterConfig,
    DataConfig,
    DemoConfig,
    DownstreamConfig,
    EmbedConfig,
    IndexConfig,
    IngestConfig,
    LeakageConfig,
    MlflowConfig,
    Paths,
    PretrainConfig,
    ReportConfig,
    ResampleConfig,
    check_keys,
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
    "IngestConfig",
    "LeakageConfig",
    "MlflowConfig",
    "Paths",
    "PretrainConfig",
    "ReportConfig",
    "ResampleConfig",
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
    raw = check_keys(params, name, cls)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return cls(**values)
