"""Load params.yaml, apply dotted `--set key=value` overrides, and expose typed sections.

`params.yaml` is the single source of truth: DVC, Snakemake and `jtm <stage>` all read it.
Each section becomes a frozen dataclass here; a key the dataclass does not know is an error,
so a typo never silently falls back to a default. Defaults live in params.yaml only.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params file or override that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Paths:
    scores: str
    raw: str
    audio16k: str
    index: str
    pretrain: str
    checkpoints: str
    embeddings: str
    cells: str
    downstream: str
    metrics: str
    report: str
    report_md: str
    figures: str


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: str
    path: str | None
    downloads: str
    archive_url: str
    archive_size: int | None
    archive_md5: str | None
    metadata_url: str
    metadata_size: int | None
    metadata_md5: str | None
    record_url: str | None
    retries: int
    timeout: float


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    seed: int
    scores: tuple[str, ...]
    excerpt_seconds: float
    default_bpm: float
    renderings: int
    ensemble_choice: str
    test_fraction: float
    soundfont: str | None
    sample_rate: int
    tempo_jitter: float
    onset_jitter_ms: float
    velocity: int
    velocity_jitter: float
    tail_seconds: float
    wav_subtype: str
    workers: int


@dataclasses.dataclass(frozen=True)
class ResampleConfig:
    sample_rate: int
    quality: str
    dtype: str
    block_seconds: float
    workers: int


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    seed: int
    window: int
    hop: int
    val_fraction: float


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    seed: int
    encoder: str
    sinc_kernel: int
    hidden: int
    norm: str
    context: str
    context_layers: int
    heads: int
    head: str
    n_predicts: int
    reverse: bool
    n_negatives: int
    sampling: str
    category: str
    batch_size: int
    jitter: int
    lr: float
    betas: tuple[float, float]
    eps: float
    warmup_steps: int
    decay_every: int
    decay_gamma: float
    steps: int
    log_every: int
    val_every: int
    val_batches: int
    checkpoint_every: int
    workers: int
    threads: int
    device: str
    bf16: bool
    compile: bool


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    features: tuple[str, ...]
    layer: str
    seed: int
    batch_size: int
    threads: int


@dataclasses.dataclass(frozen=True)
class DownstreamConfig:
    tasks: tuple[str, ...]
    features: tuple[str, ...]
    heads: tuple[str, ...]
    mlp_hidden: int
    end_to_end: tuple[str, ...]
    end_to_end_tasks: tuple[str, ...]
    end_to_end_fractions: tuple[float, ...]
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    transcription_seeds: tuple[int, ...]
    end_to_end_seeds: tuple[int, ...]
    lr: float
    weight_decay: float
    batch_size: int
    frame_batch_size: int
    max_epochs: int
    patience: int
    e2e_steps: int
    e2e_batch_size: int
    e2e_lr: float
    e2e_val_every: int
    e2e_val_windows: int
    excerpt_windows: int
    threads: int


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    seed: int
    projection_windows: int


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """What Snakemake asks a scheduler (or the local machine) for; see jtm/workflow.py."""

    partition: str | None
    account: str | None
    mem_mb: int
    runtime: int
    rules: dict


@dataclasses.dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str
    experiment: str


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> dict:
    """Read a params file and apply `key.sub=value` overrides (values parsed as YAML)."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read params: {err}") from err
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        set_dotted(params, key, yaml.safe_load(raw))
    return params


def set_dotted(params: dict, key: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict; every level but the last must already exist."""
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"--set {key}: no section {part!r} in params")
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"--set {key}: unknown key {leaf!r} (known: {', '.join(node)})")
    node[leaf] = value


def get_dotted(params: dict, key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"params has no key {key!r}")
        node = node[part]
    return node


def subset(params: dict, keys: list[str]) -> dict:
    """The values of dotted `keys`, as {key: value}: what one stage reads."""
    return {key: copy.deepcopy(get_dotted(params, key)) for key in keys}


def params_hash(values: dict) -> str:
    """A short stable hash of a params subset, for MLflow tags."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


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


SECTIONS = {
    "paths": Paths,
    "data": DataConfig,
    "demo": DemoConfig,
    "resample": ResampleConfig,
    "index": IndexConfig,
    "pretrain": PretrainConfig,
    "embed": EmbedConfig,
    "downstream": DownstreamConfig,
    "report": ReportConfig,
    "cluster": ClusterConfig,
    "mlflow": MlflowConfig,
}


def validate_params(params: dict) -> None:
    """Check every section against its dataclass (unknown or missing keys are errors), so a
    typo fails when the workflow loads rather than when its stage finally runs."""
    for name, cls in SECTIONS.items():
        section(params, name, cls)
