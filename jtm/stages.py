"""The pipeline's stages: what each reads, writes and depends on, and the function it runs.

This table is what `jtm <stage>`, the Snakemake scripts and the DVC commands share; a test
checks that dvc.yaml and the Snakefile declare exactly these inputs, outputs and params.
Params lists name only the keys that can change a stage's output: tracking settings and
worker counts are read too but left out, so changing them reruns nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from jtm.config import (
    ConfigError,
    DataConfig,
    DemoConfig,
    DownstreamConfig,
    EmbedConfig,
    IndexConfig,
    PretrainConfig,
    ReportConfig,
    ResampleConfig,
    get_dotted,
    section,
    subset,
)
from jtm.errors import DataError
from jtm.tracking import stage_run

log = logging.getLogger(__name__)

SOURCES = ("demo", "musicnet", "local")
Paths = dict[str, Path]  # role -> path


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    summary: str
    inputs: dict[str, str]  # role -> params key holding its path
    outputs: dict[str, str]
    params: tuple[str, ...]  # dotted keys that can change the output
    code: tuple[str, ...]  # modules whose change reruns the stage (DVC deps, Snakemake inputs)
    workers: str | None  # params key of its process count (Snakemake sets it to the rule's threads)
    run: Callable[..., dict]  # (params, inputs, outputs, tracker, item) -> metrics
    # A matrix stage runs once per item: one value from each params list named here (item name ->
    # params key), as a DVC `matrix` and Snakemake wildcards; its output is `cell` below the path.
    matrix: dict[str, str] = dataclasses.field(default_factory=dict)
    cell: str = ""


def _demo_scores(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.atomic import atomic_dir
    from jtm.data.scores import extract_scores

    cfg = section(params, "demo", DemoConfig)
    scores, notes = extract_scores(list(cfg.scores), cfg.excerpt_seconds, cfg.default_bpm, cfg.workers)
    with atomic_dir(outputs["scores"]) as tmp:
        scores.to_parquet(tmp / "scores.parquet", index=False)
        notes.to_parquet(tmp / "notes.parquet", index=False)
    return {"scores": len(scores), "notes": len(notes), "excerpt_hours": scores["seconds"].sum() / 3600}


def _acquire(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.data.acquire import acquire_local, acquire_musicnet
    from jtm.data.render import render_corpus

    data = section(params, "data", DataConfig)
    if data.source not in SOURCES:
        raise DataError("params.yaml", f"data.source={data.source!r}: supported sources are {SOURCES}")
    if data.source == "musicnet":
        return acquire_musicnet(data, outputs["raw"])
    if data.source == "local":
        return acquire_local(data, outputs["raw"])
    cfg = section(params, "demo", DemoConfig)
    scores = pd.read_parquet(inputs["scores"] / "scores.parquet")
    notes = pd.read_parquet(inputs["scores"] / "notes.parquet")
    return render_corpus(scores, notes, cfg, outputs["raw"], cfg.workers)


def _resample(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.data.resample import resample_corpus

    return resample_corpus(inputs["raw"], outputs["audio16k"], section(params, "resample", ResampleConfig))


def _index(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.data.index import build_index

    return build_index(inputs["audio16k"], outputs["index"], section(params, "index", IndexConfig))


_DEMO_RENDER_KEYS = tuple(
    f"demo.{k}"
    for k in (
        "seed",
        "renderings",
        "ensemble_choice",
        "test_fraction",
        "soundfont",
        "sample_rate",
        "tempo_jitter",
        "onset_jitter_ms",
        "velocity",
        "velocity_jitter",
        "tail_seconds",
        "wav_subtype",
    )
)


def _pretrain(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.train.pretrain import pretrain

    checkpoints = Path(get_dotted(params, "paths.checkpoints"))
    return pretrain(
        inputs["index"], outputs["model"], checkpoints, section(params, "pretrain", PretrainConfig), tracker
    )


_PRETRAIN_KEYS = tuple(
    f"pretrain.{f.name}"
    for f in dataclasses.fields(PretrainConfig)
    if f.name not in ("workers", "checkpoint_every", "device", "compile")
)


def _embed(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.eval.embed import embed

    return embed(
        inputs["index"], inputs["model"], outputs["embeddings"], section(params, "embed", EmbedConfig)
    )


def _cell(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.train.downstream import cell_methods, run_cell

    cfg = section(params, "downstream", DownstreamConfig)
    return run_cell(
        inputs["index"],
        inputs.get("embeddings"),
        inputs.get("model"),
        outputs["cell"],
        cfg,
        item["task"],
        cell_methods(item, cfg),
        tracker,
    )


def _downstream(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.eval.collect import collect

    return collect(
        inputs["cells"],
        outputs["results"],
        outputs["metrics"],
        section(params, "downstream", DownstreamConfig),
    )


_CELL_KEYS = ("downstream.excerpt_windows", "downstream.threads")
_PROBE_KEYS = (
    tuple(
        f"downstream.{k}"
        for k in (
            "features",
            "heads",
            "mlp_hidden",
            "fractions",
            "seeds",
            "transcription_seeds",
            "lr",
            "weight_decay",
            "batch_size",
            "frame_batch_size",
            "max_epochs",
            "patience",
        )
    )
    + _CELL_KEYS
)
_END_TO_END_KEYS = (
    tuple(
        f"downstream.{k}"
        for k in (
            "end_to_end_fractions",
            "end_to_end_seeds",
            "e2e_steps",
            "e2e_batch_size",
            "e2e_lr",
            "e2e_val_every",
            "e2e_val_windows",
        )
    )
    + _CELL_KEYS
)
# Which cells exist: what stage `downstream` gathers (the cells' own params are above).
_STUDY_KEYS = tuple(
    f"downstream.{k}" for k in ("tasks", "features", "heads", "end_to_end", "end_to_end_tasks")
)
_CELL_CODE = (
    "jtm/train/downstream.py",
    "jtm/eval/labels.py",
    "jtm/eval/subsets.py",
    "jtm/eval/metrics.py",
)


def _report(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.report.build import build_report

    shaping = [key for stage in STAGES.values() for key in stage.params]
    metrics = build_report(
        inputs["index"],
        inputs["model"],
        inputs["embeddings"],
        inputs["results"],
        outputs["html"],
        outputs["markdown"],
        outputs["figures"],
        subset(params, list(dict.fromkeys(shaping))),
        section(params, "report", ReportConfig),
    )
    print(f"report: {outputs['html']} (and {outputs['markdown']})")
    return metrics


# Retries, timeouts and the record cross-check change how a download goes, not what it yields.
_DATA_KEYS = tuple(
    f"data.{f.name}"
    for f in dataclasses.fields(DataConfig)
    if f.name not in ("retries", "timeout", "record_url")
)

STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "demo_scores",
            "Parse the demo's scores (music21 corpus or files) into note tables: the slow step, cached.",
            inputs={},
            outputs={"scores": "paths.scores"},
            params=("demo.scores", "demo.excerpt_seconds", "demo.default_bpm"),
            code=("jtm/data/scores.py",),
            workers="demo.workers",
            run=_demo_scores,
        ),
        Stage(
            "acquire",
            "Produce the raw corpus in MusicNet's layout (data.source=demo: render the parsed scores).",
            inputs={"scores": "paths.scores"},
            outputs={"raw": "paths.raw"},
            params=_DATA_KEYS + _DEMO_RENDER_KEYS,
            code=(
                "jtm/data/acquire.py",
                "jtm/data/download.py",
                "jtm/data/extract.py",
                "jtm/data/render.py",
                "jtm/data/synth.py",
                "jtm/data/ensembles.py",
            ),
            workers="demo.workers",
            run=_acquire,
        ),
        Stage(
            "resample",
            "Check the raw corpus and resample every track 44.1 -> 16 kHz with soxr (streamed).",
            inputs={"raw": "paths.raw"},
            outputs={"audio16k": "paths.audio16k"},
            params=("resample.sample_rate", "resample.quality", "resample.dtype", "resample.block_seconds"),
            code=("jtm/data/resample.py", "jtm/data/musicnet.py"),
            workers="resample.workers",
            run=_resample,
        ),
        Stage(
            "index",
            "Build the tracks/windows/notes Parquet tables and the by-work validation split.",
            inputs={"audio16k": "paths.audio16k"},
            outputs={"index": "paths.index"},
            params=("index.seed", "index.window", "index.hop", "index.val_fraction"),
            code=("jtm/data/index.py",),
            workers=None,
            run=_index,
        ),
        Stage(
            "pretrain",
            "Train CPC on the train windows (CPU, GPU, or several processes under torchrun); resumable.",
            inputs={"index": "paths.index", "audio16k": "paths.audio16k"},
            outputs={"model": "paths.pretrain"},
            params=_PRETRAIN_KEYS,
            code=(
                "jtm/train/pretrain.py",
                "jtm/train/infonce.py",
                "jtm/data/sampling.py",
                "jtm/data/windows.py",
                "jtm/models",
            ),
            workers=None,  # the rule asks for pretrain.threads (torch) + pretrain.workers (loader)
            run=_pretrain,
        ),
        Stage(
            "embed",
            "Embed every window (cpc, random-init control, log-mel) at 100 Hz, frames and pooled.",
            inputs={"index": "paths.index", "audio16k": "paths.audio16k", "model": "paths.pretrain"},
            outputs={"embeddings": "paths.embeddings"},
            params=tuple(f"embed.{f.name}" for f in dataclasses.fields(EmbedConfig)),
            code=("jtm/eval/embed.py", "jtm/models"),
            workers=None,
            run=_embed,
        ),
        Stage(
            "probe",
            "Train and score a task's probes: every frozen feature set and head, fraction and seed.",
            inputs={"index": "paths.index", "embeddings": "paths.embeddings"},
            outputs={"cell": "paths.cells"},
            params=_PROBE_KEYS,
            code=_CELL_CODE + ("jtm/train/probe.py",),
            workers="downstream.threads",
            run=_cell,
            matrix={"task": "downstream.tasks"},
            cell="{task}/probes",
        ),
        Stage(
            "end_to_end",
            "Train and score one end-to-end cell (task, supervised | finetune) on the audio windows.",
            inputs={"index": "paths.index", "audio16k": "paths.audio16k", "model": "paths.pretrain"},
            outputs={"cell": "paths.cells"},
            params=_END_TO_END_KEYS,
            code=_CELL_CODE + ("jtm/train/end_to_end.py",),
            workers="downstream.threads",
            run=_cell,
            matrix={"task": "downstream.end_to_end_tasks", "init": "downstream.end_to_end"},
            cell="{task}/{init}",
        ),
        Stage(
            "downstream",
            "Gather the study's cells into results, per-cell metrics (mean, std) and curves.",
            inputs={"cells": "paths.cells"},
            outputs={"results": "paths.downstream", "metrics": "paths.metrics"},
            params=_STUDY_KEYS,
            code=("jtm/eval/collect.py",),
            workers=None,
            run=_downstream,
        ),
        Stage(
            "report",
            "Write the study's report (HTML, self-contained, and Markdown) from the stages' outputs.",
            inputs={
                "index": "paths.index",
                "model": "paths.pretrain",
                "embeddings": "paths.embeddings",
                "results": "paths.downstream",
            },
            outputs={"html": "paths.report", "markdown": "paths.report_md", "figures": "paths.figures"},
            params=tuple(f"report.{f.name}" for f in dataclasses.fields(ReportConfig)),
            code=("jtm/report",),
            workers=None,
            run=_report,
        ),
    )
}


def stage_items(stage: Stage, params: dict) -> list[dict[str, str]]:
    """The items a matrix stage runs for (every combination of its params lists); [{}] otherwise."""
    names = list(stage.matrix)
    values = [list(get_dotted(params, key)) for key in stage.matrix.values()]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def item_name(item: dict) -> str:
    """As DVC names a matrix stage's item: the `ensemble-finetune` of `end_to_end@ensemble-finetune`."""
    return "-".join(str(v) for v in item.values())


