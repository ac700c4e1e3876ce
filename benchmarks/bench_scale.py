"""What every stage costs as the corpus grows: the demo rendered at k× under real `dvc repro`.

For each scale k (`demo.renderings: k`: k performances of every excerpt, each its own
ensemble and humanisation), a fresh git + DVC project runs the DAG stage by stage
(`dvc repro -s <stage>`, DVC's own hashing and caching included) with one pretraining run of
`--steps` steps, and records per stage:

- wall time (s);
- peak anonymous memory (MB): the sum of Pss_Anon (/proc/<pid>/smaps_rollup: private anonymous
  pages, shared copy-on-write pages split between the forked processes that share them) over the
  stage's whole process tree, sampled every `--every` s. File-backed pages (memory maps of the
  audio and features, the page cache) are left out: the kernel reclaims them under pressure.
  Beside it, the peak of the tree's resident set (anonymous + file-backed) for comparison;
- the stage's outputs on disk (dvc.lock's sizes) and DVC's cache after it: its size, and the part
  not shared with the workspace (files whose only link is the cache's).

Then a least-squares line a + b·hours per stage for time and memory, the log-log slope (the
exponent: 1 is linear), and the projection to MusicNet (34 h, three pretraining runs: the
stages per run counted three times) and a 1 000 h library.

    python benchmarks/bench_scale.py [--scales 1 4 16] [--steps 20] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from jtm.config import load_params  # noqa: E402
from jtm.downstream.memory import probe_bytes  # noqa: E402
from jtm.runner import job_name, stage_items  # noqa: E402
from jtm.stages import STAGES  # noqa: E402

BIN = Path(sys.executable).parent
PROJECT_FILES = ["dvc.yaml", "jtm", ".dvc/config"]
MUSICNET_HOURS, LIBRARY_HOURS, RUNS = 34.0, 1000.0, 3
MUSICNET_TEST_HOURS = MUSICNET_HOURS * 10 / 330  # its test split: 10 of 330 recordings
PER_RUN = ("pretrain", "embed", "probe", "end_to_end")  # stages a pretraining run repeats


def overrides(scale: int, steps: int) -> list[str]:
    return [
        f"demo.renderings={scale}",
        "pretrain.runs=[0]",
        f"pretrain.steps={steps}",
        f"pretrain.warmup_steps={steps // 2}",
        f"pretrain.val_every={steps}",
        f"pretrain.checkpoint_every={steps}",
        f"pretrain.log_every={max(steps // 4, 1)}",
    ]


def run(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd)}
    env.pop("MLFLOW_TRACKING_URI", None)
    pipe = subprocess.PIPE
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=pipe, stderr=subprocess.STDOUT, text=True)


def checked(args: list[str], cwd: Path) -> str:
    process = run(args, cwd)
    output = process.communicate()[0]
    if process.returncode:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{output}")
    return output


def make_project(root: Path, scale: int, steps: int) -> Path:
    """A git + DVC project holding the pipeline with the repository's params at `scale`."""
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, root / name)
    params = load_params(REPO / "params.yaml", overrides(scale, steps))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\n/data/\n/results/\n")
    config = (root / ".dvc" / "config").read_text()
    checked(["git", "init", "-q"], root)
    checked(["dvc", "init", "-q", "--force"], root)
    (root / ".dvc" / "config").write_text(config)  # the repository's cache settings, not the defaults
    return root


def jobs(root: Path) -> list[str]:
    """Every job of dvc.yaml, in its (topological) order, as `dvc repro -s` names them."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    names = []
    for name in yaml.safe_load((root / "dvc.yaml").read_text())["stages"]:
        stage = STAGES.get(name)
        items = stage_items(stage, params) if stage else [{}]
        names += [job_name(name, item) for item in items]
    return names


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _rollup(pid: int) -> tuple[int, int]:
    """(Pss_Anon, Rss) of one process, kB; (0, 0) once it is gone."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":")
            fields[key] = int(value.split()[0])
    except (OSError, ValueError):
        return 0, 0
    return fields.get("Pss_Anon", 0), fields.get("Rss", 0)


