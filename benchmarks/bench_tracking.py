"""Benchmark where a stage's MLflow calls run: the wall time of real stage commands with the
recorder in the stage's process (`mlflow.recorder=inline`, the baseline) and in a process of its
own (`process`, the default outside pytest), measured alternately in the same run.

Each repeat runs `jtm <stage>` once per recorder as a fresh process (as DVC and Snakemake do),
writing its outputs to a temporary folder and its run to a temporary SQLite store that already
holds the experiment (as every stage after the first finds it). Needs the demo's data: run
`make demo` (or `dvc repro`) first. Also prints what the recorder overlaps: importing MLflow and
opening its store, alone, in a fresh process.

    python benchmarks/bench_tracking.py [--stages index downstream] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jtm.stages import STAGES

RECORDERS = ("inline", "process")
_MLFLOW_START = """
import time; began = time.perf_counter()
import mlflow
mlflow.set_tracking_uri("sqlite:///{db}")
mlflow.set_experiment("jtm")
print(time.perf_counter() - began)
"""


def run_stage(stage: str, recorder: str, out: Path, db: Path) -> float:
    """Seconds `jtm <stage>` takes with `recorder`, outputs under `out`."""
    command = [
        str(Path(sys.executable).parent / "jtm"),
        stage,
        "--set",
        f"mlflow.tracking_uri=sqlite:///{db}",
    ]
    command += ["--set", f"mlflow.recorder={recorder}"]
    for key in STAGES[stage].outputs.values():  # params keys of the stage's outputs
        command += ["--set", f"{key}={out / key}"]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_tracking: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stages = [name for name, stage in STAGES.items() if not stage.matrix]
    parser.add_argument("--stages", nargs="+", default=["index", "downstream"], choices=stages)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not Path("data/index/windows.parquet").is_file():
        sys.exit("bench_tracking: no demo data here: run `make demo` (or `dvc repro`) first")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "mlflow.db"
        mlflow_start = [sys.executable, "-c", _MLFLOW_START.format(db=db)]
        subprocess.check_output(mlflow_start)  # creates the store and the experiment, as the first stage does
        start = float(subprocess.check_output(mlflow_start))
        print(f"MLflow's start alone (import, open the store, set the experiment): {start:.2f} s")
        print(f"{'stage':12s} {'inline s':>9s} {'process s':>10s} {'process/inline':>15s} {'saved s':>8s}")
        for stage in args.stages:
            times: dict[str, list[float]] = {r: [] for r in RECORDERS}
            run_stage(stage, "inline", Path(tmp) / "warm", db)  # page cache, compiled bytecode
            for i in range(args.repeats):
                for recorder in RECORDERS if i % 2 == 0 else RECORDERS[::-1]:
                    times[recorder].append(run_stage(stage, recorder, Path(tmp) / f"{recorder}{i}", db))
            inline, process = (statistics.median(times[r]) for r in RECORDERS)
            ratio, saved = process / inline, inline - process
            print(f"{stage:12s} {inline:9.2f} {process:10.2f} {ratio:15.2f} {saved:8.2f}")


if __name__ == "__main__":
    main()
