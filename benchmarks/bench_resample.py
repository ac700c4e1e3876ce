"""Benchmark the `resample` stage against the sox CLI and torchaudio on the same files.

Prints x realtime and MB/s (input WAV bytes per second) for each, and each one's ratio to the
sox CLI measured in the same run. Not a test: figures depend on the machine.

    python benchmarks/bench_resample.py [--minutes 10] [--tracks 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from jtm.config import ResampleConfig, load_params, section
from jtm.corpus.resample import resample_corpus
from jtm.musicnet import layout

SR_IN, SR_OUT = 44_100, 16_000


def make_corpus(root: Path, minutes: float, tracks: int) -> Path:
    """A MusicNet-layout corpus of sweeps plus noise, `minutes` long in all, float32 WAVs."""
    rng = np.random.default_rng(0)
    seconds = minutes * 60 / tracks
    for folder in ("train_data", "train_labels", "test_data", "test_labels"):
        (root / "musicnet" / folder).mkdir(parents=True)
    rows = []
    for i in range(tracks):
        t = np.arange(int(seconds * SR_IN)) / SR_IN
        audio = 0.3 * np.sin(2 * np.pi * (100 + 40 * i) * t * (1 + t / seconds)) + 0.05 * rng.standard_normal(
            len(t)
        )
        track_id = 5000 + i
        layout.write_wav(layout.wav_path(root, "train", track_id), audio.astype(np.float32), SR_IN, "FLOAT")
        pd.DataFrame(
            [[0, len(t) // 2, 1, 60, 0.0, 1.0, "Quarter"]], columns=list(layout.LABEL_COLUMNS)
        ).to_csv(layout.labels_path(root, "train", track_id), index=False)
        rows.append([track_id, "Bench", "Sweep", "", "Solo Piano", "", "", f"B{i}", int(seconds)])
    pd.DataFrame(rows, columns=list(layout.METADATA_COLUMNS)).to_csv(root / layout.METADATA_FILE, index=False)
    return root


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = section(load_params("params.yaml"), "resample", ResampleConfig)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = make_corpus(tmp / "raw", args.minutes, args.tracks)
        wavs = sorted((raw / "musicnet" / "train_data").glob("*.wav"))
        audio_seconds = sum(sf.info(str(w)).duration for w in wavs)
        megabytes = sum(w.stat().st_size for w in wavs) / 1e6
        results: dict[str, float] = {}

        def stage(workers: int):
            return lambda: resample_corpus(raw, tmp / "out", dataclasses.replace(cfg, workers=workers))

        results["jtm resample stage, 1 process"] = best_of(args.repeats, stage(1))
        if cores > 1:
            results[f"jtm resample stage, {cores} processes"] = best_of(args.repeats, stage(cores))

        def in_memory():
            for w in wavs:
                soxr.resample(sf.read(str(w), dtype="float32")[0], SR_IN, SR_OUT, quality=cfg.quality)

        results[f"soxr {cfg.quality} in memory (+ read), 1 thread"] = best_of(args.repeats, in_memory)
        if shutil.which("sox"):

            def sox_cli():
                for w in wavs:
                    out = tmp / f"sox-{w.stem}.wav"
                    subprocess.run(
                        ["sox", "-V1", str(w), "-r", str(SR_OUT), str(out), "rate", "-v"], check=True
                    )

            results["sox CLI `rate -v`, 1 process"] = best_of(args.repeats, sox_cli)
        else:
            print("sox CLI not found (apt-get install sox): no sox baseline")

        import torch
        import torchaudio.functional as F

        torch.set_num_threads(1)

        def torchaudio_resample():
            for w in wavs:
                x = torch.from_numpy(sf.read(str(w), dtype="float32")[0])
                np.save(tmp / f"ta-{w.stem}.npy", F.resample(x, SR_IN, SR_OUT).numpy())

        results["torchaudio.functional.resample, 1 thread"] = best_of(args.repeats, torchaudio_resample)

    baseline = results.get("sox CLI `rate -v`, 1 process")
    print(f"\n{audio_seconds / 60:.1f} min of 44.1 kHz float32 audio, {megabytes:.0f} MB, {len(wavs)} files;")
    print(f"best of {args.repeats}; {cores} cores; ratio = x realtime / sox CLI's x realtime\n")
    print(f"{'method':48s} {'seconds':>8s} {'x realtime':>11s} {'MB/s':>8s} {'ratio':>7s}")
    for name, seconds in results.items():
        ratio = f"{baseline / seconds:7.2f}" if baseline else "    n/a"
        print(f"{name:48s} {seconds:8.2f} {audio_seconds / seconds:11.0f} {megabytes / seconds:8.1f} {ratio}")


if __name__ == "__main__":
    main()
