"""One file -> mono samples at the target rate, streamed: memory stays bounded whatever its length.

Decoding is libsndfile's, or FFmpeg's for what libsndfile cannot read (jtm/ingest/readers.py);
resampling is soxr's, as in stage `resample`; channels are averaged to mono. A file that cannot
be used is not an exception but a `Decoded` with status `error` (not audio, no audio stream, a
decoder error, zero-length, truncated, non-finite samples) or `short` (under one window): a
1 000-hour ingest must not stop for one bad file.

A header's announced length is not the decoder's: Ogg's last granule position, MP3's Xing/LAME
frame count and AAC's priming and padding commonly announce a few thousand frames more than
decode. A shortfall up to `SHORTFALL_FRAMES` is that bookkeeping, not damage: the file is
ingested with both counts kept; a larger one is a truncated file. Only a length the header
states counts: raw ADTS AAC, an MP3 without a Xing/Info frame and a WAV written to a pipe
announce a guess (jtm/ingest/headers.py), and such a file is ingested for what decodes.

What libsndfile stops decoding part-way (an Ogg Opus page whose granule position jumps, a FLAC
frame that lost sync) is decoded again by FFmpeg, which skips a damaged packet as a player
does; the file's `notes` say so.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soxr

from jtm.corpus import pcm
from jtm.ingest.fingerprint import Fingerprint
from jtm.ingest.noise import Noise, captured
from jtm.ingest.readers import ESTIMATED, DecodeError, NotAudio, Reader, clock, ffmpeg_reader, open_audio

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
    rate, channels, the frames its header announces and whether it states them or guesses:
    `length_known`) and what decoded (`decoded_frames`, at its own rate), what the decoders
    said on the way (`notes`: a retry, skipped packets, their own lines) and, when ok, the
    Chromaprint fingerprint of its 16 kHz samples (the leakage guard)."""

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
    length_known: bool = True
    notes: str = ""


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
            return read, written, f"non-finite sample ({mono[bad[0]]}) at {clock(where)}"
        read += len(mono)
        out = mono if resampler is None else resampler.resample_chunk(mono, last=len(mono) == 0)
        if printer is not None:
            printer.add(out)
        _quantise(out, target.dtype).tofile(handle)
        written += len(out)
    return read, written, ""


def _open(path: str, decoder: str, noise: Noise) -> Reader:
    """libsndfile's Reader, or FFmpeg's where libsndfile finds no samples (a FLAC or WAV whose
    header leaves the length 0) or `decoder` asks for it; NotAudio when neither reads it."""
    reader = open_audio(path, decoder)
    if reader.decoder == "libsndfile" and reader.announced <= 0:
        reader = ffmpeg_reader(path)
    if noise.said(ESTIMATED):  # FFmpeg guessed the length from the bitrate
        reader = replace(reader, exact=False)
    return reader


def _attempt(reader: Reader, partial: Path, target: Target, fingerprint: bool) -> tuple[int, int, str, tuple]:
    """Decode `reader` into `partial`: (frames read, samples written, reason or "", fingerprint)."""
    printer = Fingerprint(target.rate) if fingerprint else None
    with open(partial, "wb") as handle:
        read, written, reason = _stream(reader, handle, target, printer)
    if not reason and read == 0:
        reason = "zero-length audio: no samples"
    if not reason and reader.exact and reader.announced - read > SHORTFALL_FRAMES:
        reason = (
            f"truncated: {clock(read / reader.rate)} of the {clock(reader.announced / reader.rate)} "
            f"its header announces decode ({read} of {reader.announced} frames)"
        )
    prints = tuple(printer.finish().tolist()) if printer is not None and not reason else ()
    return read, written, reason, prints


def _about(reader: Reader) -> dict:
    return dict(
        format=reader.format, subtype=reader.subtype, source_rate=reader.rate, channels=reader.channels,
        source_frames=reader.announced, length_known=reader.exact, decoder=reader.decoder,
    )  # fmt: skip


def decode_file(path: str, out: Path, target: Target, fingerprint: bool = True, decoder: str = "") -> Decoded:
    """Decode `path` into raw `target.dtype` samples at `out` (written beside it, then renamed;
    removed unless the status is `ok`); with its fingerprint unless `fingerprint` is False;
    `decoder` "ffmpeg" forces FFmpeg (jtm/ingest/readers.py's `open_audio`). What libsndfile
    cannot decode to the end is decoded again by FFmpeg; what the decoders printed is the
    file's `notes` (and part of its reason when rejected)."""
    sha = content_hash(path)
    if os.path.getsize(path) == 0:
        return Decoded(sha, "error", "empty file: 0 bytes")
    partial = out.with_name(out.name + ".partial")
    with captured() as noise:
        decoded = _decode(path, sha, partial, target, fingerprint, decoder, noise)
    notes = "; ".join(part for part in (decoded.notes, noise.summary()) if part)
    decoded = replace(decoded, notes=notes)
    if decoded.status != "ok":
        partial.unlink(missing_ok=True)
        if decoded.status == "error" and noise.lines():
            decoded = replace(decoded, reason=f"{decoded.reason} (decoder said: {noise.summary()})")
        return decoded
    os.replace(partial, out)
    return decoded


def _decode(
    path: str, sha: str, partial: Path, target: Target, fingerprint: bool, decoder: str, noise: Noise
) -> Decoded:
    """decode_file's work, inside the capture of the decoders' noise."""
    try:
        reader = _open(path, decoder, noise)
    except NotAudio as err:
        return Decoded(sha, "error", str(err))
    notes = ""
    try:
        read, written, reason, prints = _attempt(reader, partial, target, fingerprint)
    except (DecodeError, RuntimeError, OSError) as err:  # libsndfile's own errors are RuntimeErrors
        if reader.decoder != "libsndfile":
            return Decoded(sha, "error", str(err), **_about(reader))
        try:  # libsndfile stops where players go on (Ogg Opus with a granule jump, ...): FFmpeg
            reader = replace(ffmpeg_reader(path), format=reader.format, subtype=reader.subtype)
            read, written, reason, prints = _attempt(reader, partial, target, fingerprint)
        except (NotAudio, DecodeError, RuntimeError, OSError) as second:
            return Decoded(sha, "error", f"{err} (FFmpeg as well: {second})", **_about(reader))
        notes = f"libsndfile: {err}; FFmpeg decoded it"
    if reader.damage:
        notes = "; ".join(filter(None, [notes, _damage(reader.damage)]))
    about = _about(reader) | {"decoded_frames": read, "notes": notes}
    if reason:
        return Decoded(sha, "error", reason, **about)
    if written < target.min_samples:
        return Decoded(sha, "short", f"{clock(written / target.rate)}: shorter than one window", **about)
    return Decoded(sha, "ok", **about, samples=written, fingerprint=prints)


def _damage(seconds: list[float]) -> str:
    """ "FFmpeg skipped 2 damaged packets (at 0:10.2, 0:10.3)": where a player would glitch."""
    at = ", ".join(clock(s) for s in seconds[:5]) + (", ..." if len(seconds) > 5 else "")
    return f"FFmpeg skipped {len(seconds)} damaged packet{'s' * (len(seconds) > 1)} (at {at})"
