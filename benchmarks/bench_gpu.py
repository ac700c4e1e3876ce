"""CPC training steps on a GPU: windows/s, where a step's time goes, memory and FLOP rate,
for each InfoNCE scorer side by side, against a bf16 matrix-product peak measured in the same run.

    make bench-gpu                                   # or, on a bare GPU machine with torch only:
    PYTHONPATH=$PWD python3 benchmarks/bench_gpu.py [--configs seed-b32,...] [--seconds 3] [--out DIR]
    python benchmarks/bench_gpu.py --smoke           # CPU, tiny shapes: checks the script, no figure

Needs torch (and torchaudio for the log-mel encoder) and this repository on PYTHONPATH; nothing
else of jtm's dependencies, no data (random audio), no network. Each (config, scorer) runs in a
fresh process under a time limit, so one failure (or out-of-memory) costs only its row.

Columns, per config and scorer (`materialise`: CPC_audio's formulation; `lean`: jtm's CPU loss;
`gemm`: the GPU's, bf16 products against the pool): windows/s of whole steps (model + loss +
Adam, the batch's audio and negatives copied from page-locked memory as pretraining does); ms
per step of the model alone (forward, backward, Adam), the loss alone (forward + backward) and
the data (drawing one step's negatives and pinning them: done ahead by the fetch threads in
pretraining, so off the step's path when it is shorter than the step); peak memory of the step
and the loss's own; TFLOP/s (torch's FlopCounterMode over one step / step time) and its share
of the peak; speed and loss memory against the materialising scorer at the same config.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

WINDOW = 20_480
SEED = dict(encoder="sinc", hidden=512, context="gru", negative_pool=0)  # the seed study's model
DEFAULT = dict(encoder="logmel", hidden=128, context="gru", negative_pool=256)  # params.yaml's recipe
CONFIGS = {
    "seed-b8": dict(SEED, batch=8),
    "seed-b32": dict(SEED, batch=32),
    "seed-b128": dict(SEED, batch=128),
    "seed-transformer-b32": dict(SEED, context="transformer", batch=32),
    "default-b8": dict(DEFAULT, batch=8),
    "default-b128": dict(DEFAULT, batch=128),
    # launch overhead: the default recipe's model as CUDA graphs (torch.compile "reduce-overhead")
    "default-b8-graphs": dict(DEFAULT, batch=8, compile="reduce-overhead"),
    # one rank of 8 under DDP: negatives from the global batch's 8 x 32 x 128 frames
    "ddp-8x32": dict(SEED, batch=32, ranks=8),
}
SCORERS = ("materialise", "lean", "gemm")
SMOKE = dict(hidden=32, window=3_200, k=4, n=8)  # CPU: 20 frames a window, 4 steps ahead


def spec(config: dict, smoke: bool):
    from jtm.models.spec import ModelSpec

    return ModelSpec(
        encoder=config["encoder"], sinc_kernel=251, mel_bands=128, mel_window=1024,
        hidden=SMOKE["hidden"] if smoke else config["hidden"], norm="layer", context=config["context"],
        context_layers=1, attention_heads=4, predictor="linear", n_predicts=SMOKE["k"] if smoke else 12,
        reverse=False,
    )  # fmt: skip


def timed(fn, seconds: float, sync) -> float:
    """Mean seconds per call of `fn` after 3 warm-up calls, over at least `seconds` (3 calls)."""
    for _ in range(3):
        fn()
    sync()
    calls, began = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - began < seconds:
        fn()
        calls += 1
        sync()
    return (time.perf_counter() - began) / calls


def worker(name: str, scorer: str, seconds: float, smoke: bool) -> dict:
    """One (config, scorer): the figures of the module docstring."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from jtm.models.registry import build_cpc
    from jtm.train.infonce import draw_negatives, draw_subpool, info_nce

    config = CONFIGS[name]
    device = torch.device("cuda" if torch.cuda.is_available() and not smoke else "cpu")
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    window, n = (SMOKE["window"], SMOKE["n"]) if smoke else (WINDOW, 128)
    batch, ranks, length = config["batch"], config.get("ranks", 1), window // 160
    pool_size, subpool_size = ranks * batch * length, config["negative_pool"]
    model = build_cpc(spec(config, smoke)).to(device)
    trained = torch.compile(model, mode=config["compile"]) if config.get("compile") and cuda else model
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)
    dtype = torch.bfloat16 if cuda else torch.float32
    pin = (lambda x: x.pin_memory()) if cuda else (lambda x: x)
    others = torch.randn(pool_size - batch * length, spec(config, smoke).hidden, device=device)

    def draws(step: int):
        """One step's negatives, drawn and pinned on the CPU as pretraining's fetch threads do."""
        generators = torch.Generator().manual_seed(step), torch.Generator().manual_seed(step + 1)
        if 0 < subpool_size < pool_size:
            subpool, drawn = draw_subpool(*generators, batch, length, n, pool_size, subpool_size)
            return pin(drawn), pin(subpool)
        return pin(draw_negatives(generators[0], batch, length, n, pool_size)), None

    host = [(pin(torch.randn(batch, window)), *draws(i)) for i in range(4)]  # ready ahead, as in training
    calls = iter(range(10**9))

    def loss_of(frames, predictions, drawn, subpool):
        pool = torch.cat([frames.reshape(-1, frames.shape[-1]), others])  # this rank's rows first
        return info_nce(frames, predictions, pool, drawn, 0, scorer, subpool, dtype)[0]

    def step():
        audio, drawn, subpool = host[next(calls) % len(host)]
        audio, drawn = audio.to(device, non_blocking=True), drawn.to(device, non_blocking=True)
        subpool = None if subpool is None else subpool.to(device, non_blocking=True)
        with autocast:
            frames, _, predictions, _ = trained(audio)
        loss_of(frames.float(), predictions.float(), drawn, subpool).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def model_step():
        with autocast:
            frames, _, predictions, _ = trained(host[0][0].to(device, non_blocking=True))
        (frames.float().square().mean() + predictions.float().square().mean()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with torch.no_grad(), autocast:
        frames, _, predictions, _ = model(host[0][0].to(device))
    frames, predictions = (x.float().requires_grad_() for x in (frames, predictions))
    drawn, subpool = (None if x is None else x.to(device) for x in host[0][1:])

    def loss_step():
        loss_of(frames, predictions, drawn, subpool).backward()

    result = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__}
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated() if cuda else 0
    result["loss_ms"] = 1000 * timed(loss_step, seconds, sync)
    result["loss_gb"] = (torch.cuda.max_memory_allocated() - before) / 1e9 if cuda else float("nan")
    result["model_ms"] = 1000 * timed(model_step, seconds, sync)
    result["data_ms"] = 1000 * timed(lambda: draws(0), seconds, sync)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result["step_ms"] = 1000 * timed(step, seconds, sync)
    result["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
    result["windows_per_s"] = batch / result["step_ms"] * 1000
    with FlopCounterMode(display=False) as counter:  # the eager model: what a step computes
        with autocast:
            out = model(host[0][0].to(device))
        loss_of(out[0].float(), out[2].float(), drawn, subpool).backward()
    optimizer.zero_grad(set_to_none=True)
    result["tflop_per_step"] = counter.get_total_flops() / 1e12
    return result


def matmul_peak(smoke: bool, seconds: float) -> float:
    """TFLOP/s of a bf16 8192^3 matrix product on this GPU (float32 512^3 on a CPU for --smoke)."""
    import torch

    cuda = torch.cuda.is_available() and not smoke
    size, dtype = (8192, torch.bfloat16) if cuda else (512, torch.float32)
    a, b = (torch.randn(size, size, dtype=dtype, device="cuda" if cuda else "cpu") for _ in range(2))
    per_call = timed(lambda: a @ b, seconds, torch.cuda.synchronize if cuda else (lambda: None))
    return 2 * size**3 / per_call / 1e12


def row(name: str, scorer: str, r: dict, base: dict | None, peak: float) -> str:
    rate = r["tflop_per_step"] / r["step_ms"] * 1000
    speed = r["windows_per_s"] / base["windows_per_s"] if base else float("nan")
    memory = r["loss_gb"] / base["loss_gb"] if base else float("nan")
    return (
        f"{name:21s} {scorer:11s} {r['windows_per_s']:9.0f} {r['step_ms']:8.1f} {r['model_ms']:8.1f}"
        f" {r['loss_ms']:8.1f} {r['data_ms']:7.1f} {r['peak_gb']:7.2f} {r['loss_gb']:7.2f}"
        f" {rate:7.1f} {100 * rate / peak:6.1f}% {speed:7.2f} {memory:7.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--scorers", default=",".join(SCORERS))
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--limit", type=float, default=240, help="seconds allowed per (config, scorer)")
    parser.add_argument("--out", type=Path, help="write results.json here")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU: checks the script")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, scorer = args.worker.split(":")
        print(json.dumps(worker(name, scorer, args.seconds, args.smoke)))
        return
    peak = matmul_peak(args.smoke, args.seconds)
    print(f"matrix-product peak measured here: {peak:.1f} TFLOP/s", flush=True)
    results: dict[str, dict] = {}
    header = (
        f"{'config':21s} {'scorer':11s} {'windows/s':>9s} {'step ms':>8s} {'model ms':>8s} {'loss ms':>8s}"
    )
    print(f"{header} {'data ms':>7s} {'peak GB':>7s} {'loss GB':>7s} {'TFLOP/s':>7s} {'of peak':>7s}"
          f" {'speed x':>7s} {'loss GB x':>7s}")  # fmt: skip
    for name in args.configs.split(","):
        for scorer in args.scorers.split(","):
            command = [
                sys.executable,
                __file__,
                "--worker",
                f"{name}:{scorer}",
                "--seconds",
                str(args.seconds),
            ]
            try:
                done = subprocess.run(
                    command + ["--smoke"] * args.smoke, capture_output=True, text=True, timeout=args.limit
                )
            except subprocess.TimeoutExpired:
                print(f"{name:21s} {scorer:11s} over the {args.limit:.0f} s limit", flush=True)
                continue
            if done.returncode != 0:
                print(f"{name:21s} {scorer:11s} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            results[f"{name}:{scorer}"] = r = json.loads(done.stdout.strip().splitlines()[-1])
            print(row(name, scorer, r, results.get(f"{name}:materialise"), peak), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"peak_tflops": peak, "rows": results}, indent=2))


if __name__ == "__main__":
    main()
