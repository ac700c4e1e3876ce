"""The params file's sections as frozen dataclasses: each field's type, allowed values and range.

A field's metadata says what the schema (jtm/config/schema.py) allows beyond its type:
`choices` (a list from jtm.choices), `minimum`/`maximum`, `exclusive_minimum`, and
`reruns=False` for a key that cannot change what its stage writes (worker counts, retries,
timeouts): the stage table leaves those out of the stage's params, so changing one reruns
nothing, and pretraining leaves them out of a checkpoint's fingerprint. Defaults live in
params.yaml only.
"""

from __future__ import annotations

import dataclasses
import difflib

from jtm import choices
from jtm.errors import ConfigError
from jtm.models.spec import ModelSpec


def choice(names: tuple[str, ...], **more) -> dataclasses.Field:
    return dataclasses.field(metadata={"choices": names, **more})


def at_least(minimum: float, **more) -> dataclasses.Field:
    return dataclasses.field(metadata={"minimum": minimum, **more})


def positive(**more) -> dataclasses.Field:
    return dataclasses.field(metadata={"exclusive_minimum": 0, **more})


def share() -> dataclasses.Field:
    """A fraction in (0, 1]."""
    return dataclasses.field(metadata={"exclusive_minimum": 0, "maximum": 1})


def label_budgets() -> dataclasses.Field:
    """Label budgets: positive numbers of labelled tracks per class, or "all"."""
    items = {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "all"}]}
    return dataclasses.field(metadata={"items_schema": items, "min_items": 1})


def bookkeeping(**more) -> dataclasses.Field:
    """A key that changes how a stage runs, never what it writes."""
    return dataclasses.field(metadata={"reruns": False, **more})


def check_keys(params: dict, name: str, cls: type, source=None) -> dict:
    """`params[name]`, checked to hold exactly the fields of `cls` (unknown and missing keys are
    named together: a typo is usually both)."""
    node = params.get(name)
    if not isinstance(node, dict):
        raise ConfigError(f"params has no section {name!r}", source=source)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown, missing = sorted(set(node) - fields), sorted(fields - set(node))
    if unknown or missing:
        close = {u: difflib.get_close_matches(u, missing, n=1, cutoff=0.6) for u in unknown}
        hints = [f"{u!r} for {c[0]!r}" for u, c in close.items() if c]
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        raise ConfigError(
            f"params section {name!r}: unknown keys {unknown}, missing keys {missing}{hint}", source
        )
    return node


