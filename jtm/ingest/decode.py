"""One file -> mono samples at the target rate, streamed: memory stays bounded whatever its length.

Decoding is libsndfile's, or FFmpeg's for what libsndfile cannot read (jtm/ingest/readers.py);
resampling is soxr's, as in stage `resample`; channels are averaged to mono. A file that cannot
be used is not an exception but a `Decoded` with status `error` (not audio, no audio stream, a
decoder error, zero-length, truncated, non-finite samples) or `short` (under one window): a
1 000-hour ingest must not stop for one bad file.

A header's announced length is not the decoder's: Ogg's last granule position, MP3's Xing/LAME
frame count and AAC's priming and padding commonly announce a few thousand frames more than
decode. A shortfall up to `SHORTFALL_FRAMES` is that bookkeeping, not damage: the file is
ingested with both counts kept; a larger one is a truncated file.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from jtm.corpus import pcm
from jtm.ingest.fingerprint import Fingerprint
from jtm.ingest.readers import DecodeError, NotAudio, Reader, open_audio

# Two of the largest codec blocks (Vorbis: 8 192 samples; MP3 1 152, AAC 1 024): 0.37 s at 44.1 kHz.
SHORTFALL_FRAMES = 16_384


@dataclass(frozen=True)
class Target:
    """What every file becomes: `rate` Hz mono `dtype` samples, resampled at soxr `quality`,
    decoded `block_seconds` at a time; files under `min_samples` (one window) are skipped. `hop`:
    samples between the windows pretraining draws (the index's, as for MusicNet)."""

    rate: int
    quality: str
    dtype: str
    block_seconds: float
    min_samples: int
    hop: int


@dataclass(frozen=True)
class Decoded:
    """A file's fate: status `ok` (its samples in a raw file), `short` or `error` (`reason` says
    why), with what its decoder said of it (`decoder`: libsndfile | ffmpeg; format, subtype,
    rate, channels, the frames its header announces) and what decoded (`decoded_frames`, at its
    own rate) and, when ok, the Chromaprint fingerprint of its 16 kHz samples (the leakage guard)."""

    sha256: str
    status: str
    reason: str = ""
    format: str = ""
    subtype: str = ""
    source_rate: int = 0
    channels: int = 0
    source_frames: int = 0
    decoded_frames: int = 0
    decoder: str = ""
    samples: int = 0
    fingerprint: tuple[int, ...] = ()


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes: the same recording under two names is ingested once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _quantise(samples: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "int16":
        return pcm.to_int16(samples)
    return samples.astype(np.float32, copy=False)


def _stream(reader: Reader, handle, target: Target, printer: Fingerprint | None) -> tuple[int, int, str]:
    """Decode, downmix, resample, fingerprint and write raw samples to `handle`: (frames read,
    samples written, reason the file is unusable or ""). A decoder error raises DecodeError."""
    resampler = None
    if reader.rate != target.rate:
        resampler = soxr.ResampleStream(reader.rate, target.rate, 1, dtype="float32", quality=target.quality)
    block = max(1, int(target.block_seconds * reader.rate))
    read = written = 0
    for chunk in itertools.chain(reader.blocks(block), [np.zeros((0, reader.channels), np.float32)]):
        mono = chunk.mean(axis=1, dtype=np.float32) if chunk.shape[1] > 1 else chunk[:, 0]
        bad = np.flatnonzero(~np.isfinite(mono))
        if len(bad):
            where = (read + int(bad[0])) / reader.rate
            return read, written, f"non-finite sample ({mono[bad[0]]}) at {where:.3f} s"
        read += len(mono)
        out = mono if resampler is None else resampler.resample_chunk(mono, last=len(mono) == 0)
        if printer is not None:
            printer.add(out)
        _quantise(out, target.dtype).tofile(handle)
        written += len(out)
    return read, written, ""


def _truncation(extra: str) -> str:
    """libsndfile's own note that the audio chunk is shorter than its header says (a cut-off
    WAV, AIFF, W64: libsndfile then quietly reads what is there); "" when it has none."""
    notes = re.findall(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", extra, re.M)
    for declared, present in notes:
        if int(present) < int(declared):
            return f"truncated: its header announces {declared} bytes of audio, the file holds {present}"
    return ""


def decode_file(path: str, out: Path, target: Target, fingerprint: bool = True, decoder: str = "") -> Decoded:
    """Decode `path` into raw `target.dtype` samples at `out` (written beside it, then renamed;
    removed unless the status is `ok`); with its fingerprint unless `fingerprint` is False;
    `decoder` "ffmpeg" forces FFmpeg (jtm/ingest/readers.py's `open_audio`)."""
    sha = content_hash(path)
    if os.path.getsize(path) == 0:
        return Decoded(sha, "error", "empty file: 0 bytes")
    try:
        reader = open_audio(path, decoder)
    except NotAudio as err:
        return Decoded(sha, "error", str(err))
    about = dict(
        format=reader.format, subtype=reader.subtype, source_rate=reader.rate, channels=reader.channels,
        source_frames=reader.announced, decoder=reader.decoder,
    )  # fmt: skip
    if reader.decoder == "libsndfile" and reader.announced <= 0:
        return Decoded(sha, "error", "zero-length audio: no samples", **about)
    if truncated := _truncation(reader.extra):
        return Decoded(sha, "error", truncated, **about)
    partial = out.with_name(out.name + ".partial")
    printer = Fingerprint(target.rate) if fingerprint else None
    try:
        with open(partial, "wb") as handle:
            read, written, reason = _stream(reader, handle, target, printer)
    except (DecodeError, RuntimeError, OSError) as err:  # libsndfile's errors are RuntimeErrors
        partial.unlink(missing_ok=True)
        said = str(err) if isinstance(err, DecodeError) else f"decoder error after the header: {err}"
        return Decoded(sha, "error", said, **about)
    about["decoded_frames"] = read
    if not reason and read == 0:
        reason = "zero-length audio: no samples"
    if not reason and reader.announced - read > SHORTFALL_FRAMES:
        reason = f"truncated: {read} of the {reader.announced} frames its header announces decode"
    if reason or written < target.min_samples:
        partial.unlink(missing_ok=True)
        if reason:
            return Decoded(sha, "error", reason, **about)
        seconds = written / target.rate
        return Decoded(sha, "short", f"{seconds:.2f} s: shorter than one window", **about)
    os.replace(partial, out)
    prints = tuple(printer.finish().tolist()) if printer is not None else ()
    return Decoded(sha, "ok", **about, samples=written, fingerprint=prints)
