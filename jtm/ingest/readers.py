"""Open any audio file and read it in blocks: libsndfile (soundfile) for what it reads, FFmpeg
(PyAV) for the rest (AAC/M4A, WMA, Opus in WebM/Matroska, a video's first audio stream, ...).

libsndfile first: on the same files (benchmarks/bench_decode.py) it decoded WAV, FLAC and MP3
faster than FFmpeg and gives the samples the project's manifests were built from; FFmpeg's
samples agree with it to float rounding where both read a file. PyAV is the maintained binding
whose wheels bundle FFmpeg's libraries: nothing to install beside pip.

`open_audio(path)` -> a `Reader` (what the header says, and `blocks(frames)`: float32 arrays
(n, channels), at most `frames` long, in order), or `NotAudio` with a reason a person reads
("not an audio file", "damaged or cut off", "no audio stream"). A decoder failure mid-file is
a `DecodeError` saying where it happened. FFmpeg skips a damaged packet and goes on, as players
do; the Reader's `damage` lists where (seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from jtm.ingest.headers import UNKNOWN_SIZES, container_kind, data_size_note, mp3_states_length, read_head

ESTIMATED = "Estimating duration from bitrate"  # FFmpeg's log line when a length is a guess
RAW_STREAMS = {"aac", "ac3", "eac3", "dts", "mp2", "amr", "loas", "truehd", "mlp"}  # no length stored


def clock(seconds: float) -> str:
    """For people: 83.4 -> "1:23.4"."""
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"


class NotAudio(Exception):
    """The file holds nothing to decode: the message is the reason."""


class DecodeError(Exception):
    """The decoder failed `seconds` into the file."""

    def __init__(self, seconds: float, message: str):
        super().__init__(f"decoder error at {clock(seconds)}: {message}")
        self.seconds = seconds


@dataclass(frozen=True)
class Reader:
    """An opened file: `decoder` (libsndfile | ffmpeg), container `format` and codec `subtype`
    (libsndfile's names, or FFmpeg's upper-cased), `rate` (Hz), `channels`, `announced`: the
    frames its header announces (0 where it says nothing), and `exact`: whether the header
    states that length (False: an estimate from the bitrate, or an "unknown size" header)."""

    path: str
    decoder: str
    format: str
    subtype: str
    rate: int
    channels: int
    announced: int
    exact: bool = True
    damage: list[float] = field(default_factory=list, compare=False)  # FFmpeg: skipped packets, s

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """The samples, float32 (n, channels) blocks of at most `frames` frames."""
        if self.decoder == "libsndfile":
            yield from _sndfile_blocks(self.path, frames, self.rate)
        else:
            yield from _ffmpeg_blocks(self, frames)


def open_audio(path: str, decoder: str = "") -> Reader:
    """The file's Reader: libsndfile's if it reads the file, FFmpeg's otherwise; `decoder`
    "ffmpeg" asks for FFmpeg's whatever the file (benchmarks/bench_decode.py compares them)."""
    if decoder == "ffmpeg":
        return ffmpeg_reader(path)
    try:
        info = sf.info(path)
    except (RuntimeError, OSError, sf.LibsndfileError):
        return ffmpeg_reader(path)
    announced, exact = info.frames, True
    if note := data_size_note(info.extra_info):
        declared, present = note
        if declared in UNKNOWN_SIZES:
            exact = False
        elif declared > present:  # a cut-off file: libsndfile reads what is there
            announced = round(info.frames * declared / present)
    if info.format == "MP3":
        exact = mp3_states_length(path)
    return Reader(path, "libsndfile", info.format, info.subtype or "", info.samplerate, info.channels,
                  announced, exact)  # fmt: skip


def _sndfile_blocks(path: str, frames: int, rate: int) -> Iterator[np.ndarray]:
    done = 0
    with sf.SoundFile(path) as audio:
        while True:
            try:
                chunk = audio.read(frames, dtype="float32", always_2d=True)
            except (RuntimeError, sf.LibsndfileError) as err:
                raise DecodeError(_failing_frame(path, done, frames) / rate, str(err).strip()) from err
            if not len(chunk):
                return
            done += len(chunk)
            yield chunk


def _failing_frame(path: str, start: int, frames: int, step: int = 1024) -> int:
    """Where in [start, start + frames) libsndfile fails, to `step` frames (read again, small)."""
    begin = start
    try:
        with sf.SoundFile(path) as audio:
            audio.seek(start)
            for begin in range(start, start + frames, step):
                if not len(audio.read(step, dtype="float32")):
                    return begin
    except (RuntimeError, sf.LibsndfileError):
        return begin
    return start


def ffmpeg_reader(path: str) -> Reader:
    """FFmpeg's Reader for `path`; NotAudio says why when it holds no audio to decode."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, UnicodeDecodeError) as err:
        raise NotAudio(_unopened(path, err)) from err
    with container:
        if not container.streams.audio:
            raise NotAudio(_no_audio(path, container))
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
        exact = not (set(names) & RAW_STREAMS) and stream.duration is not None
        if "mp3" in names:
            exact = mp3_states_length(path)
        codec = stream.codec_context.name
        return Reader(path, "ffmpeg", container_name.upper(), codec.upper(), rate, channels,
                      round(seconds * rate), exact)  # fmt: skip


def _unopened(path: str, err: Exception) -> str:
    """Why neither decoder opens a file: damaged if it starts like an audio container."""
    kind = container_kind(read_head(path, 16))
    if kind:
        said = _said(err)
        return f"damaged or cut off: it begins as {kind} does, but no decoder opens it ({said})"
    return f"not an audio file (neither libsndfile nor FFmpeg reads it: {_said(err)})"


def _no_audio(path: str, container) -> str:
    """Why a file FFmpeg opens holds no audio: an image under an audio name, or a silent video."""
    kinds = sorted({s.type for s in container.streams}) or ["none"]
    name = container.format.name
    if name.endswith("_pipe") or name in ("image2", "gif", "webp"):
        image = name.removesuffix("_pipe").upper()
        return f"not an audio file: a {image} image named {Path(path).suffix or 'without an extension'}"
    return f"no audio stream (streams: {', '.join(kinds)})"


def _ffmpeg_blocks(reader: Reader, frames: int) -> Iterator[np.ndarray]:
    """FFmpeg's decoded frames, converted to float32 planar at the stream's own rate and layout,
    regrouped into blocks of `frames` (memory bounded by the block, not the file). A packet the
    codec cannot decode is skipped (its time goes to `reader.damage`); a container that cannot
    be read on raises DecodeError."""
    import av

    pending, held, decoded = [], 0, 0
    with av.open(reader.path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")  # float32, planar; rate and layout kept
        try:
            for packet in container.demux(stream):
                try:
                    decoded_frames = packet.decode()
                except av.InvalidDataError:
                    reader.damage.append(decoded / reader.rate)
                    continue
                for frame in decoded_frames:
                    for converted in resampler.resample(frame):
                        part = converted.to_ndarray().T  # (n, channels)
                        pending.append(part)
                        held, decoded = held + len(part), decoded + len(part)
                        while held >= frames:
                            block = np.concatenate(pending)
                            yield np.ascontiguousarray(block[:frames])
                            pending, held = [block[frames:]], held - frames
        except av.FFmpegError as err:
            raise DecodeError(decoded / reader.rate, _said(err)) from err
    if held:
        yield np.concatenate(pending)


def _said(err: Exception) -> str:
    """FFmpeg's message without the file name PyAV appends (the caller names the file)."""
    text = getattr(err, "strerror", None) or str(err)
    return str(text).split(": '")[0]
