"""Shared fixtures: the real params file shrunk to seconds of audio, and a tiny rendered corpus.

Every test runs the real code path (music21 corpus scores, TinySoundFont, soxr, pyarrow); only
the sizes are small. MLflow logs to a sqlite store in the session's temp folder.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jtm.config import load_params
from jtm.runner import run_all

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist several workers share the cores: torch's default of a thread per core in
# each oversubscribes them (the planted-latent test ran 5x slower). One thread a worker, and for
# the processes it starts.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
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
        f"paths.survey={root / 'survey.json'}",
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


def shared_once(tmp_path_factory, name: str, build) -> dict:
    """`build(folder)`'s result (a JSON-able dict), built once per test run: with pytest-xdist,
    the first worker to ask builds it in a folder all workers share, under a lock; the others
    wait for it and read the result. Who uses it must not change it (copy it first), unless a
    single test module is its only user (SLURM's project)."""
    import filelock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-N/, above each worker's popen-gwK/
    folder, result = shared / name, shared / f"{name}.json"
    with filelock.FileLock(shared / f"{name}.lock"):
        if not result.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed part-way
            folder.mkdir()
            result.write_text(json.dumps(build(folder)))
    return json.loads(result.read_text())


@pytest.fixture(scope="session")
def _corpus_root(tmp_path_factory) -> Path:
    """Scores parsed, rendered and every stage built once per test run; tests copy what they
    change. Its MLflow runs go to a store of its own, beside it."""

    def build(root: Path) -> dict:
        run_all(load_params(REPO / "params.yaml", tiny_overrides(root, f"sqlite:///{root / 'mlflow.db'}")))
        return {"root": str(root)}

    return Path(shared_once(tmp_path_factory, "corpus", build)["root"])


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


def _built_project(tmp_path_factory, name: str, command: list[str], overrides: list[str] = ()) -> Project:
    """The tiny pipeline built by `command` in a fresh git repo, once per test run (the first
    worker to ask builds it), then copied for each test module that asks: a module may change
    its copy (its tests run in order, on one worker: --dist loadfile); `built` is the build's."""
    from tests.projects import digest, make_project, run

    def build(folder: Path) -> dict:
        root = make_project(folder / "project", overrides)
        output = run(command, root)
        return {"root": str(root), "output": output, "built": digest(root / "data")}

    done = shared_once(tmp_path_factory, name, build)
    copy = tmp_path_factory.mktemp(f"{name}-copy") / "project"
    shutil.copytree(done["root"], copy, symlinks=True)  # file times kept: Snakemake compares them
    return Project(copy, done["output"], done["built"])


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory) -> Project:
    """The tiny pipeline built by `dvc repro` in a fresh git repo: this module's copy. Its stages
    record no MLflow runs (`mlflow.recorder: none`: about 4 s of CPU a stage, and the DVC tests
    run some 60 stages); what engine-run stages record is checked on Snakemake's build."""
    return _built_project(tmp_path_factory, "dvc", ["dvc", "repro"], ["mlflow.recorder=none"])


@pytest.fixture(scope="module")
def snakemake_project(tmp_path_factory) -> Project:
    """The tiny pipeline built by `snakemake --cores 2` in a fresh git repo: this module's copy."""
    return _built_project(tmp_path_factory, "smk", ["snakemake", "--cores", "2"])


# The contributor tier (`make check`: Python alone, no Debian package, no root) never uses these.
_NEEDS_THE_PIPELINE = {
    "built",
    "tiny_params",
    "mlflow_server",
    "dvc_project",
    "snakemake_project",
    "slurm_project",
}
# `make test` runs on three workers (pytest-xdist, --dist loadfile: a file's tests on one worker,
# in order). These files go first, in this order: the first three build SLURM's, DVC's and
# Snakemake's projects (minutes, much of it waiting on processes) side by side; the next work
# on copies of DVC's once it is built, on whichever workers are free.
_FIRST = (
    "test_slurm.py",
    "test_dvc.py",
    "test_snakemake.py",
    "test_dvc_caches.py",
    "test_dvc_experiments.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("check") and fixtures & _NEEDS_THE_PIPELINE:
            raise pytest.UsageError(f"{item.nodeid} is marked check but builds the pipeline")
    rank = {name: i for i, name in enumerate(_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(_FIRST)))  # stable: order kept within


# What running the tests may leave in the checkout: tool caches, never a run, data or result.
_TOOL_CACHES = (".venv/", ".pytest_cache/", ".ruff_cache/", "jtm.egg-info/")
_CHECKOUT = pytest.StashKey[dict]()


def checkout_state() -> dict[str, tuple[str, int, int]] | None:
    """Every untracked, ignored or changed path of the checkout (tool caches and bytecode aside):
    its git status, size and modification time. Tests must leave it as they found it. None
    where the tests are not at a git checkout's root (a copy made by `make breaks` or mutmut)."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=REPO, capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO:
        return None
    listed = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--ignored", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    state = {}
    for entry in filter(None, listed.split("\0")):
        status, path = entry[:2], entry[3:]
        if path.startswith(_TOOL_CACHES) or "__pycache__/" in path:
            continue
        stat = (REPO / path).lstat() if os.path.lexists(REPO / path) else None
        state[path] = (status, stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1)
    return state


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller, not an xdist worker
        if (state := checkout_state()) is not None:
            session.config.stash[_CHECKOUT] = state


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_CHECKOUT, None)
    if before is None:
        return
    after = checkout_state()
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if changed:
        listing = "\n".join(f"  {path}: {before.get(path)} -> {after.get(path)}" for path in changed[:40])
        print(f"\nthe tests left traces in the checkout ({len(changed)} paths):\n{listing}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