def output_fields(cls: type) -> tuple[str, ...]:
    """The fields of a section that can change its stage's output (bookkeeping left out)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("reruns", True))


@dataclasses.dataclass(frozen=True)
class Paths:
    scores: str
    raw: str
    audio16k: str
    index: str
    ingest: str
    ingest_work: str
    survey: str
    leakage: str
    pretrain: str
    checkpoints: str
    score_cache: str
    embeddings: str
    cells: str
    downstream: str
    metrics: str
    report: str
    report_md: str
    figures: str


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: str = choice(choices.SOURCES)
    path: str | None
    downloads: str
    archive_url: str
    archive_size: int | None = at_least(0)
    archive_md5: str | None
    metadata_url: str
    metadata_size: int | None = at_least(0)
    metadata_md5: str | None
    record_url: str | None = bookkeeping()
    retries: int = bookkeeping(minimum=0)
    timeout: float = bookkeeping(exclusive_minimum=0)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    seed: int
    scores: tuple[str, ...]
    excerpt_seconds: float = positive()
    excerpts: int = at_least(1)
    default_bpm: float = positive()
    renderings: int = at_least(1)
    ensemble_choice: str = choice(choices.ENSEMBLE_CHOICES)
    test_fraction: float = dataclasses.field(metadata={"minimum": 0, "exclusive_maximum": 1})
    soundfont: str | None
    more_soundfonts: tuple[str, ...]
    held_out_soundfonts: int = at_least(0)
    rooms: int = at_least(0)
    held_out_rooms: int = at_least(0)
    timbre_variation: bool
    level_db: tuple[float, float] = dataclasses.field(metadata={"maximum": 0})
    snr_db: tuple[float, float] = at_least(0)
    sample_rate: int = at_least(8000)
    tempo_jitter: float = dataclasses.field(metadata={"minimum": 0, "exclusive_maximum": 1})
    onset_jitter_ms: float = at_least(0)
    velocity: int = dataclasses.field(metadata={"minimum": 1, "maximum": 127})
    velocity_jitter: float = at_least(0)
    tail_seconds: float = at_least(0)
    wav_subtype: str
    workers: int = bookkeeping(minimum=1)


@dataclasses.dataclass(frozen=True)
class ResampleConfig:
    sample_rate: int = at_least(1000)
    quality: str = choice(choices.RESAMPLE_QUALITIES)
    dtype: str = choice(choices.RESAMPLE_DTYPES)
    block_seconds: float = positive()
    workers: int = bookkeeping(minimum=1)


@dataclasses.dataclass(frozen=True)
class IndexConfig:
    seed: int
    window: int = at_least(160)
    hop: int = at_least(1)
    val_fraction: float = dataclasses.field(metadata={"minimum": 0, "exclusive_maximum": 1})


def corpora() -> dataclasses.Field:
    """Unlabeled corpora: each a name (its shards' folder), folders or glob patterns, a weight."""
    corpus = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
            "paths": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            "weight": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["name", "paths", "weight"],
        "additionalProperties": False,
    }
    return dataclasses.field(metadata={"items_schema": corpus})


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    corpora: tuple[dict, ...] = corpora()
    dtype: str = choice(choices.RESAMPLE_DTYPES)
    shard_mb: float = positive()
    max_rejected: float = share()
    block_seconds: float = positive()
    workers: int = bookkeeping(minimum=1)


@dataclasses.dataclass(frozen=True)
class LeakageConfig:
    splits: tuple[str, ...] = choice(choices.SPLITS_GUARDED)
    threshold: float = share()
    min_seconds: float = positive()


@dataclasses.dataclass(frozen=True)
class PretrainConfig(ModelSpec):
    """The model's fields (ModelSpec: encoder ... reverse) and how it is trained."""

    seed: int
    # The study's pretraining runs: run r trains with seed `seed + r` (its random-init control
    # and end-to-end inits are offset by r too); each run is its own cached job.
    runs: tuple[int, ...] = dataclasses.field(metadata={"minimum": 0, "min_items": 1, "unique": True})
    n_negatives: int = at_least(1)
    negative_pool: int = at_least(0)  # 0: negatives from every frame of the (global) batch
    same_track_share: float = dataclasses.field(metadata={"minimum": 0, "maximum": 1})
    # Augmentation of the past (the context network's input; the predicted frames stay clean)
    augment: tuple[str, ...] = choice(choices.AUGMENTS, unique=True)
    augment_band_octaves: tuple[float, float] = positive()  # bandreject: the band's width
    augment_dropout_ms: tuple[float, float] = at_least(0)  # dropout: each silenced gap's length
    augment_rt60: tuple[float, float] = positive()  # reverb: the room's decay time, seconds
    augment_snr_db: tuple[float, float] = dataclasses.field(metadata={})  # noise: below the window's RMS
    augment_mix_db: tuple[float, float] = dataclasses.field(
        metadata={}
    )  # mix: another window, this far below
    sampling: str = choice(choices.SAMPLINGS)
    category: str = choice(choices.CATEGORIES)
    musicnet_weight: float = at_least(0)  # MusicNet's train split beside ingested corpora (0: none)
    loader: str = choice(choices.LOADERS)  # global: shares of one plan; sharded: files per rank
    batch_size: int = at_least(1)
    jitter: int = at_least(0)
    lr: float = positive()
    betas: tuple[float, float] = dataclasses.field(metadata={"minimum": 0, "exclusive_maximum": 1})
    eps: float = positive()
    warmup_steps: int = at_least(0)
    decay_every: int = at_least(0)
    decay_gamma: float = positive()
    steps: int = at_least(1)
    log_every: int = at_least(1)
    val_every: int = at_least(1)
    val_batches: int = at_least(1)
    checkpoint_every: int = bookkeeping(minimum=1)
    workers: int = bookkeeping(minimum=0)
    fetch_threads: int = bookkeeping(minimum=0)  # with workers 0: threads fetching batches ahead
    threads: int = at_least(0)  # 0: torch's default; float sums depend on the count
    # Part of the model's identity (jtm/train/pretrain.py's `numerics`): a CUDA run in bf16 gives
    # other weights than a CPU run, so changing the device reruns pretraining.
    device: str = choice(choices.DEVICES)
    bf16: bool
    compile: bool


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    features: tuple[str, ...] = choice(choices.FEATURES)
    layer: str = choice(choices.LAYERS)
    pooling: str = choice(choices.POOLINGS)
    seed: int
    batch_size: int = at_least(1)
    threads: int = at_least(0)
    device: str = choice(choices.DEVICES)  # as pretrain.device: a GPU's bf16 features differ
    bf16: bool


