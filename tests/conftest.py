"""Shared fixtures: the real params file shrunk to seconds of audio, and a tiny rendered corpus.

Every test runs the real code path (music21 corpus scores, TinySoundFont, soxr, pyarrow); only
the sizes are small. MLflow logs to a sqlite store in the session's temp folder.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import pytest

from jtm.config import load_params
from jtm.runner import run_all

REPO = Path(__file__).resolve().parents[1]
TINY_SCORES = ["bach/bwv66.6", "bach/bwv84.5", "bach/bwv117.4", "mozart/k155/movement1.mxl"]


def tiny_overrides(root: Path, tracking_uri: str) -> list[str]:
    """--set overrides that shrink params.yaml to a corpus of a few seconds per track."""
    return [
        f"paths.scores={root / 'scores'}",
        f"paths.raw={root / 'raw'}",
        f"paths.audio16k={root / 'audio16k'}",
        f"paths.index={root / 'index'}",
        f"paths.ingest={root / 'ingest'}",
        f"paths.ingest_work={root / 'ingest_work'}",
        f"paths.leakage={root / 'leakage'}",
        f"paths.pretrain={root / 'pretrain'}",
        f"paths.checkpoints={root / 'checkpoints'}",
        f"paths.score_cache={root / 'score_cache'}",
        f"paths.embeddings={root / 'embeddings'}",
        f"paths.cells={root / 'cells'}",
        f"paths.downstream={root / 'downstream'}",
        f"paths.metrics={root / 'metrics'}",
        f"paths.report={root / 'report.html'}",
        f"paths.report_md={root / 'report.md'}",
        f"paths.figures={root / 'figures'}",
        f"demo.scores={TINY_SCORES}",
        "demo.excerpt_seconds=4.0",
        "demo.renderings=1",
        "demo.test_fraction=0.25",
        "demo.workers=1",
        "resample.workers=1",
        "ingest.workers=1",
        "leakage.min_seconds=2.0",
        "index.window=8000",
        "index.hop=4000",
        "index.val_fraction=0.3",
        "pretrain.runs=[0, 1]",
        "pretrain.hidden=16",
        "pretrain.sinc_kernel=31",
        "pretrain.n_predicts=3",
        "pretrain.n_negatives=8",
        "pretrain.batch_size=4",
        "pretrain.jitter=1000",
        "pretrain.steps=4",
        "pretrain.log_every=2",
        "pretrain.val_every=4",
        "pretrain.val_batches=2",
        "pretrain.checkpoint_every=2",
        "pretrain.workers=0",
        "pretrain.threads=1",
        "embed.batch_size=4",
        "embed.threads=1",
        "downstream.probes=[linear, mlp]",  # both heads (the demo's params probe linearly)
        "downstream.end_to_end_tasks=[ensemble, transcription]",
        "downstream.end_to_end_budgets=[all]",
        "downstream.budgets=[1, all]",
        "downstream.seeds=[0, 1]",
        "downstream.max_iter=10",
        "downstream.mlp_max_iter=10",
        "downstream.bootstrap_resamples=50",
        "downstream.e2e_steps=2",
        "downstream.e2e_batch_size=2",
        "downstream.e2e_val_every=1",
        "downstream.e2e_val_windows=4",
        "downstream.excerpt_windows=2",
        "downstream.threads=1",
        "report.projection_windows=40",
        f"mlflow.tracking_uri={tracking_uri}",
    ]


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def _corpus_root(tmp_path_factory, tracking_uri) -> Path:
    """Scores parsed and rendered once per session; tests copy what they change."""
    root = tmp_path_factory.mktemp("corpus")
    params = load_params(REPO / "params.yaml", tiny_overrides(root, tracking_uri))
    run_all(params)
    return root


@pytest.fixture
def tiny_params(tmp_path, tracking_uri) -> dict:
    """Tiny params whose paths all live in this test's temp folder (nothing built yet)."""
    return load_params(REPO / "params.yaml", tiny_overrides(tmp_path / "fresh", tracking_uri))


@pytest.fixture
def built(tmp_path, _corpus_root, tracking_uri) -> dict:
    """Tiny params with every stage's output already built (a private copy; the report is not
    copied, so a test that needs one runs the report stage)."""
    for name in (
        "scores",
        "raw",
        "audio16k",
        "index",
        "ingest",
        "leakage",
        "pretrain",
        "embeddings",
        "cells",
        "downstream",
        "metrics",
    ):
        shutil.copytree(_corpus_root / name, tmp_path / name)
    params = load_params(REPO / "params.yaml", tiny_overrides(tmp_path, tracking_uri))
    # index paths point into the session corpus: fine for reading, never written by tests
    return copy.deepcopy(params)


@dataclasses.dataclass(frozen=True)
class Project:
    root: Path
    output: str  # what the engine printed while building
    built: dict  # sha256 of every file under data/ right after the build


@pytest.fixture(scope="session")
def dvc_project(tmp_path_factory) -> Project:
    """The tiny pipeline built by `dvc repro` in a fresh git repo (tests may change it after)."""
    from tests.projects import digest, make_project, run

    root = make_project(tmp_path_factory.mktemp("dvc") / "project")
    output = run(["dvc", "repro"], root)
    return Project(root, output, digest(root / "data"))


@pytest.fixture(scope="session")
def snakemake_project(tmp_path_factory) -> Project:
    """The tiny pipeline built by `snakemake --cores 2` in a fresh git repo."""
    from tests.projects import digest, make_project, run

    root = make_project(tmp_path_factory.mktemp("smk") / "project")
    output = run(["snakemake", "--cores", "2"], root)
    return Project(root, output, digest(root / "data"))
