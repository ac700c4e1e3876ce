"""Stage `resample`: every MusicNet WAV from 44.1 kHz to 16 kHz with soxr, streamed in blocks.

Output folder (read by `index`, memory-mapped by training)::

    <audio16k>/<id>.npy             1-D array, `resample.dtype` (float32, or int16 scaled by 32767)
    <audio16k>/labels/<id>.parquet  MusicNet label columns, start/end re-timed to 16 kHz samples
    <audio16k>/manifest.parquet     one row per track: metadata columns, split, samples (16 kHz),
                                    source_samples (44.1 kHz), subtype (the WAV's, e.g. FLOAT),
                                    digest (BLAKE2b of the 16 kHz samples: what pretraining's
                                    checkpoint key reads, so other audio is never resumed),
                                    and recordings.csv's columns where the corpus has one
"""

from __future__ import annotations

import hashlib
import os
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from jtm.atomic import atomic_dir
from jtm.config import ResampleConfig
from jtm.corpus import pcm
from jtm.errors import DataError
from jtm.musicnet import layout
from jtm.progress import progress


def resample_file(wav: Path, out: Path, cfg: ResampleConfig) -> tuple[int, int, str, str]:
    """Resample one checked WAV into `out` (.npy) in bounded memory.

    Returns (source samples, output samples, WAV subtype, BLAKE2b digest of the samples written).
    """
    info = layout.check_wav(wav)
    n_out = round(info.frames * cfg.sample_rate / info.samplerate)
    block = max(1, int(cfg.block_seconds * info.samplerate))
    dtype = np.dtype(cfg.dtype)
    stream = soxr.ResampleStream(info.samplerate, cfg.sample_rate, 1, dtype="float32", quality=cfg.quality)
    read = written = 0
    digest = hashlib.blake2b(digest_size=16)
    # Sequential buffered writes after a .npy header: no memory map, no page faults, no msync.
    with open(out, "wb") as handle, sf.SoundFile(str(wav)) as audio:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n_out,)}
        np.lib.format.write_array_header_1_0(handle, header)
        try:
            while True:
                chunk = audio.read(block, dtype="float32")
                bad = layout.first_non_finite(chunk)
                if bad is not None:
                    raise layout.non_finite_error(wav, read + bad, info.samplerate, float(chunk[bad]))
                read += len(chunk)
                last = read >= info.frames or len(chunk) == 0
                resampled = stream.resample_chunk(chunk, last=last)
                if written + len(resampled) > n_out:
                    raise DataError(wav, f"resampler produced more than the expected {n_out} samples")
                if dtype == np.int16:
                    resampled = pcm.to_int16(resampled)
                resampled.tofile(handle)
                digest.update(resampled.tobytes())
                written += len(resampled)
                if last:
                    break
        except sf.LibsndfileError as err:
            raise DataError(wav, f"unreadable audio: {err}") from err
    if read != info.frames or written != n_out:
        raise DataError(
            wav, f"read {read} of {info.frames} samples, wrote {written} of {n_out}: file is damaged"
        )
    return info.frames, n_out, info.subtype, digest.hexdigest()


def retime_labels(labels: pd.DataFrame, source_rate: int, target_rate: int) -> pd.DataFrame:
    """Labels with start/end sample indices moved from `source_rate` to `target_rate`."""
    scale = target_rate / source_rate
    out = labels.copy()
    for column in ("start_time", "end_time"):
        out[column] = np.round(labels[column].to_numpy() * scale).astype(np.int64)
    return out


def _resample_track(args: tuple[layout.TrackFiles, Path, ResampleConfig]) -> dict:
    track, out, cfg = args
    source_samples, samples, subtype, digest = resample_file(track.wav, out / f"{track.id}.npy", cfg)
    labels = layout.read_labels(track.labels, n_samples=source_samples)
    retimed = retime_labels(labels, layout.SAMPLE_RATE, cfg.sample_rate)
    retimed.to_parquet(out / "labels" / f"{track.id}.parquet", index=False)
    return {
        "id": track.id,
        "split": track.split,
        "samples": samples,
        "source_samples": source_samples,
        "subtype": subtype,
        "digest": digest,
    }


def resample_corpus(raw: str | Path, out: str | Path, cfg: ResampleConfig) -> dict:
    """Resample every track of the MusicNet tree at `raw` into `out` (atomically).

    Returns figures for tracking: tracks, hours of audio, seconds taken, x realtime.
    """
    import time

    metadata, tracks = layout.discover(raw)
    began = time.perf_counter()
    with atomic_dir(out) as tmp:
        (tmp / "labels").mkdir()
        tasks = [(track, tmp, cfg) for track in tracks]
        workers = max(1, min(cfg.workers, len(tasks), os.cpu_count() or 1))
        if workers > 1:
            with Pool(workers) as pool:
                rows = list(
                    progress(
                        pool.imap_unordered(_resample_track, tasks),
                        total=len(tasks),
                        desc="resample",
                        unit="tracks",
                    )
                )
        else:
            rows = [_resample_track(task) for task in progress(tasks, desc="resample", unit="tracks")]
        manifest = metadata.merge(pd.DataFrame(rows), on="id", validate="one_to_one").sort_values("id")
        recordings = layout.read_recordings(raw, manifest["id"])
        if recordings is not None:
            manifest = manifest.merge(recordings, on="id", how="left", validate="one_to_one")
        manifest.to_parquet(tmp / "manifest.parquet", index=False)
    elapsed = time.perf_counter() - began
    hours = float(manifest["source_samples"].sum()) / layout.SAMPLE_RATE / 3600
    return {"tracks": len(manifest), "hours": hours, "seconds": elapsed, "x_realtime": hours * 3600 / elapsed}