@dataclasses.dataclass(frozen=True)
class DownstreamConfig:
    tasks: tuple[str, ...] = choice(choices.TASKS)
    features: tuple[str, ...] = choice(choices.FEATURES)
    probes: tuple[str, ...] = choice(choices.PROBES)
    mlp_hidden: int = at_least(1)
    end_to_end: tuple[str, ...] = choice(choices.INITS)
    end_to_end_tasks: tuple[str, ...] = choice(choices.TASKS)
    end_to_end_budgets: tuple[int | str, ...] = label_budgets()
    budgets: tuple[int | str, ...] = label_budgets()
    seeds: tuple[int, ...] = dataclasses.field(metadata={"min_items": 1})
    transcription_seeds: tuple[int, ...] = dataclasses.field(metadata={"min_items": 1})
    end_to_end_seeds: tuple[int, ...] = dataclasses.field(metadata={"min_items": 1})
    l2_grid: tuple[float, ...] = positive(min_items=1)
    max_iter: int = at_least(1)
    mlp_max_iter: int = at_least(1)
    frame_stride: int = at_least(1)
    memory_gb: float = positive()
    bootstrap_resamples: int = at_least(10)
    bootstrap_unit: str = choice(choices.BOOTSTRAP_UNITS)
    bootstrap_seed: int
    e2e_steps: int = at_least(1)
    e2e_batch_size: int = at_least(1)
    e2e_lr: float = positive()
    e2e_val_every: int = at_least(1)
    e2e_val_windows: int = at_least(1)
    excerpt_windows: int = at_least(1)
    threads: int = at_least(0)
    e2e_device: str = choice(choices.DEVICES)  # the end-to-end baselines' device, as pretrain.device
    e2e_bf16: bool


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    seed: int
    projection_windows: int = at_least(2)


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """What Snakemake asks a scheduler (or the local machine) for; see jtm/workflow.py."""

    partition: str | None
    account: str | None
    mem_mb: int = at_least(1)
    runtime: int = at_least(1)
    rules: dict


@dataclasses.dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str
    experiment: str
    recorder: str = choice(choices.RECORDERS)


SECTIONS = {
    "paths": Paths,
    "data": DataConfig,
    "demo": DemoConfig,
    "resample": ResampleConfig,
    "index": IndexConfig,
    "ingest": IngestConfig,
    "leakage": LeakageConfig,
    "pretrain": PretrainConfig,
    "embed": EmbedConfig,
    "downstream": DownstreamConfig,
    "report": ReportConfig,
    "cluster": ClusterConfig,
    "mlflow": MlflowConfig,
}
