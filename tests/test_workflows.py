"""Real `dvc repro` and `snakemake --cores 2` runs in temporary git repositories.

Both engines build data/ (and the pretrained model) from scratch on a tiny config and must
produce byte-identical outputs; an immediate rerun does nothing; changing a resample param
reruns resample and what reads its output (index, pretrain, embed, downstream, report), never
the stages before it. `dvc metrics show`, `dvc plots show` and `dvc exp run -S` work as the
README says.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jtm.config import load_params
from tests.conftest import REPO, tiny_overrides

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
PROJECT_FILES = ["Snakefile", "dvc.yaml", "workflow", "jtm"]


def _run(args, cwd) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output


def make_project(root: Path) -> Path:
    """A fresh git repo holding the pipeline files and a tiny params.yaml."""
    root.mkdir()
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    relative = [o for o in tiny_overrides(Path("data"), "sqlite:///mlflow.db")]
    params = load_params(REPO / "params.yaml", relative)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\n.snakemake/\nlogs/\nplots_html/\n")
    _run(["git", "init", "-q"], root)
    _run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"],
        root,
    )
    _run(["dvc", "init", "-q"], root)
    _run(["dvc", "config", "core.analytics", "false"], root)
    return root


def digest(folder: Path) -> dict:
    """sha256 of every output file; dot files are the engines' own bookkeeping
    (DVC's .gitignore, Snakemake's .snakemake_timestamp)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def set_param(root: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("dvc") / "project")
    output = _run(["dvc", "repro"], root)
    return root, output


@pytest.fixture(scope="module")
def snakemake_project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("smk") / "project")
    output = _run(["snakemake", "--cores", "2"], root)
    return root, output


def test_dvc_builds_then_does_nothing(dvc_project):
    root, output = dvc_project
    for stage in ("demo_scores", "acquire", "resample", "index", "downstream", "report"):
        assert f"Running stage '{stage}'" in output
    assert (root / "data" / "index" / "windows.parquet").is_file()
    again = _run(["dvc", "repro"], root)
    assert "Running stage" not in again
    assert "up to date" in again


def test_snakemake_builds_then_does_nothing(snakemake_project):
    root, output = snakemake_project
    assert (root / "data" / "index" / "windows.parquet").is_file()
    again = _run(["snakemake", "--cores", "2"], root)
    assert "Nothing to be done" in again


def test_both_engines_produce_identical_outputs(dvc_project, snakemake_project):
    built_by_dvc, built_by_snakemake = digest(dvc_project[0] / "data"), digest(snakemake_project[0] / "data")
    assert built_by_dvc.keys() == built_by_snakemake.keys()
    for report in ("report.html", "report.md"):  # they state when they were generated
        assert built_by_dvc.pop(report) != "" and built_by_snakemake.pop(report) != ""
    assert built_by_dvc == built_by_snakemake


def test_dvc_reruns_only_resample_and_downstream_after_a_resample_change(dvc_project):
    root, _ = dvc_project
    set_param(root, "resample", "quality", "HQ")
    output = _run(["dvc", "repro"], root)
    assert "Running stage 'resample'" in output and "Running stage 'pretrain'" in output
    assert "Running stage 'acquire'" not in output and "Running stage 'demo_scores'" not in output


def test_snakemake_reruns_only_resample_and_downstream_after_a_resample_change(snakemake_project):
    root, _ = snakemake_project
    set_param(root, "resample", "quality", "HQ")
    output = _run(["snakemake", "--cores", "2"], root)
    ran = {
        line.split()[-1].rstrip(":")
        for line in output.splitlines()
        if line.startswith(("rule ", "localrule "))
    }
    assert ran == {"resample", "index", "pretrain", "embed", "downstream", "report", "all"}


def test_dvc_metrics_show_prints_every_downstream_cell(dvc_project):
    root, _ = dvc_project
    table = _run(["dvc", "metrics", "show", "--md"], root)
    assert "metrics/ensemble/cpc-linear/100pct.json" in table
    assert "metrics/transcription/logmel-mlp/50pct.json" in table
    assert "mean.accuracy" in table and "mean.micro_ap" in table and "mean.onset_f1" in table
    assert "pretrain/metrics.json" in table


def test_dvc_plots_show_renders_the_curves(dvc_project):
    root, _ = dvc_project
    _run(["dvc", "plots", "show", "-o", "plots_html"], root)
    page = (root / "plots_html" / "index.html").read_text()
    for title in ("CPC validation accuracy", "Ensemble accuracy vs label fraction", "Transcription frame"):
        assert title in page
    assert '"field": "cpc-linear"' in page and '"field": "supervised"' in page  # a line per method


def test_dvc_exp_run_reruns_a_study_variant(dvc_project):
    root, _ = dvc_project
    _run(["git", "add", "-A"], root)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "baseline"], root)
    output = _run(["dvc", "exp", "run", "-n", "same-track", "-S", "pretrain.sampling=samesequence"], root)
    assert "Running stage 'pretrain'" in output and "Running stage 'report'" in output
    assert "Running stage 'resample'" not in output
    shown = _run(["dvc", "exp", "show", "--md", "--no-pager"], root)
    assert "same-track" in shown and "samesequence" in shown
    assert "mean.accuracy" in shown and "val_acc_k1" in shown  # the metrics of each experiment
