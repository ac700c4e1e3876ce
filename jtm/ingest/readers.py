"""Open any audio file and read it in blocks: libsndfile (soundfile) for what it reads, FFmpeg
(PyAV) for the rest (AAC/M4A, WMA, Opus in WebM/Matroska, a video's first audio stream, ...).

libsndfile first: on the same files (benchmarks/bench_decode.py) it decoded WAV, FLAC and MP3
faster than FFmpeg and gives the samples the project's manifests were built from; FFmpeg's
samples agree with it to float rounding where both read a file. PyAV is the maintained binding
whose wheels bundle FFmpeg's libraries: nothing to install beside pip.

`open_audio(path)` -> a `Reader` (what the header says, and `blocks(frames)`: float32 arrays
(n, channels), at most `frames` long, in order), or `NotAudio` with a reason a person reads
("not an audio file", "no audio stream"). A decoder failure mid-file is a `DecodeError` giving
where it happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


class NotAudio(Exception):
    """The file holds nothing to decode: the message is the reason."""


class DecodeError(Exception):
    """The decoder failed `seconds` into the file."""

    def __init__(self, seconds: float, message: str):
        super().__init__(f"decoder error at {int(seconds // 60)}:{int(seconds % 60):02d}: {message}")
        self.seconds = seconds


@dataclass(frozen=True)
class Reader:
    """An opened file: `decoder` (libsndfile | ffmpeg), container `format` and codec `subtype`
    (libsndfile's names, or FFmpeg's upper-cased), `rate` (Hz), `channels`, and `announced`:
    the frames its header announces (0 where it says nothing)."""

    path: str
    decoder: str
    format: str
    subtype: str
    rate: int
    channels: int
    announced: int
    extra: str = ""  # libsndfile's own notes on the file (its truncation check reads them)

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """The samples, float32 (n, channels) blocks of at most `frames` frames."""
        if self.decoder == "libsndfile":
            yield from _sndfile_blocks(self.path, frames)
        else:
            yield from _ffmpeg_blocks(self.path, frames, self.rate)


def open_audio(path: str, decoder: str = "") -> Reader:
    """The file's Reader: libsndfile's if it reads the file, FFmpeg's otherwise; `decoder`
    "ffmpeg" asks for FFmpeg's whatever the file (benchmarks/bench_decode.py compares them)."""
    if decoder == "ffmpeg":
        return _ffmpeg_reader(path)
    try:
        info = sf.info(path)
    except (RuntimeError, OSError, sf.LibsndfileError):
        return _ffmpeg_reader(path)
    subtype = info.subtype or ""
    return Reader(path, "libsndfile", info.format, subtype, info.samplerate, info.channels, info.frames,
                  info.extra_info)  # fmt: skip


def _sndfile_blocks(path: str, frames: int) -> Iterator[np.ndarray]:
    with sf.SoundFile(path) as audio:
        while len(chunk := audio.read(frames, dtype="float32", always_2d=True)):
            yield chunk


def _ffmpeg_reader(path: str) -> Reader:
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise NotAudio(f"not an audio file (neither libsndfile nor FFmpeg reads it: {_said(err)})") from err
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise NotAudio(f"no audio stream (streams: {', '.join(kinds)})")
        stream = container.streams.audio[0]
        rate, channels = stream.rate or stream.codec_context.sample_rate, stream.codec_context.channels
        if not rate or not channels:
            raise NotAudio("not an audio file (FFmpeg finds no decodable audio stream in it)")
        if stream.duration:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = (container.duration or 0) / 1e6  # AV_TIME_BASE: microseconds
        names = container.format.name.split(",")
        suffix = Path(path).suffix.lower().lstrip(".")
        container_name = suffix if suffix in names else names[0]
        codec = stream.codec_context.name
        return Reader(
            path, "ffmpeg", container_name.upper(), codec.upper(), rate, channels, round(seconds * rate)
        )


def _ffmpeg_blocks(path: str, frames: int, rate: int) -> Iterator[np.ndarray]:
    """FFmpeg's decoded frames, converted to float32 planar at the stream's own rate and layout,
    regrouped into blocks of `frames` (memory bounded by the block, not the file)."""
    import av

    pending, held, decoded = [], 0, 0
    with av.open(path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")  # float32, planar; rate and layout kept
        try:
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    part = converted.to_ndarray().T  # (n, channels)
                    pending.append(part)
                    held, decoded = held + len(part), decoded + len(part)
                    while held >= frames:
                        block = np.concatenate(pending)
                        yield np.ascontiguousarray(block[:frames])
                        pending, held = [block[frames:]], held - frames
        except av.FFmpegError as err:
            raise DecodeError(decoded / rate, _said(err)) from err
    if held:
        yield np.concatenate(pending)


def _said(err: Exception) -> str:
    """FFmpeg's message without the file name PyAV appends (the caller names the file)."""
    text = getattr(err, "strerror", None) or str(err)
    return str(text).split(": '")[0]
