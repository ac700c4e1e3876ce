"""Benchmark CPC training steps: windows/s and peak memory, lean vs materialising InfoNCE.

Each (config, loss) runs in a fresh subprocess so its peak RSS (or peak CUDA memory) is its own.
The "materialising" loss is the straightforward formulation (the seed study's and CPC_audio's):
it gathers a (positions x N x H) tensor of negatives; jtm's lean loss scores by matrix product
and gather. Ratios are against the materialising loss at the same config, in the same run.

    python benchmarks/bench_cpc.py [--steps 3] [--configs demo,full-gru,full-transformer,ddp-8x32]

`ddp-8x32` is one rank of eight under DDP (batch 32) scoring against the global batch's pool
(8 x 32 x 128 = 32 768 frames), simulated on one process (the other ranks' frames random).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = {
    # params.yaml's demo model
    "demo": dict(encoder="sinc", hidden=128, context="gru", batch=8, window=20480, k=12, n=128),
    # the same over log-mel frames
    "demo-logmel": dict(encoder="logmel", hidden=128, context="gru", batch=8, window=20480, k=12, n=128),
    # the seed study's full size
    "full-gru": dict(encoder="sinc", hidden=512, context="gru", batch=8, window=20480, k=12, n=128),
    "full-transformer": dict(
        encoder="sinc", hidden=512, context="transformer", batch=8, window=20480, k=12, n=128
    ),
    # one rank of 8 under DDP: batch 32 here, negatives from the global batch's 8 x 32 x 128 frames
    # (the other ranks' gathered frames simulated by random ones, as gather_frames delivers them)
    "ddp-8x32": dict(
        encoder="logmel", hidden=128, context="gru", batch=32, window=20480, k=12, n=128, ranks=8
    ),
}


def worker(config: dict, materialise: bool, steps: int) -> dict:
    """Train `steps` steps on random audio (after one warm-up step); report speed and memory."""
    import torch

    from jtm.models.registry import build_cpc
    from jtm.models.spec import ModelSpec
    from jtm.train.infonce import draw_negatives, info_nce

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    spec = ModelSpec(
        encoder=config["encoder"],
        hidden=config["hidden"],
        norm="layer",
        sinc_kernel=251,
        mel_bands=128,
        mel_window=1024,
        context=config["context"],
        context_layers=1,
        attention_heads=8,
        predictor="linear",
        n_predicts=config["k"],
        reverse=False,
    )
    model = build_cpc(spec).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    audio = torch.randn(config["batch"], config["window"], device=device)
    generator = torch.Generator().manual_seed(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            frames, _, predictions, _ = model(audio)
        b, t, h = frames.shape
        frames, predictions = frames.float(), predictions.float()
        others = torch.randn((config.get("ranks", 1) - 1) * b * t, h, device=device)  # no gradient
        pool = torch.cat([frames.reshape(-1, h), others])
        draws = draw_negatives(generator, b, t, config["n"], len(pool))
        loss, _, _ = info_nce(
            frames, predictions, pool, draws, scorer="materialise" if materialise else "lean"
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    result = {
        "windows_per_s": steps * config["batch"] / seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "device": str(device),
    }
    if device.type == "cuda":
        result["peak_cuda_gb"] = torch.cuda.max_memory_allocated() / 1e9
        result["gpu"] = torch.cuda.get_device_name()
        try:  # needs pynvml; the percentage of the last sample period the GPU was busy
            result["gpu_utilisation_pct"] = torch.cuda.utilization()
        except Exception:  # no NVML: leave it out rather than guess
            pass
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, loss = args.worker.split(":")
        config = dict(CONFIGS[name], k=1) if loss == "k=1" else CONFIGS[name]
        print(json.dumps(worker(config, loss == "materialising", args.steps)))
        return
    rows = []
    for name in args.configs.split(","):
        # "k=1": the same model with one prediction step, i.e. (almost) no loss: what the
        # runtime, weights and encoder activations take whatever the loss.
        for loss in ("materialising", "lean", "k=1"):
            command = [sys.executable, __file__, "--worker", f"{name}:{loss}", "--steps", str(args.steps)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{name} {loss}: failed\n{done.stderr[-2000:]}")
                continue
            rows.append((name, loss, json.loads(done.stdout.strip().splitlines()[-1])))
    memory_key = "peak_cuda_gb" if rows and "peak_cuda_gb" in rows[0][2] else "peak_rss_gb"
    device = rows[0][2].get("gpu", rows[0][2]["device"]) if rows else "?"
    print(
        f"\nCPC training steps on {device}, {args.steps} timed steps after one warm-up; memory: {memory_key}"
    )
    print("loss GB: peak minus the k=1 run's peak, the memory the K-step loss itself adds")
    header = f"{'config':18s} {'loss':14s} {'windows/s':>10s} {'peak GB':>8s} {'loss GB':>8s}"
    print(f"{header} {'speed x':>8s} {'peak x':>7s} {'loss x':>7s}")
    baseline = {name: r for name, loss, r in rows if loss == "materialising"}
    floor = {name: r[memory_key] for name, loss, r in rows if loss == "k=1"}
    for name, loss, r in rows:
        if loss == "k=1":
            continue
        base = baseline[name]
        extra, base_extra = r[memory_key] - floor.get(name, 0.0), base[memory_key] - floor.get(name, 0.0)
        print(
            f"{name:18s} {loss:14s} {r['windows_per_s']:10.2f} {r[memory_key]:8.2f} {extra:8.2f}"
            f" {r['windows_per_s'] / base['windows_per_s']:8.2f} {r[memory_key] / base[memory_key]:7.2f}"
            f" {extra / base_extra:7.2f}"
            + (f"  GPU busy {r['gpu_utilisation_pct']}%" if "gpu_utilisation_pct" in r else "")
        )


if __name__ == "__main__":
    main()
