"""Ingest's decoding per format: libsndfile (soundfile) and FFmpeg (PyAV) side by side.

Why jtm reads with libsndfile first and FFmpeg for the rest (jtm/ingest/readers.py): on the
formats both read, which is faster, and do they give the same samples? For each format, one
minute of 44.1 kHz stereo (two tones and noise) is written, then ingested by `decode_file`
(decode, downmix, soxr VHQ to 16 kHz, raw float32 out; no fingerprint) with each decoder that
reads it, in this one process (one core): × realtime, best of `--repeats`, and the largest
difference between the two decoders' 16 kHz samples.

    python benchmarks/bench_decode.py [--seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jtm.ingest.decode import Target, decode_file  # noqa: E402
from tests.realworld import encode  # noqa: E402

RATE = 44_100
# name: how it is written (libsndfile's format/subtype, or FFmpeg's codec and options)
FORMATS = {
    "wav": ("sndfile", "WAV", "PCM_16"),
    "flac": ("sndfile", "FLAC", "PCM_16"),
    "ogg": ("sndfile", "OGG", "VORBIS"),
    "mp3": ("sndfile", "MP3", "MPEG_LAYER_III"),
    "m4a": ("ffmpeg", "aac", {}),
    "wma": ("ffmpeg", "wmav2", {"fmt": "asf"}),
    "webm": ("ffmpeg", "libopus", {}),
}


def write(path: Path, seconds: float) -> None:
    """Two tones and a little noise (libsndfile's formats written in blocks: its Vorbis writer
    can crash on one large write); FFmpeg's formats by tests/realworld.py's encoder."""
    how = FORMATS[path.suffix[1:]]
    if how[0] == "ffmpeg":
        rate = 48_000 if how[1] == "libopus" else RATE
        encode(path, how[1], rate, 2, seconds, **how[2])
        return
    t = np.arange(int(seconds * RATE)) / RATE
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t) + noise, 0.2 * np.sin(2 * np.pi * 660 * t)], 1)
    with sf.SoundFile(path, "w", RATE, 2, format=how[1], subtype=how[2]) as out:
        for i in range(0, len(audio), 8192):
            out.write(audio[i : i + 8192].astype(np.float32))


def ingest_one(path: Path, out: Path, decoder: str, repeats: int) -> tuple[float, np.ndarray]:
    """(best seconds, the 16 kHz samples) of `decode_file` with `decoder` ("" = libsndfile first)."""
    target = Target(16_000, "VHQ", "float32", 10.0, 20_480, 20_480)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        decoded = decode_file(str(path), out, target, fingerprint=False, decoder=decoder)
        best = min(best, time.perf_counter() - began)
        assert decoded.status == "ok", (path, decoded.reason)
    return best, np.fromfile(out, np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"decode + downmix + soxr VHQ to 16 kHz, one core, {args.seconds:.0f} s of stereo per file")
    columns = f"{'libsndfile x rt':>15s} {'FFmpeg x rt':>12s} {'FFmpeg / libsndfile':>19s}"
    print(f"{'format':7s} {columns} {'max |diff|':>10s}")
    with tempfile.TemporaryDirectory() as folder:
        for extension, how in FORMATS.items():
            path, out = Path(folder) / f"music.{extension}", Path(folder) / "out.raw"
            write(path, args.seconds)
            ff_s, ff = ingest_one(path, out, "ffmpeg", args.repeats)
            if how[0] == "ffmpeg":
                print(f"{extension:7s} {'(cannot)':>15s} {args.seconds / ff_s:12.0f}")
                continue
            lsf_s, lsf = ingest_one(path, out, "", args.repeats)
            n = min(len(lsf), len(ff))
            diff = float(np.abs(lsf[:n] - ff[:n]).max())
            speeds = f"{args.seconds / lsf_s:15.0f} {args.seconds / ff_s:12.0f} {lsf_s / ff_s:19.2f}"
            print(f"{extension:7s} {speeds} {diff:10.2e}")


if __name__ == "__main__":
    main()
