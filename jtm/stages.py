"""The pipeline's stages: what each reads, writes and depends on, and the function it runs.

This table is what `jtm <stage>`, the Snakemake rules and the DVC commands share (the rules
read their code and params lists from it; a test checks that dvc.yaml and the Snakefile declare
exactly these inputs, outputs, params and code; `make dvc-deps` rewrites dvc.yaml's code deps).

A stage's code is computed, never typed: this file and every `jtm` module its adapter's imports
reach (jtm/codedeps.py), so an edit reruns exactly the stages that can run the edited code.
Params lists name only the keys that can change a stage's output: bookkeeping keys (worker
counts, retries, timeouts: `reruns=False` in jtm/config/sections.py) are read too but left out,
so changing them reruns nothing. Each adapter below only picks its sections and paths and calls
one library function; running a stage is jtm/runner.py's job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from jtm.codedeps import function_code
from jtm.config import (
    DataConfig,
    DemoConfig,
    DownstreamConfig,
    EmbedConfig,
    IndexConfig,
    IngestConfig,
    LeakageConfig,
    PretrainConfig,
    ReportConfig,
    ResampleConfig,
    get_dotted,
    output_fields,
    section,
    subset,
)

Paths = dict[str, Path]  # role -> path


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    summary: str
    inputs: dict[str, str]  # role -> params key holding its path
    outputs: dict[str, str]
    params: tuple[str, ...]  # dotted keys that can change the output
    workers: str | None  # params key of its process count (Snakemake sets it to the rule's threads)
    run: Callable[..., dict]  # (params, inputs, outputs, tracker, item) -> metrics
    # A matrix stage runs once per item: one value from each params list named here (item name ->
    # params key), as a DVC `matrix` and Snakemake wildcards; its output is `cell` below the path.
    matrix: dict[str, str] = dataclasses.field(default_factory=dict)
    cell: str = ""
    # Inputs that are one item's folder below the path (role -> pattern, as `cell`): run r's model.
    input_cells: dict[str, str] = dataclasses.field(default_factory=dict)
    # Inputs read only when a params key has a value: role -> (dotted key, value).
    input_when: dict[str, tuple[str, object]] = dataclasses.field(default_factory=dict)

    @property
    def code(self) -> tuple[str, ...]:
        """The files whose change reruns the stage (DVC deps, Snakemake inputs): this module and
        what the adapter `run` imports, transitively, inside jtm/ (jtm/codedeps.py)."""
        return function_code(__name__, self.run.__name__)

    def needs(self, role: str, params: dict) -> bool:
        """Whether this stage reads its input `role` under `params`."""
        if role not in self.input_when:
            return True
        key, value = self.input_when[role]
        return get_dotted(params, key) == value


def _keys(section_name: str, cls: type, only: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Dotted keys of a section's output-changing fields (all of them, or those in `only`)."""
    return tuple(f"{section_name}.{name}" for name in output_fields(cls) if only is None or name in only)


