"""`jtm features`: a trained model's frames and pooled embeddings for any audio files, so a
researcher can use a model on their own music without building a corpus.

Every file the ingest path decodes (any format libsndfile or FFmpeg reads, a video's audio
track, any rate, channels averaged to mono, resampled with soxr as stage `resample` does) is
cut into windows of the model's length, `hop` samples apart (the remainder after the last full
window is dropped; a file shorter than one window is listed and skipped, as is one that cannot
be read; what became of every file is logged), and embedded in batches.

Output folder (written beside its place, renamed on success)::

    keys.parquet    row, file (files.parquet row), path, window (0-based in its file),
                    start (16 kHz samples), seconds
    files.parquet   path, status (ok | short | error), reason, decoder, format, subtype,
                    source_rate, channels, notes (what the decoders said), samples (16 kHz),
                    windows
    frames.npy      (windows, frames, dim) float16, memory-mappable: 100 Hz frames
    pooled.npy      (windows, dim) float32: the frames pooled (mean; meanstd, meanmax: 2 dim)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from jtm.atomic import atomic_dir
from jtm.corpus.index import window_starts
from jtm.errors import DataError
from jtm.features.embed import SAMPLE_RATE, pool
from jtm.ingest.account import account_table, log_account, log_rejects
from jtm.ingest.decode import Target, decode_file
from jtm.ingest.discover import Corpus, survey
from jtm.models.artifact import load_encoder, model_config
from jtm.progress import progress


def _decode_all(
    paths: list[str], scratch: Path, target: Target
) -> tuple[pd.DataFrame, list[Path | None], int]:
    """Each file decoded into `scratch` (raw float32): the files table, each file's raw path,
    and the count of files skipped as not audio; what became of every file is logged."""
    found = survey(Corpus("files", tuple(paths), 1.0))
    rows, raws = [], []
    for i, candidate in enumerate(progress(found.candidates, desc="features: decode", unit="files")):
        raw = scratch / f"{i}.raw"
        decoded = decode_file(candidate.path, raw, target, fingerprint=False)
        fields = ("status", "reason", "decoder", "format", "subtype", "source_rate", "channels", "notes")
        rows.append(
            {"path": candidate.path, **{k: getattr(decoded, k) for k in fields}, "samples": decoded.samples}
        )
        raws.append(raw if decoded.status == "ok" else None)
    files = pd.DataFrame(rows)
    log_account("features", account_table(files, found.skipped, target.rate, found.links))
    log_rejects("features", files[files["status"] != "ok"], "files.parquet in the output folder")
    return files, raws, sum(found.skipped.values())


def _keys(files: pd.DataFrame, window: int, hop: int) -> pd.DataFrame:
    """One row per full window of the decoded files (as the index places MusicNet's); counts
    each file's windows into `files`."""
    samples = files["samples"].where(files["status"] == "ok", 0).to_numpy(dtype=np.int64)
    file, starts = window_starts(samples, window, hop)
    files["windows"] = np.bincount(file, minlength=len(files))
    return pd.DataFrame(
        {"row": np.arange(len(file)), "file": file, "path": files["path"].to_numpy()[file],
         "window": starts // hop, "start": starts, "seconds": starts / SAMPLE_RATE}
    )  # fmt: skip


def embed_files(
    paths: list[str],
    model_dir: str | Path,
    out: str | Path,
    *,
    layer: str = "encoder",
    pooling: str = "mean",
    hop: int | None = None,
    quality: str = "VHQ",
    batch_size: int = 16,
) -> dict:
    """Embed every window of the audio files under `paths` (files, folders, globs) with the model
    in `model_dir` (a pretrain output folder); write `out` as the module docstring says."""
    model_dir = Path(model_dir)
    window = int(model_config(model_dir)["window"])
    hop = hop or window
    encoder = load_encoder(model_dir, layer)
    target = Target(SAMPLE_RATE, quality, "float32", 10.0, window, hop)
    with tempfile.TemporaryDirectory() as scratch, atomic_dir(out) as tmp:
        files, raws, skipped = _decode_all(paths, Path(scratch), target)
        keys = _keys(files, window, hop)
        if keys.empty:
            raise DataError(
                paths[0], "no file holds a full window of audio: nothing to embed (see the reasons above)"
            )
        frames = pooled = None
        batches = [keys.iloc[i : i + batch_size] for i in range(0, len(keys), batch_size)]
        audio = {}
        for batch in progress(batches, desc="features: embed", unit="batches"):
            clips = []
            for f, start in zip(batch["file"], batch["start"], strict=True):
                if f not in audio:  # files in order: one memory map at a time
                    audio = {f: np.memmap(raws[f], dtype=np.float32, mode="r")}
                clips.append(audio[f][start : start + window])
            with torch.no_grad():
                features = encoder(torch.from_numpy(np.stack(clips))).float()
            vectors = pool(features, pooling).numpy()
            if frames is None:
                shape = (len(keys), features.shape[1], features.shape[2])
                frames = np.lib.format.open_memmap(
                    tmp / "frames.npy", mode="w+", dtype=np.float16, shape=shape
                )
                pooled = np.empty((len(keys), vectors.shape[1]), np.float32)
            rows = batch["row"].to_numpy()
            frames[rows] = features.numpy().astype(np.float16)
            pooled[rows] = vectors
        frames.flush()
        np.save(tmp / "pooled.npy", pooled)
        keys.to_parquet(tmp / "keys.parquet", index=False)
        files.to_parquet(tmp / "files.parquet", index=False)
    return {
        "files": len(files),
        "embedded_files": int((files["windows"] > 0).sum()),
        "skipped_not_audio": skipped,
        "windows": len(keys),
        "dim": int(pooled.shape[1]),
    }