def tree_memory(root: int) -> tuple[int, int]:
    """(Pss_Anon, Rss) summed over `root` and its descendants, kB."""
    tree, todo, anon, rss = _children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        a, r = _rollup(pid)
        anon, rss = anon + a, rss + r
        todo += tree.get(pid, [])
    return anon, rss


def measured(args: list[str], cwd: Path, every: float) -> dict:
    """Run `args`; its wall time (s) and its process tree's peak anonymous and resident memory (MB)."""
    began = time.perf_counter()
    process = run(args, cwd)
    peak = [0, 0]
    done = threading.Event()

    def sample():
        while not done.wait(every):
            anon, rss = tree_memory(process.pid)
            peak[0], peak[1] = max(peak[0], anon), max(peak[1], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{output}")
    return {"seconds": seconds, "anon_mb": peak[0] / 1024, "rss_mb": peak[1] / 1024}


def disk(path: Path) -> tuple[int, int]:
    """(bytes of the files under `path`, bytes of those whose only link is this one)."""
    total = unshared = 0
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            total += stat.st_size
            unshared += stat.st_size if stat.st_nlink == 1 else 0
    return total, unshared


def output_bytes(root: Path, job: str) -> int:
    """The job's outputs' size as dvc.lock records it (cached or not)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return sum(int(out.get("size", 0)) for out in lock.get(job, {}).get("outs", []))


def corpus_hours(root: Path) -> float:
    params = yaml.safe_load((root / "params.yaml").read_text())
    tracks = pd.read_parquet(root / params["paths"]["index"] / "tracks.parquet")
    return float(tracks["samples"].sum()) / 16_000 / 3600


def bench(root: Path, scale: int, steps: int, every: float) -> pd.DataFrame:
    project = make_project(root / f"x{scale}", scale, steps)
    rows = []
    for job in jobs(project):
        figures = measured(["dvc", "repro", "-s", job], project, every)
        cache, cache_alone = disk(project / ".dvc" / "cache")
        rows.append(
            {"scale": scale, "job": job, **figures, "out_mb": output_bytes(project, job) / 2**20,
             "cache_mb": cache / 2**20, "cache_alone_mb": cache_alone / 2**20}
        )  # fmt: skip
        print(f"  {scale:>2}x {job:<22} {figures['seconds']:7.1f} s {figures['anon_mb']:8.0f} MB anon "
              f"{figures['rss_mb']:8.0f} MB rss {rows[-1]['out_mb']:8.0f} MB out", flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    table["hours"] = corpus_hours(project)
    table["workspace_mb"] = sum(disk(project / folder)[0] for folder in ("data", "results")) / 2**20
    return table


def stage_of(job: str) -> str:
    return job.split("@")[0]


def fit(hours: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """(intercept, slope per hour, log-log exponent) of `values` against `hours`."""
    slope, intercept = np.polyfit(hours, values, 1)
    exponent = np.polyfit(np.log(hours), np.log(np.maximum(values, 1e-9)), 1)[0]
    return float(intercept), float(slope), float(exponent)


def projections(table: pd.DataFrame) -> pd.DataFrame:
    """Per stage: time, memory and output fits and their values at MusicNet's and a 1 000 h
    library's size (memory never below its largest measured value: a flat stage's noise is no
    trend)."""
    table = table.assign(stage=table["job"].map(stage_of))
    by = table.groupby(["stage", "scale"], sort=False).agg(
        hours=("hours", "first"), seconds=("seconds", "sum"), anon_mb=("anon_mb", "max"),
        out_mb=("out_mb", "sum"),
    )  # fmt: skip
    rows = []
    for stage, group in by.groupby(level=0, sort=False):
        hours = group["hours"].to_numpy()
        row = {"stage": stage}
        for column in ("seconds", "anon_mb", "out_mb"):
            values = group[column].to_numpy()
            a, b, exponent = fit(hours, values)
            runs = RUNS if stage in PER_RUN and column != "anon_mb" else 1  # runs go one after another
            floor = values.max() if column == "anon_mb" else 0.0
            row |= {f"{column}_exp": exponent,
                    f"{column}_34h": max(runs * (a + b * MUSICNET_HOURS), floor),
                    f"{column}_1000h": max(runs * (a + b * LIBRARY_HOURS), floor)}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def musicnet_probe_gb(params: dict, hidden: int) -> dict[str, float]:
    """jtm/downstream/memory.py's estimate of a transcription probe cell (the largest) on
    MusicNet's split: 10 test recordings (~1 h), the rest train, `index.val_fraction` of its
    works held out for validation; non-overlapping windows; at the demo's hidden size and at
    `hidden`. The demo scaled k× keeps the demo's third of tracks in test, which MusicNet has not."""
    window = params["index"]["window"] / 16_000
    test = MUSICNET_TEST_HOURS * 3600 / window
    fit = (MUSICNET_HOURS - MUSICNET_TEST_HOURS) * 3600 / window
    val = fit * params["index"]["val_fraction"]
    cfg = params["downstream"]
    frames = params["index"]["window"] // 160
    targets = (fit + test) * frames * 128  # the (windows, frames, pitches) bool targets, shared
    windows = (int(fit - val), int(val), int(test))
    gb = {}
    for dim in (params["pretrain"]["hidden"], hidden):
        need = probe_bytes(windows, True, frames, cfg["frame_stride"], dim, 128, cfg["threads"])
        gb[f"hidden {dim}"] = (need + targets) / 1e9
    return gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=20, help="pretraining steps (a fixed cost)")
    parser.add_argument("--every", type=float, default=0.1, help="memory sampling interval, s")
    parser.add_argument("--keep", type=Path, help="keep the projects here (else a temporary folder)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "scale.json")
    parser.add_argument("--report", action="store_true", help="print the tables of --out again, run nothing")
    args = parser.parse_args()
    if args.report:
        stages = pd.DataFrame(json.loads(args.out.read_text())["stages"])
        return report([t for _, t in stages.groupby("scale")], args.out)
    root = args.keep or Path(tempfile.mkdtemp(prefix="jtm-scale-"))
    try:
        tables = []
        for scale in args.scales:
            print(f"scale {scale}x:", flush=True)
            tables.append(bench(root, scale, args.steps, args.every))
            if not args.keep:
                shutil.rmtree(root / f"x{scale}")
        report(tables, args.out)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def report(tables: list[pd.DataFrame], out: Path) -> None:
    table = pd.concat(tables, ignore_index=True)
    pd.set_option("display.width", 200)
    wide = table.assign(stage=table["job"].map(stage_of)).pivot_table(
        index="stage", columns="scale", values=["seconds", "anon_mb", "rss_mb", "out_mb"],
        aggfunc={"seconds": "sum", "anon_mb": "max", "rss_mb": "max", "out_mb": "sum"}, sort=False,
    )  # fmt: skip
    print("\nper stage (seconds and outputs summed over a stage's jobs, memory the largest job's):")
    print(wide.round(1).to_string())
    for t in tables:
        last = t.iloc[-1]
        print(f"{int(last['scale']):>2}x: {last['hours']:.2f} h of audio; "
              f"outputs {t['out_mb'].sum():.0f} MB; "
              f"DVC cache {last['cache_mb']:.0f} MB, {last['cache_alone_mb']:.0f} MB of it not linked "
              f"to the workspace; data/ and results/ {last['workspace_mb']:.0f} MB")  # fmt: skip
    projected = projections(table)
    hours = f"{MUSICNET_HOURS:.0f} h and {LIBRARY_HOURS:.0f} h"
    print(f"\nprojected (a + b·hours; three pretraining runs at {hours}):")
    print(projected.round(2).to_string(index=False))
    print(f"\nMusicNet study: {projected['seconds_34h'].sum() / 3600:.1f} h on this machine, largest stage "
          f"{projected['anon_mb_34h'].max() / 1024:.1f} GB anonymous memory, "
          f"{projected['out_mb_34h'].sum() / 1024:.1f} GB of outputs")  # fmt: skip
    params = load_params(REPO / "params.yaml")
    estimate = ", ".join(f"{k}: {v:.1f} GB" for k, v in musicnet_probe_gb(params, 512).items())
    print(
        f"MusicNet's own split (10 test recordings), the transcription probe cell by its estimate: {estimate}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    found = {"stages": table.to_dict("records"), "projected": projected.to_dict("records")}
    out.write_text(json.dumps(found, indent=1))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
