"""What a file's first bytes say, before any decoder: is it an audio container at all, does an
MP3 state its length, does a WAV/AIFF header state its data size.

Why: a length is only a reason to reject a file when the header states it. Raw ADTS AAC and an
MP3 without a Xing/Info/VBRI frame state none: their "length" is the file size over the first
frame's bitrate (cover art's bytes counted as audio), so a shortfall there is no truncation. A
WAV written to a pipe cannot seek back to fill in its sizes and leaves 0xFFFFFFFF ("unknown")
or 0 in them.
"""

from __future__ import annotations

import re

# Leading bytes (at offset 0 unless given) of the containers music comes in.
SIGNATURES = {
    "WAV": [b"RIFF", b"RF64", b"BW64"], "AIFF": [b"FORM"], "FLAC": [b"fLaC"], "Ogg": [b"OggS"],
    "MP3": [b"ID3", b"\xff\xfb", b"\xff\xfa", b"\xff\xf3", b"\xff\xf2", b"\xff\xe3"],
    "ADTS AAC": [b"\xff\xf1", b"\xff\xf9"], "Matroska/WebM": [b"\x1a\x45\xdf\xa3"],
    "ASF (WMA)": [b"\x30\x26\xb2\x75"], "APE": [b"MAC "], "WavPack": [b"wvpk"], "CAF": [b"caff"],
}  # fmt: skip
MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")  # at offset 4
UNKNOWN_SIZES = (0xFFFFFFFF, 0)  # what a writer that could not seek back leaves


def container_kind(head: bytes) -> str:
    """The audio container `head` (a file's first bytes) starts like, or "" for none."""
    if head[4:8] in MP4_BOXES:
        return "MP4/M4A"
    return next((kind for kind, marks in SIGNATURES.items() if any(head.startswith(m) for m in marks)), "")


def read_head(path: str, size: int = 64 * 1024) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


def _id3_size(head: bytes) -> int:
    """Bytes an ID3v2 tag (cover art included) takes at the start, 0 without one."""
    if not head.startswith(b"ID3") or len(head) < 10:
        return 0
    syncsafe = head[6:10]
    size = (syncsafe[0] << 21) | (syncsafe[1] << 14) | (syncsafe[2] << 7) | syncsafe[3]
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def mp3_states_length(path: str) -> bool:
    """Whether an MP3's first frame is a Xing, Info or VBRI frame (its exact frame count),
    past any ID3v2 tag, however large its cover art."""
    with open(path, "rb") as handle:
        start = _id3_size(handle.read(10))
        handle.seek(start)
        head = handle.read(8192)
    sync = next((i for i in range(len(head) - 1) if head[i] == 0xFF and head[i + 1] & 0xE0 == 0xE0), -1)
    if sync < 0:
        return False
    frame = head[sync : sync + 200]  # the tag sits 13-36 bytes into the first frame
    return any(mark in frame for mark in (b"Xing", b"Info", b"VBRI"))


def data_size_note(extra: str) -> tuple[int, int] | None:
    """libsndfile's note on a WAV/AIFF/W64 whose audio chunk is not the size its header says:
    (bytes declared, bytes present), or None when the sizes agree."""
    for declared, present in re.findall(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", extra, re.M):
        if int(present) != int(declared):
            return int(declared), int(present)
    return None
