"""Benchmark the training loader: windows/s one DataLoader worker delivers from ingested shards,
side by side (same audio, same run) with the per-track memory maps MusicNet's arrays use, and
against what the model consumes.

The audio: `--files` synthetic 16 kHz files of `--seconds` each, written as WAVs, ingested into
shards (jtm/ingest) and saved as one .npy per file (stage `resample`'s layout). Both loaders are
jtm.loading.windows.WindowDataset under a torch DataLoader with one worker process, batches of
`--batch` windows of 20 480 samples drawn uniformly (jtm.loading.mixture), pages cold (the files
were just written, so mostly in the page cache: this measures the loader's own cost, not the
disk's). The model's appetite: a demo-config CPC step (log-mel, hidden 128) timed here on this
CPU, and the compass figure for one H100 at the full config (~2 500 windows/s; the loader's
target is 10x that per worker). "Fetched" is what a worker produces on its own; "delivered"
what reaches the training process through the DataLoader (the hand-over between processes
included); "fetch threads" what threads of the training process itself deliver
(`pretrain.fetch_threads`, jtm/loading/prefetch.py: no hand-over).

    python benchmarks/bench_loader.py [--files 40] [--seconds 60] [--batch 32] [--batches 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from jtm.ingest.decode import Target
from jtm.ingest.discover import Corpus
from jtm.ingest.stage import ingest
from jtm.loading.mixture import MixturePlan
from jtm.loading.prefetch import prefetched
from jtm.loading.windows import WindowDataset, as_batch, load_unlabeled

H100_FULL_WINDOWS_PER_S = 2500  # the compass figure: one H100, the seed study's full config
WINDOW = 20_480


def make_audio(root: Path, files: int, seconds: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Write the WAVs, ingest them, save each file as its own .npy: (windows, tracks read from the
    shards, the same tracks read from the .npy files)."""
    rng = np.random.default_rng(0)
    (root / "wav").mkdir()
    for i in range(files):
        sf.write(
            root / "wav" / f"{i:04d}.wav",
            (0.1 * rng.standard_normal(int(16_000 * seconds))).astype(np.float32),
            16_000,
            subtype="FLOAT",
        )
    target = Target(16_000, "VHQ", "float32", 10.0, WINDOW, WINDOW // 2)
    ingest([Corpus("bench", (str(root / "wav"),), 1.0)], target, 1024, 1.0, root / "ingest", root / "work", 2)
    windows, tracks = load_unlabeled(root / "ingest")
    manifest = pd.read_parquet(root / "ingest" / "manifest.parquet")
    npy = []
    for row in manifest.itertuples():
        path = root / f"{row.Index}.npy"
        np.save(
            path,
            np.memmap(root / "ingest" / row.shard, dtype=np.float32, mode="r")[
                row.offset : row.offset + row.samples
            ],
        )
        npy.append(str(path))
    per_track = pd.DataFrame({"id": tracks["id"], "path": npy})
    return windows, tracks, per_track


class PerWindow(torch.utils.data.Dataset):
    """A WindowDataset read window by window and collated by torch (the loader before
    `__getitems__`): the baseline."""

    def __init__(self, dataset: WindowDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, ref):
        return self.dataset[ref]


def fetch_rate(dataset: WindowDataset, plan) -> float:
    """Windows/s a worker itself fetches (`__getitems__` in this process: no hand-over)."""
    dataset.__getitems__(plan[0])
    began = time.perf_counter()
    for batch in plan:
        dataset.__getitems__(batch)
    return sum(len(b) for b in plan) / (time.perf_counter() - began)


def threaded_rate(dataset: WindowDataset, plan, threads: int) -> float:
    """Windows/s reaching the training loop from `threads` fetch threads of its own process
    (`pretrain.fetch_threads`: jtm.loading.prefetch), in plan order."""
    dataset.__getitems__(plan[0])
    began, count = time.perf_counter(), 0
    for audio, _, _ in prefetched(dataset.__getitems__, plan, threads):
        count += len(audio)
    return count / (time.perf_counter() - began)


def windows_per_second(dataset, plan, batches: int, workers: int) -> float:
    collate = as_batch if isinstance(dataset, WindowDataset) else None
    loader = DataLoader(dataset, batch_sampler=plan[:batches], num_workers=workers, collate_fn=collate)
    iterator = iter(loader)
    next(iterator)  # worker start-up is not the loader's steady rate
    began, count = time.perf_counter(), 0
    for audio, _, _ in iterator:
        count += len(audio)
    return count / (time.perf_counter() - began)


def model_windows_per_second(batch: int = 8, steps: int = 3) -> float:
    """A demo-config CPC training step (log-mel, hidden 128, GRU, K=12, N=128) on this CPU."""
    from jtm.models.registry import build_cpc
    from jtm.models.spec import ModelSpec
    from jtm.train.infonce import draw_negatives, info_nce

    spec = ModelSpec(
        encoder="logmel", sinc_kernel=251, mel_bands=128, mel_window=1024, hidden=128, norm="layer",
        context="gru", context_layers=1, attention_heads=4, predictor="linear", n_predicts=12, reverse=False,
    )  # fmt: skip
    model = build_cpc(spec)
    audio = torch.randn(batch, WINDOW)

    def step():
        frames, _, predictions, _ = model(audio)
        draws = draw_negatives(
            torch.Generator().manual_seed(0), batch, frames.shape[1], 128, batch * frames.shape[1]
        )
        info_nce(frames, predictions, frames.reshape(-1, frames.shape[-1]), draws)[0].backward()

    step()
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        windows, tracks, per_track = make_audio(Path(tmp), args.files, args.seconds)
        plan = MixturePlan(windows, {"bench": 1.0}, "uniform", args.batch, seed=0).epoch(0)
        plan = (plan * (args.batches // max(1, len(plan)) + 1))[: args.batches]
        shards, arrays = WindowDataset(windows, tracks), WindowDataset(windows, per_track)
        loaders = {
            "per-track .npy, per window": PerWindow(arrays),
            "shards, per window": PerWindow(shards),
            "per-track .npy, batched": arrays,
            "shards, batched": shards,
        }
        rates = {name: windows_per_second(ds, plan, args.batches, 1) for name, ds in loaders.items()}
        fetched = fetch_rate(shards, plan)
        threaded = {n: threaded_rate(shards, plan, n) for n in (1, 2)}
    consumed = model_windows_per_second()
    hours = args.files * args.seconds / 3600
    print(
        f"loader: one DataLoader worker, batches of {args.batch} x {WINDOW} samples, {hours:.2f} h of audio"
    )
    base = rates["per-track .npy, per window"]
    for name, rate in rates.items():
        print(f"  {name:28s} {rate:10.0f} windows/s  ({rate / base:.2f}x the per-track, per-window loader)")
    print(f"  a worker's own fetch from shards (no hand-over) {fetched:10.0f} windows/s")
    for n, rate in threaded.items():
        print(
            f"  shards, {n} fetch thread(s) in the training process"
            f" {rate:10.0f} windows/s  ({rate / base:.2f}x)"
        )
    print(f"model, demo config, this CPU (one torch thread):   {consumed:8.1f} windows/s")
    print(f"one shard worker / model on this CPU:              {rates['shards, batched'] / consumed:8.0f}x")
    delivered = (
        ("delivered", rates["shards, batched"]),
        ("fetched", fetched),
        ("one fetch thread", threaded[1]),
    )
    for what, rate in delivered:
        ratio = rate / H100_FULL_WINDOWS_PER_S
        print(
            f"one shard worker ({what}) / one H100, full config (~{H100_FULL_WINDOWS_PER_S}/s): {ratio:.1f}x"
        )


if __name__ == "__main__":
    main()
