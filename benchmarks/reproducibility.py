"""What a CPU pretraining run's weights depend on: the same short run under variations of the
machine's numerics, each in a fresh process, compared with a baseline run in the same session.

Variations: the run again (determinism), another torch thread count, and the instruction sets
the kernels may use: PyTorch's own vectorised kernels (ATEN_CPU_CAPABILITY), oneDNN's
(ONEDNN_MAX_CPU_ISA, the convolutions) and MKL's (MKL_CBWR, the matrix products). A variation
that changes the weights is something results depend on: two machines that differ in it (an
AVX-512 CPU and an AVX2 one, say) give other models, and the report's digits move.

    python benchmarks/reproducibility.py [--steps 60] [--index data/index]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

VARIANTS = {
    "baseline (threads 2)": ({}, 2),
    "the same again": ({}, 2),
    "threads 1": ({}, 1),
    "ATEN_CPU_CAPABILITY=avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, 2),
    "ATEN_CPU_CAPABILITY=default": ({"ATEN_CPU_CAPABILITY": "default"}, 2),
    "ONEDNN_MAX_CPU_ISA=AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 2),
    "MKL_CBWR=AVX2": ({"MKL_CBWR": "AVX2"}, 2),
}
RUN = """
import sys
from jtm.config import PretrainConfig, load_params, section, set_dotted
from jtm.train.pretrain import pretrain
params = load_params("params.yaml")
for key, value in (("steps", {steps}), ("threads", {threads}), ("val_every", 10**6), ("log_every", 10**6),
                   ("checkpoint_every", 10**6)):
    set_dotted(params, "pretrain." + key, value)
pretrain("{index}", "{out}/model", "{out}/ck", section(params, "pretrain", PretrainConfig))
"""


def run(index: str, out: Path, steps: int, env: dict, threads: int) -> dict[str, torch.Tensor]:
    code = RUN.format(steps=steps, threads=threads, index=index, out=out)
    done = subprocess.run([sys.executable, "-c", code], env=os.environ | env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return torch.load(out / "model" / "model.pt", weights_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--index", default="data/index")
    args = parser.parse_args()
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, CPU capability {capability}, {args.steps} steps")
    print(f"{'variation':30s} {'weights':>10s} {'max |diff|':>11s}")
    baseline = None
    with tempfile.TemporaryDirectory() as folder:
        for i, (name, (env, threads)) in enumerate(VARIANTS.items()):
            weights = run(args.index, Path(folder) / str(i), args.steps, env, threads)
            baseline = baseline or weights
            diff = max(float((weights[k] - baseline[k]).abs().max()) for k in baseline)
            print(f"{name:30s} {'identical' if diff == 0 else 'differ':>10s} {diff:11.2e}", flush=True)


if __name__ == "__main__":
    main()
