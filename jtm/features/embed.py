"""Stage `embed`: features for every window in the index, stored once for downstream training.

Feature sets (`embed.features`):
- `cpc`: the pretrained model (context-network output by default, `embed.layer: encoder` for
  the encoder's frames);
- `random`: the same architecture, seeded random init (the seed study's control);
- `logmel`: a 128-band log-mel spectrogram (torchaudio) at the same 100 Hz frame rate;
- `cqt`: a 95-bin log constant-Q spectrogram (a bin a semitone, C1 to A#8), the same frames
  `pretrain.encoder: cqt` starts from: the raw-feature baseline of a CQT model.

Output folder::

    keys.parquet               row, id, start, length, split, frame_row: one row per window
                               (index order); frame_row: the window's row in frames.npy, or -1
    <feature>/frames.npy       (framed windows, 128, dim) float16, memory-mappable: 100 Hz
                               frames of a non-overlapping set of windows per track (those a
                               frame-level task reads: every frame once; half the disk)
    <feature>/pooled.npy       (windows, dim) float32: every window's frames pooled per
                               `embed.pooling` (mean: dim = frames' dim; meanstd, meanmax: twice)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from jtm import choices
from jtm.atomic import atomic_dir
from jtm.config import EmbedConfig
from jtm.devices import autocast, resolve_device
from jtm.loading.windows import WindowDataset, WindowRef, load_windows, non_overlapping
from jtm.models.artifact import load_encoder, load_model
from jtm.models.cpc import AudioEmbedder
from jtm.models.frontend import LogCQT, LogMel
from jtm.progress import progress

SAMPLE_RATE = 16_000
KEY_COLUMNS = ["row", "id", "start", "length", "split", "frame_row"]


def build_extractor(name: str, model_dir: Path, cfg: EmbedConfig) -> torch.nn.Module:
    """The module that turns audio (B, L) into feature set `name`'s frames (B, L // 160, dim)."""
    if name == "cpc":
        return load_encoder(model_dir, cfg.layer)
    if name == "random":
        torch.manual_seed(cfg.seed)
        return AudioEmbedder(load_model(model_dir, weights=False), cfg.layer).eval()
    if name == "logmel":
        return LogMel().eval()
    if name == "cqt":
        return LogCQT().eval()
    raise ValueError(f"unknown feature set {name!r}: use one of {choices.FEATURES}")


def pool(frames: torch.Tensor, how: str) -> torch.Tensor:
    """(B, T, D) frames -> (B, D) mean, or (B, 2D) mean and std (`meanstd`) or mean and max
    (`meanmax`) over time: the window-level vector every feature set gets alike."""
    mean = frames.mean(1)
    if how == "mean":
        return mean
    if how == "meanstd":
        return torch.cat([mean, frames.std(1, correction=0)], 1)
    if how == "meanmax":
        return torch.cat([mean, frames.amax(1)], 1)
    raise ValueError(f"unknown pooling {how!r}: use one of {choices.POOLINGS}")


def frame_rows(windows: pd.DataFrame) -> np.ndarray:
    """(windows,) int64: each window's row in frames.npy, -1 where its frames are not stored.
    Frames are stored for a non-overlapping set of windows per track (jtm.loading.windows), the
    ones a frame-level task reads: every frame once, half the disk of every window's."""
    stored = non_overlapping(windows)
    return np.where(stored, np.cumsum(stored) - 1, -1)


@torch.no_grad()
def embed(
    index_dir: str | Path, model_dir: str | Path | None, out_dir: str | Path, cfg: EmbedConfig, tracker=None
) -> dict:
    """Embed every window of every split with each of `cfg.features`; write the folder described
    above (atomically), streaming: features go straight into memory-mapped files, so memory does
    not grow with the corpus. On `embed.device` (bf16 autocast there under `embed.bf16`); the
    features stored in float32/16. `model_dir` (a pretraining run's) is read by `cpc` and
    `random` only."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device, "embed.device")
    windows, tracks = load_windows(index_dir, ("train", "val", "test"))
    dataset = WindowDataset(windows, tracks)
    hours = float(windows["length"].sum()) / SAMPLE_RATE / 3600
    keys = windows.assign(row=np.arange(len(windows)), frame_row=frame_rows(windows))
    stored = int((keys["frame_row"] >= 0).sum())
    metrics: dict = {"windows": len(windows), "framed_windows": stored, "audio_hours": hours}
    with atomic_dir(out_dir) as tmp:
        keys[KEY_COLUMNS].to_parquet(tmp / "keys.parquet", index=False)
        for name in cfg.features:
            extractor = build_extractor(name, Path(model_dir or ""), cfg).to(device)
            began = time.perf_counter()
            frames = pooled = None
            for begin in progress(
                range(0, len(windows), cfg.batch_size), desc=f"embed {name}", unit="batches"
            ):
                rows = range(begin, min(begin + cfg.batch_size, len(windows)))
                audio = torch.stack([dataset[WindowRef(i, 0)][0] for i in rows]).to(device)
                with autocast(device, cfg.bf16):
                    features = extractor(audio).float()
                vectors = pool(features, cfg.pooling).cpu().numpy()
                features = features.cpu().numpy()
                if frames is None:
                    (tmp / name).mkdir()
                    frames = _array(tmp / name / "frames.npy", np.float16, (stored, *features.shape[1:]))
                    pooled = _array(tmp / name / "pooled.npy", np.float32, (len(windows), vectors.shape[1]))
                at = keys["frame_row"].to_numpy()[rows.start : rows.stop]
                frames[at[at >= 0]] = features[at >= 0].astype(np.float16)
                pooled[rows.start : rows.stop] = vectors
            frames.flush()
            pooled.flush()
            dim = int(pooled.shape[1])
            del frames, pooled  # written: memory maps, never the whole feature set in memory
            minutes = (time.perf_counter() - began) / 60
            metrics[f"{name}_hours_per_minute"] = hours / minutes
            metrics[f"{name}_dim"] = dim
    return metrics


def _array(path: Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def load_embeddings(folder: str | Path, feature: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(keys, frames (framed windows, 128, dim) float16, pooled (windows, dim) float32): the
    arrays as read-only memory maps (index them to read; nothing is loaded until then). A
    window's frames are `frames[keys.frame_row]` where that is >= 0 (module docstring)."""
    folder = Path(folder)
    keys = pd.read_parquet(folder / "keys.parquet")
    return (
        keys,
        np.load(folder / feature / "frames.npy", mmap_mode="r"),
        np.load(folder / feature / "pooled.npy", mmap_mode="r"),
    )
