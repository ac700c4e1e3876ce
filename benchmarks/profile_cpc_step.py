"""Where a CPC training step's time goes, per encoder: the encoder, the context network and
the InfoNCE loss, each forward + backward, timed alone on the same batch of random audio; and
the loss with negatives from a sub-pool (`pretrain.negative_pool`).

Ratios are against the raw-waveform SincNet step (the seed study's encoder) in the same run.
On a CPU the waveform encoder's first layers dominate; the log-mel encoder's STFT costs little.

    python benchmarks/profile_cpc_step.py [--repeats 5] [--hidden 128] [--context gru]
"""

from __future__ import annotations

import argparse
import time

import torch

from jtm.models.registry import build_cpc
from jtm.models.spec import ModelSpec
from jtm.train.infonce import draw_negatives, draw_subpool, info_nce


def milliseconds(fn, repeats: int) -> float:
    """Mean wall time of `fn()` over `repeats` calls after one warm-up call."""
    fn()
    began = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - began) / repeats * 1000


def profile(encoder: str, args) -> dict[str, float]:
    """Forward + backward milliseconds of each part, and of the whole step, for one encoder."""
    torch.manual_seed(0)
    spec = ModelSpec(
        encoder=encoder, sinc_kernel=251, mel_bands=128, mel_window=1024, hidden=args.hidden, norm="layer",
        context=args.context, context_layers=1, attention_heads=4, predictor="linear", n_predicts=12,
        reverse=False,
    )  # fmt: skip
    model = build_cpc(spec)
    audio = torch.randn(args.batch, 20_480)
    frames = model.encoder(audio).detach().requires_grad_()
    length = frames.shape[1]
    draws = draw_negatives(torch.Generator().manual_seed(0), args.batch, length, 128, args.batch * length)
    predictions = torch.randn(*frames.shape[:2], 12, args.hidden, requires_grad=True)

    def encoder_step():
        model.encoder(audio).sum().backward()

    def context_step():
        model.context(frames)[0].sum().backward()

    def loss_step():
        info_nce(frames, predictions, frames.reshape(-1, args.hidden), draws)[0].backward()

    generators = torch.Generator().manual_seed(1), torch.Generator().manual_seed(0)
    subpool, subdraws = draw_subpool(*generators, args.batch, length, 128, args.batch * length, args.subpool)

    def subpool_step():
        pool = frames.reshape(-1, args.hidden)
        info_nce(frames, predictions, pool, subdraws, subpool=subpool)[0].backward()

    def whole_step():
        z, _, predicted, _ = model(audio)
        info_nce(z, predicted, z.reshape(-1, args.hidden), draws)[0].backward()

    parts = {"encoder": encoder_step, "context": context_step, "loss": loss_step, "step": whole_step}
    parts["sub-pool loss"] = subpool_step
    return {name: milliseconds(fn, args.repeats) for name, fn in parts.items()}


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--context", default="gru")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subpool", type=int, default=256, help="negative_pool for the last column")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {encoder: profile(encoder, args) for encoder in ("sinc", "conv", "logmel")}
    base = rows["sinc"]["step"]
    print(f"CPC step, batch {args.batch} x 20480 samples, hidden {args.hidden}, {args.context}, K=12, N=128, "
          f"{args.threads} threads; ms forward + backward (share of the step)")  # fmt: skip
    columns = f"{'encoder':>14s} {'context':>14s} {'loss':>14s} {'step':>8s} {'vs sinc':>8s}"
    print(f"{'encoder':8s} {columns} {'loss, sub-pool ' + str(args.subpool):>20s}")
    for encoder, ms in rows.items():
        cells = " ".join(f"{ms[p]:6.0f} ({ms[p] / ms['step']:4.0%})" for p in ("encoder", "context", "loss"))
        print(f"{encoder:8s} {cells} {ms['step']:8.0f} {ms['step'] / base:7.2f}x {ms['sub-pool loss']:20.0f}")


if __name__ == "__main__":
    main()
