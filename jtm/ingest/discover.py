"""Which files a corpus holds: every audio file under its folders and glob patterns.

A corpus (params `ingest.corpora`) is a name, a list of folders or glob patterns, and a weight.
Folders are walked recursively; a pattern is expanded with `glob` (`**` recurses). A file is a
candidate when its extension is one libsndfile or FFmpeg reads (a video's too: its first audio
stream counts), or, for an extension neither list names, when FFmpeg finds an audio stream in
it. Cover art, playlists and documents beside the music are not candidates: they are counted by
extension (`Survey.skipped`), so every file under the folders is accounted for. The order is
sorted by path, so shards are the same whatever the file system lists first.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from jtm.errors import ConfigError

# What libsndfile 1.2 reads (soundfile.available_formats(): WAV, FLAC, OGG Vorbis/Opus, MP3,
# AIFF, AU, CAF, W64, RF64, ...), by the extensions those files carry.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .bwf .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64".split()
)
# What FFmpeg reads beyond them: AAC/ALAC in MP4, WMA, Matroska/WebM, video containers, ...
FFMPEG_EXTENSIONS = frozenset(
    ".m4a .m4b .m4p .mp4 .m4v .aac .adts .alac .wma .asf .wmv .webm .mka .mkv .mov .avi .ac3 .eac3 "
    ".dts .wv .ape .tta .mpc .amr .3gp .3g2 .mp2 .mpga .spx .ogv .flv .mpg .mpeg .ts .m2ts".split()
)
# Beside music, never audio: not opened, counted by extension.
NOT_AUDIO = frozenset(
    ".jpg .jpeg .png .gif .bmp .webp .tif .tiff .heic .svg .ico .m3u .m3u8 .pls .cue .xspf .wpl "
    ".txt .md .pdf .nfo .log .lrc .sfv .md5 .ffp .accurip .json .xml .csv .htm .html .doc .docx "
    ".db .ini .url .sh .py .zip .rar .7z .tar .gz".split()
)


@dataclass(frozen=True)
class Corpus:
    name: str
    paths: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class Candidate:
    """One file to ingest: its corpus, path (as found), size in bytes and modification time
    (what a resumed run compares to trust an earlier run's work on it)."""

    corpus: str
    path: str
    bytes: int
    mtime_ns: int


def corpora_from_params(entries) -> list[Corpus]:
    """`ingest.corpora` as Corpus objects; names must be unique (they name shard folders)."""
    corpora = [Corpus(e["name"], tuple(e["paths"]), float(e["weight"])) for e in entries]
    names = [c.name for c in corpora]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"ingest.corpora: names must be unique, repeated: {duplicates}")
    return corpora


@dataclass
class Survey:
    """What the folders of a corpus hold: the candidates, sorted by path, and the files left out
    as not audio, counted by extension ("(none)" for a name without one)."""

    candidates: list[Candidate]
    skipped: Counter = field(default_factory=Counter)


def _extension(path: str) -> str:
    return Path(path).suffix.lower() or "(none)"


def has_audio_stream(path: str) -> bool:
    """Whether FFmpeg opens `path` and finds an audio stream in it (a probe of the header)."""
    import av

    try:
        with av.open(path) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, UnicodeDecodeError, OSError):
        return False


def is_candidate(path: str) -> bool:
    """A known audio or video extension, or (an extension of no list) an audio stream inside."""
    extension = Path(path).suffix.lower()
    if extension in AUDIO_EXTENSIONS or extension in FFMPEG_EXTENSIONS:
        return True
    return extension not in NOT_AUDIO and not Path(path).name.startswith(".") and has_audio_stream(path)


def _expand(pattern: str) -> list[str]:
    """Files under a folder, or matching a glob pattern; [] when nothing matches."""
    if os.path.isdir(pattern):
        return [
            os.path.join(root, name)
            for root, _, names in os.walk(pattern, followlinks=True)
            for name in names
        ]
    return [p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p)]


def survey(corpus: Corpus) -> Survey:
    """Every audio file of `corpus`, sorted by path, each once (patterns may overlap), and the
    other files counted by extension.

    A folder or pattern that matches no audio file is a ConfigError naming it and what it does
    hold: a typo in a path must not silently shrink the pretraining data.
    """
    found: dict[str, Candidate] = {}
    skipped: dict[str, str] = {}  # path -> extension
    for pattern in corpus.paths:
        files = _expand(pattern)
        matches = [p for p in files if p in found or is_candidate(p)]
        if not matches:
            held = Counter(_extension(p) for p in files)
            holds = ", ".join(f"{n} {ext}" for ext, n in held.most_common()) or "no file"
            raise ConfigError(
                f"ingest.corpora: corpus {corpus.name!r}: {pattern!r} holds no audio file ({holds}); "
                "audio is any file libsndfile or FFmpeg decodes"
            )
        for path in matches:
            stat = os.stat(path)
            found.setdefault(path, Candidate(corpus.name, path, stat.st_size, stat.st_mtime_ns))
        skipped.update({p: _extension(p) for p in files if p not in found})
    return Survey([found[p] for p in sorted(found)], Counter(skipped.values()))


def discover(corpus: Corpus) -> list[Candidate]:
    """`survey(corpus)`'s candidates."""
    return survey(corpus).candidates
