"""`make bench-gpu` runs where the GPU is: on a machine with torch and none of jtm's other
dependencies. Here it runs with --smoke (CPU, tiny shapes) with those dependencies made
unimportable, and its rows must be complete and computed with the scorer they name."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ABSENT = ["jsonschema", "soundfile", "soxr", "mlflow", "dvc", "snakemake", "music21", "pandas", "yaml"]


def test_the_gpu_benchmark_runs_with_torch_alone_and_reports_every_scorer(tmp_path):
    blocker = tmp_path / "site" / "sitecustomize.py"  # every process it starts imports this first
    blocker.parent.mkdir()
    blocker.write_text(f"import sys\nfor name in {ABSENT!r}:\n    sys.modules[name] = None\n")
    env = dict(os.environ, PYTHONPATH=f"{blocker.parent}{os.pathsep}{REPO}")
    command = [sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--smoke", "--seconds", "0.05",
               "--configs", "seed-b8,ddp-8x32", "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed" not in done.stdout and "limit" not in done.stdout, done.stdout
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert set(rows) == {f"{c}:{s}" for c in ("seed-b8", "ddp-8x32") for s in ("materialise", "lean", "gemm")}
    for name, r in rows.items():
        assert all(r[k] > 0 for k in ("windows_per_s", "step_ms", "model_ms", "loss_ms", "tflop_per_step")), (
            name
        )
    # the scorer named is the one run: at a DDP-sized pool the GEMM scores every pool frame (a
    # (positions x P) product), the lean loss gathers each row's N candidates (positions x N)
    assert rows["ddp-8x32:gemm"]["tflop_per_step"] > 2 * rows["ddp-8x32:lean"]["tflop_per_step"]
    assert len([line for line in done.stdout.splitlines() if line.startswith(("seed-b8 ", "ddp-8x32 "))]) == 6