def stage_paths(
    stage: Stage, params: dict, item: dict | None = None
) -> tuple[dict[str, Path], dict[str, Path]]:
    """The stage's input and output paths as params name them (a matrix item's cell below)."""
    inputs = {role: Path(get_dotted(params, key)) for role, key in stage.inputs.items()}
    outputs = {role: Path(get_dotted(params, key)) for role, key in stage.outputs.items()}
    if stage.matrix:
        if item is None or set(item) != set(stage.matrix):
            raise ConfigError(f"stage {stage.name!r} runs per item: give {', '.join(stage.matrix)}")
        outputs = {role: path / stage.cell.format(**item) for role, path in outputs.items()}
    return inputs, outputs


def run_stage(
    name: str, params: dict, inputs: dict | None = None, outputs: dict | None = None, item: dict | None = None
) -> dict:
    """Run one stage (one item of a matrix stage) inside an MLflow run; paths default to params'."""
    stage = STAGES[name]
    item = dict(item or {})
    default_inputs, default_outputs = stage_paths(stage, params, item)
    inputs = {k: Path(v) for k, v in (inputs or default_inputs).items()}
    outputs = {k: Path(v) for k, v in (outputs or default_outputs).items()}
    for role, path in inputs.items():
        if not path.exists():
            raise DataError(
                path, f"input {role!r} of stage {name!r} not found: run the stage that makes it first"
            )
    run_name = f"{name}@{item_name(item)}" if item else name
    with stage_run(run_name, params["mlflow"], subset(params, list(stage.params))) as tracker:
        metrics = stage.run(params, inputs, outputs, tracker, item)
        tracker.metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    return metrics


def run_all(params: dict, names: list[str] | None = None) -> None:
    """Run stages in order (every item of a matrix stage): what `dvc repro` does, in-process."""
    for name in names or list(STAGES):
        for item in stage_items(STAGES[name], params):
            run_stage(name, params, item=item)
