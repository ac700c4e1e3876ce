"""Temporary git + DVC projects holding the pipeline on a tiny config, for real engine runs.

The engines' tests (DVC, Snakemake locally and on SLURM) build the same tiny study; its
downstream part is cut to six cells, because each cell is a process of its own there (the
in-process tests in test_downstream.py cover every task, method and metric).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from jtm.config import load_params
from jtm.runner import job_name, stage_items
from jtm.stages import STAGES
from tests.conftest import REPO, tiny_overrides

BIN = Path(sys.executable).parent
PROJECT_FILES = ["Snakefile", "dvc.yaml", "workflow", "profiles", "jtm"]
ENGINE_OVERRIDES = [
    "downstream.tasks=[ensemble, transcription]",
    "downstream.features=[cpc, logmel]",
    "downstream.probes=[linear]",
    "downstream.end_to_end_tasks=[ensemble]",
    "downstream.end_to_end=[finetune]",  # the end-to-end method that reads a pretrained model
    "cluster.mem_mb=500",
    "cluster.runtime=10",
    "cluster.rules={}",
    "ingest.corpora=[{name: library, paths: [unlabeled], weight: 1.0}]",
]


def run(args, cwd, env: dict | None = None, stderr: bool = True) -> str:
    """Run a command in `cwd` with this venv's tools first on PATH and the project's own copy of
    `jtm` first on the import path (its code is what the engines hash and what runs); its
    output, or fail."""
    env = {**(env or os.environ), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd)}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{output}"
    return output if stderr else result.stdout


def make_project(root: Path, overrides: list[str] = ()) -> Path:
    """A fresh git repo holding the pipeline files and a tiny params.yaml (with `overrides`)."""
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    params = load_params(
        REPO / "params.yaml",
        tiny_overrides(Path("data"), "sqlite:///mlflow.db") + ENGINE_OVERRIDES + list(overrides),
    )
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_unlabeled(root / "unlabeled")
    # data/raw and data/ingest are cache-free (re-buildable), and ignored by git as in the repo
    ignored = ["mlflow.db", "mlruns/", ".snakemake/", "logs/", "plots_html/", "/data/raw/", "/data/ingest/"]
    ignored.append("/data/survey.json")  # the corpora's digest, rewritten by every `dvc repro`
    (root / ".gitignore").write_text("".join(f"{line}\n" for line in ignored))
    run(["git", "init", "-q"], root)
    commit(root, "init")
    run(["dvc", "init", "-q"], root)
    shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")  # linked cache, no analytics
    return root


def write_unlabeled(folder: Path) -> None:
    """Two files of unlabeled audio (stereo WAV at 22.05 kHz, mono FLAC at 48 kHz) with a fixed
    modification time, as each engine's project writes them: byte for byte the same (an Ogg file
    would not be: its stream serial number is random)."""
    import numpy as np
    import soundfile as sf

    folder.mkdir()
    t = np.arange(22_050 * 2) / 22_050
    sf.write(folder / "stereo.wav", np.stack([np.sin(2 * np.pi * 330 * t)] * 2, 1) * 0.3, 22_050)
    t = np.arange(48_000 * 2) / 48_000
    sf.write(folder / "mono.flac", np.sin(2 * np.pi * 550 * t) * 0.3, 48_000)
    for file in folder.iterdir():
        os.utime(file, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))


def commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", message],
        root,
    )


def digest(folder: Path) -> dict:
    """sha256 of every output file; dot files are the engines' own bookkeeping
    (DVC's .gitignore, Snakemake's .snakemake_timestamp)."""
    return {
        str(p.relative_to(folder)): sha(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def comparable(digests: dict) -> dict:
    """Without the report, which states when it was generated, and DVC's digest of the corpora
    (dvc.yaml's helper stage `survey`; Snakemake lists the files themselves)."""
    return {k: v for k, v in digests.items() if k not in ("report.html", "report.md", "survey.json")}


def stages_in(output: str) -> set[str]:
    """The stages DVC's output says it ran ("Running stage 'pretrain@0':")."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def rules_in(output: str) -> set[str]:
    """The rules whose jobs Snakemake's output announces ("rule pretrain:", "localrule all:")."""
    return {
        line.split()[1].rstrip(":")
        for line in output.splitlines()
        if line.startswith(("rule ", "localrule "))
    }


def jobs_in(output: str) -> set[str]:
    """The jobs Snakemake's output announces, as "rule" or "rule@wildcards" (probe@run=2)."""
    jobs, rule = set(), None
    for line in output.splitlines() + [""]:
        if rule and line.strip().startswith("wildcards:"):
            jobs.add(f"{rule}@{line.split(':', 1)[1].strip()}")
            rule = None
        elif line.startswith(("rule ", "localrule ")) or not line.strip():
            if rule and not line.strip():
                jobs.add(rule)
                rule = None
            if line.strip():
                rule = line.split()[1].rstrip(":")
    return jobs


def set_param(root: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


UNIMPORTED = "jtm/features/files.py"  # `jtm features`' own module: no stage runs it


@contextlib.contextmanager
def edited(root: Path, relative: str, old: str | None = None, new: str = "\n# an edit\n"):
    """`relative`'s text with `old` replaced by `new` (appended if `old` is None), then restored."""
    path = root / relative
    text, stat = path.read_text(), path.stat()
    assert old is None or text.count(old) == 1, f"{relative} no longer holds {old!r} once"
    path.write_text(text + new if old is None else text.replace(old, new))
    try:
        yield
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_more_run(root: Path) -> tuple[str, str, set[str]]:
    """(params.yaml's text, the same with one more pretraining run, the new run's jobs by name)."""
    text = (root / "params.yaml").read_text()
    params = yaml.safe_load(text)
    new = max(params["pretrain"]["runs"]) + 1
    params["pretrain"]["runs"].append(new)
    jobs = {
        job_name(name, item)
        for name, stage in STAGES.items()
        if "run" in stage.matrix
        for item in stage_items(stage, params)
        if item["run"] == new
    }
    return text, yaml.safe_dump(params, sort_keys=False), jobs