def _demo_scores(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.demo.scores import write_scores

    demo = section(params, "demo", DemoConfig)
    cache = Path(get_dotted(params, "paths.score_cache"))
    return write_scores(demo, outputs["scores"], get_dotted(params, "data.source"), cache)


def _acquire(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.corpus.acquire import acquire

    data, demo = section(params, "data", DataConfig), section(params, "demo", DemoConfig)
    return acquire(data, demo, inputs.get("scores"), outputs["raw"])


def _resample(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.corpus.resample import resample_corpus

    return resample_corpus(inputs["raw"], outputs["audio16k"], section(params, "resample", ResampleConfig))


def _index(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.corpus.index import build_index

    return build_index(inputs["audio16k"], outputs["index"], section(params, "index", IndexConfig))


def _ingest(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.ingest.decode import Target
    from jtm.ingest.discover import corpora_from_params
    from jtm.ingest.stage import ingest

    cfg, resample = section(params, "ingest", IngestConfig), section(params, "resample", ResampleConfig)
    window, hop = get_dotted(params, "index.window"), get_dotted(params, "index.hop")  # MusicNet's windows
    target = Target(resample.sample_rate, resample.quality, cfg.dtype, cfg.block_seconds, window, hop)
    work = Path(get_dotted(params, "paths.ingest_work"))
    corpora = corpora_from_params(cfg.corpora)
    return ingest(corpora, target, cfg.shard_mb, cfg.max_rejected, outputs["ingest"], work, cfg.workers)


def _leakage(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.leakage.stage import guard

    cfg = section(params, "leakage", LeakageConfig)
    return guard(inputs["index"], inputs["ingest"], outputs["leakage"], cfg)


def _pretrain(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.train.pretrain import pretrain

    run = int(item["run"])
    checkpoints = Path(get_dotted(params, "paths.checkpoints")) / f"run{run}"
    cfg = section(params, "pretrain", PretrainConfig)
    cfg = dataclasses.replace(cfg, seed=cfg.seed + run)
    unlabeled = (inputs["ingest"], inputs["leakage"])
    return pretrain(inputs["index"], outputs["model"], checkpoints, cfg, tracker, unlabeled)


def _embed(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    """Run r's learned feature sets (cpc, its random-init control seeded `embed.seed + r`), or
    (no run) the fixed ones (log-mel), which no pretraining run changes."""
    from jtm.choices import LEARNED_FEATURES
    from jtm.features.embed import embed

    cfg = section(params, "embed", EmbedConfig)
    learned = "run" in item
    features = tuple(f for f in cfg.features if (f in LEARNED_FEATURES) == learned)
    seed = cfg.seed + int(item["run"]) if learned else cfg.seed
    cfg = dataclasses.replace(cfg, features=features, seed=seed)
    return embed(inputs["index"], inputs.get("model"), outputs["embeddings"], cfg)


def _cell(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    """One end-to-end cell (item {task, init, run}), or a job's probe cells on every task: run
    r's (item {run}) or the fixed features' (no item)."""
    from jtm.downstream.cell import run_cell, run_task_cells
    from jtm.downstream.design import cell_methods

    cfg = section(params, "downstream", DownstreamConfig)
    run = int(item.get("run", 0))
    if "init" in item:
        task = item["task"]
        trained = cell_methods(task, item, cfg)
        return run_cell(
            inputs["index"], None, inputs["model"], outputs["cell"], cfg, task, trained, tracker, run
        )
    trained = {task: cell_methods(task, item, cfg) for task in cfg.tasks}
    return run_task_cells(inputs["index"], inputs["embeddings"], outputs["cell"], cfg, trained, tracker, run)


def _downstream(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.downstream.collect import collect

    cfg = section(params, "downstream", DownstreamConfig)
    runs = tuple(get_dotted(params, "pretrain.runs"))
    return collect(inputs["cells"], outputs["results"], outputs["metrics"], cfg, runs)


def _report(params: dict, inputs: Paths, outputs: Paths, tracker, item: dict) -> dict:
    from jtm.report.build import build_report

    shaping = subset(params, list(dict.fromkeys(key for stage in STAGES.values() for key in stage.params)))
    metrics = build_report(
        inputs["index"],
        inputs["model"],
        inputs["embeddings"],
        inputs["results"],
        outputs["html"],
        outputs["markdown"],
        outputs["figures"],
        shaping,
        section(params, "report", ReportConfig),
    )
    if tracker is not None:  # the study itself, browsable in MLflow beside its runs
        tracker.artifacts(outputs["figures"], "figures")
        tracker.artifacts(outputs["html"])
        tracker.artifacts(outputs["markdown"])
    print(f"report: {outputs['html']} (and {outputs['markdown']})")
    return metrics


_SCORE_KEYS = _keys("demo", DemoConfig, only=("scores", "excerpt_seconds", "excerpts", "default_bpm"))
_RENDER_KEYS = _keys(
    "demo",
    DemoConfig,
    only=tuple(
        "seed renderings ensemble_choice test_fraction soundfont more_soundfonts held_out_soundfonts rooms "
        "held_out_rooms timbre_variation level_db snr_db sample_rate tempo_jitter onset_jitter_ms "
        "velocity velocity_jitter tail_seconds wav_subtype".split()
    ),
)
_PROBE_KEYS = _keys(
    "downstream",
    DownstreamConfig,
    only=tuple(
        "tasks features probes mlp_hidden budgets seeds transcription_seeds l2_grid max_iter mlp_max_iter "
        "frame_stride bootstrap_unit excerpt_windows threads".split()
    ),
)
_END_TO_END_KEYS = _keys(
    "downstream",
    DownstreamConfig,
    only=tuple(
        "end_to_end_budgets end_to_end_seeds e2e_steps e2e_batch_size e2e_lr e2e_val_every "
        "e2e_val_windows bootstrap_unit excerpt_windows threads e2e_device e2e_bf16".split()
    ),
)
_RUN = {"run": "pretrain.runs"}
# Which cells exist: what stage `downstream` gathers (the cells' own params are above).
_STUDY_KEYS = ("pretrain.runs",) + _keys(
    "downstream",
    DownstreamConfig,
    only=(
        "tasks",
        "features",
        "probes",
        "end_to_end",
        "end_to_end_tasks",
        "bootstrap_resamples",
        "bootstrap_unit",
        "bootstrap_seed",
    ),
)

STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage(
            "demo_scores",
            "Parse the demo's scores (music21 corpus or files) into note tables: the slow step, cached.",
            inputs={},
            outputs={"scores": "paths.scores"},
            params=("data.source",)
            + _keys("demo", DemoConfig, only=("scores", "excerpt_seconds", "excerpts", "default_bpm")),
            workers="demo.workers",
            run=_demo_scores,
        ),
        Stage(
            "acquire",
            "Produce the raw corpus in MusicNet's layout (data.source=demo: render the parsed scores).",
            inputs={"scores": "paths.scores"},
            outputs={"raw": "paths.raw"},
            params=_keys("data", DataConfig) + _RENDER_KEYS,
            workers="demo.workers",
            run=_acquire,
            input_when={"scores": ("data.source", "demo")},
        ),
        Stage(
            "resample",
            "Check the raw corpus and resample every track 44.1 -> 16 kHz with soxr (streamed).",
            inputs={"raw": "paths.raw"},
            outputs={"audio16k": "paths.audio16k"},
            params=_keys("resample", ResampleConfig),
            workers="resample.workers",
            run=_resample,
        ),
        Stage(
            "index",
            "Build the tracks/windows/notes Parquet tables and the by-work validation split.",
            inputs={"audio16k": "paths.audio16k"},
            outputs={"index": "paths.index"},
            params=_keys("index", IndexConfig),
            workers=None,
            run=_index,
        ),
        Stage(
            "ingest",
            "Decode unlabeled corpora (any format, rate, channels) into 16 kHz shards; resumable.",
            inputs={},
            outputs={"ingest": "paths.ingest"},
            params=_keys("ingest", IngestConfig)
            + ("resample.sample_rate", "resample.quality", "index.window", "index.hop"),
            workers="ingest.workers",
            run=_ingest,
        ),
        Stage(
            "leakage",
            "Find ingested files that are test/val recordings (Chromaprint): pretraining leaves them out.",
            inputs={"index": "paths.index", "ingest": "paths.ingest"},
            outputs={"leakage": "paths.leakage"},
            params=_keys("leakage", LeakageConfig),
            workers=None,
            run=_leakage,
        ),
        Stage(
            "pretrain",
            "Train CPC on the train windows and ingested corpora (CPU, GPU, or torchrun); resumable.",
            inputs={
                "index": "paths.index",
                "audio16k": "paths.audio16k",
                "ingest": "paths.ingest",
                "leakage": "paths.leakage",
            },
            outputs={"model": "paths.pretrain"},
            # every key but the list of runs: adding a run reruns only that run
            params=tuple(k for k in _keys("pretrain", PretrainConfig) if k != "pretrain.runs"),
            workers=None,  # the rule asks for pretrain.threads (torch) + workers + fetch_threads
            run=_pretrain,
            matrix=_RUN,
            cell="run{run}",
        ),
        Stage(
            "embed",
            "Embed every window with one run's model (cpc) and its random-init control at 100 Hz.",
            inputs={"index": "paths.index", "audio16k": "paths.audio16k", "model": "paths.pretrain"},
            outputs={"embeddings": "paths.embeddings"},
            params=_keys("embed", EmbedConfig),
            workers=None,
            run=_embed,
            matrix=_RUN,
            cell="run{run}",
            input_cells={"model": "run{run}"},
        ),
        Stage(
            "embed_fixed",
            "Embed every window with the feature sets no pretraining changes (log-mel) at 100 Hz.",
            inputs={"index": "paths.index", "audio16k": "paths.audio16k"},
            outputs={"embeddings": "paths.embeddings"},
            params=_keys(
                "embed", EmbedConfig, only=("features", "pooling", "batch_size", "threads", "device", "bf16")
            ),
            workers=None,
            run=_embed,
            cell="fixed",
        ),
        Stage(
            "probe",
            "Train and score one run's probes on every task: each feature set, head, label budget and seed.",
            inputs={"index": "paths.index", "embeddings": "paths.embeddings"},
            outputs={"cell": "paths.cells"},
            params=_PROBE_KEYS,
            workers="downstream.threads",
            run=_cell,
            matrix=_RUN,
            cell="run{run}/probes",
            input_cells={"embeddings": "run{run}"},
        ),
        Stage(
            "probe_fixed",
            "Train and score the probes on the fixed features (log-mel) on every task: as `probe`, once.",
            inputs={"index": "paths.index", "embeddings": "paths.embeddings"},
            outputs={"cell": "paths.cells"},
            params=_PROBE_KEYS,
            workers="downstream.threads",
            run=_cell,
            cell="fixed/probes",
            input_cells={"embeddings": "fixed"},
        ),
        Stage(
            "end_to_end",
            "Train and score one end-to-end cell (task, supervised | finetune, run) on the audio windows.",
            inputs={"index": "paths.index", "audio16k": "paths.audio16k", "model": "paths.pretrain"},
            outputs={"cell": "paths.cells"},
            params=_END_TO_END_KEYS,
            workers="downstream.threads",
            run=_cell,
            matrix={"task": "downstream.end_to_end_tasks", "init": "downstream.end_to_end"} | _RUN,
            cell="run{run}/{init}/{task}",
            input_cells={"model": "run{run}"},
        ),
        Stage(
            "downstream",
            "Gather the study's cells: results, bootstrap intervals, paired comparisons, metrics, curves.",
            inputs={"cells": "paths.cells"},
            outputs={"results": "paths.downstream", "metrics": "paths.metrics"},
            params=_STUDY_KEYS,
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
            params=("pretrain.runs",) + _keys("report", ReportConfig),
            workers=None,
            run=_report,
        ),
    )
}
