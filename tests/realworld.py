"""Audio files as real music libraries hold them, written by the tests: FFmpeg formats (through
PyAV's bundled encoders), a video with an audio track, and an Ogg Vorbis file whose last page
announces more samples than decode (as encoders' headers commonly do)."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np


def tones(rate: int, seconds: float, channels: int) -> np.ndarray:
    """(channels, n) float32: 440 Hz on the first channel (louder), 660 Hz on the second."""
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)])[
        :channels
    ].astype(np.float32)


def encode(path: Path, codec: str, rate: int, channels: int = 2, seconds: float = 2.0, **options) -> None:
    """Write `path` with FFmpeg's `codec` (container from the extension, or `fmt`); `video`: a
    small MPEG-4 video stream beside the audio; `audio=False`: the video alone; `muxer`: the
    container's options (e.g. {"write_xing": "0"}: an MP3 without its Xing header)."""
    fmt, video, audio = options.get("fmt"), options.get("video", False), options.get("audio", True)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=fmt, options=options.get("muxer", {})) as container:
        picture = container.add_stream("mpeg4", rate=25) if video else None
        stream = container.add_stream(codec, rate=rate, layout=layout) if audio else None
        if picture is not None:
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
            for i in range(int(seconds * 25)):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i % 255, np.uint8), format="rgb24")
                for packet in picture.encode(frame):
                    container.mux(packet)
            for packet in picture.encode(None):
                container.mux(packet)
        if stream is None:
            return
        stream.bit_rate = 128_000
        signal, size = tones(rate, seconds, channels), stream.codec_context.frame_size or 1024
        planar = stream.codec_context.format.name.endswith("p")
        for i in range(0, signal.shape[1], size):
            chunk = signal[:, i : i + size]
            data = np.ascontiguousarray(chunk) if planar else chunk.T.reshape(1, -1).copy()
            frame = av.AudioFrame.from_ndarray(data, format="fltp" if planar else "flt", layout=layout)
            frame.rate, frame.pts = rate, i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial 0x04C11DB7, unreflected, initial 0."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def announce_more(path: Path, extra: int) -> None:
    """Raise the granule position of an Ogg file's last page by `extra` samples (checksum
    mended): its header then announces `extra` more samples than decode."""
    data = bytearray(path.read_bytes())
    start = data.rfind(b"OggS")
    granule = struct.unpack_from("<q", data, start + 6)[0]
    struct.pack_into("<q", data, start + 6, granule + extra)
    struct.pack_into("<I", data, start + 22, 0)
    struct.pack_into("<I", data, start + 22, _ogg_crc(bytes(data[start:])))
    path.write_bytes(bytes(data))


def _ogg_pages(data: bytes) -> list[int]:
    """Where each Ogg page starts."""
    starts, at = [], data.find(b"OggS")
    while at >= 0:
        starts.append(at)
        at = data.find(b"OggS", at + 4)
    return starts


def jump_granule(path: Path, page: int, jump: int) -> None:
    """Add `jump` samples to one Ogg page's granule position (checksum mended), as a file cut
    from a stream with a timestamp discontinuity has: FFmpeg plays on, libsndfile's Opus reader
    stops there ("Supported file format but file is malformed")."""
    data = bytearray(path.read_bytes())
    starts = _ogg_pages(bytes(data)) + [len(data)]
    start, end = starts[page], starts[page + 1]
    granule = struct.unpack_from("<q", data, start + 6)[0]
    struct.pack_into("<q", data, start + 6, granule + jump)
    struct.pack_into("<I", data, start + 22, 0)
    struct.pack_into("<I", data, start + 22, _ogg_crc(bytes(data[start:end])))
    path.write_bytes(bytes(data))


def with_cover_art(path: Path, image: bytes) -> None:
    """Put an ID3v2.3 tag holding `image` as front-cover art (APIC) before the MP3's frames, as
    taggers do."""
    body = b"\x00" + b"image/jpeg\x00" + b"\x03" + b"\x00" + image
    frame = b"APIC" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 127, (size >> 14) & 127, (size >> 7) & 127, size & 127])
    path.write_bytes(b"ID3\x03\x00\x00" + syncsafe + frame + path.read_bytes())


def set_wav_sizes(path: Path, size: int) -> None:
    """Write `size` into a WAV's RIFF and data sizes, as a writer that cannot seek back leaves
    them (0xFFFFFFFF: "unknown"; some write 0)."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, size)
    struct.pack_into("<I", data, data.find(b"data") + 4, size)
    path.write_bytes(bytes(data))
