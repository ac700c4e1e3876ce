"""Which files a corpus holds: every audio file under its folders and glob patterns.

A corpus (params `ingest.corpora`) is a name, a list of folders or glob patterns, and a weight.
Folders are walked recursively; a pattern is expanded with `glob` (`**` recurses). A file is a
candidate when its extension is one libsndfile or FFmpeg reads (a video's too: its first audio
stream counts), or, for an extension neither list names, when FFmpeg finds an audio stream in
it. Cover art, playlists and documents beside the music are not candidates: they are counted by
extension (`Survey.skipped`), so every file under the folders is accounted for. The order is
sorted by path, so shards are the same whatever the file system lists first.

A path that exists is that path, whatever characters it holds (`Title [id].mp3`); only a path
that does not exist is read as a glob pattern. Links are followed, each target once: a second
path to a file already listed, a dangling link and a link back into a folder being walked (a
loop) are skipped with their reason (`Survey.links`), never a crash and never a file twice.
"""

from __future__ import annotations

import glob
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from jtm.errors import ConfigError

log = logging.getLogger(__name__)

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
    """What the folders of a corpus hold: the candidates, sorted by path, the files left out as
    not audio, counted by extension ("(none)" for a name without one), and the links skipped:
    path -> reason ("dangling link to ...", "link loop: ...", "another path to ...")."""

    candidates: list[Candidate]
    skipped: Counter = field(default_factory=Counter)
    links: dict[str, str] = field(default_factory=dict)


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


def _walk(folder: str, links: dict[str, str]) -> list[str]:
    """Every file under `folder`, links followed; a link to a folder already on the way down
    (or already walked) is not entered: it goes into `links` with its reason."""
    files, walked = [], {os.path.realpath(folder)}
    for root, dirs, names in os.walk(folder, followlinks=True):
        for name in list(dirs):
            path = os.path.join(root, name)
            real = os.path.realpath(path)
            if real in walked:
                dirs.remove(name)
                links[path] = f"link loop: {path} leads to {real}, already walked"
            else:
                walked.add(real)
        files += [os.path.join(root, name) for name in names]
    return files


def _expand(pattern: str, links: dict[str, str]) -> list[str]:
    """Files under a folder, the path itself if it exists (brackets and all), or the files
    matching a glob pattern; [] when nothing matches."""
    if os.path.isdir(pattern):
        return _walk(pattern, links)
    if os.path.lexists(pattern):  # a path, never a pattern (a dangling link is caught later)
        return [pattern]
    return [p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p)]


def _link_problem(path: str, seen: dict[str, str]) -> str | None:
    """Why `path` is skipped as a link (dangling, or another path to a file listed), else None."""
    if not os.path.exists(path):
        return f"dangling link to {os.readlink(path) if os.path.islink(path) else path}"
    first = seen.setdefault(os.path.realpath(path), path)
    return None if first == path else f"another path to {first}"


def survey(corpus: Corpus) -> Survey:
    """Every audio file of `corpus`, sorted by path, each once (patterns may overlap), and the
    other files counted by extension.

    A folder or pattern that matches no audio file is a ConfigError naming it and what it does
    hold: a typo in a path must not silently shrink the pretraining data.
    """
    found: dict[str, Candidate] = {}
    skipped: dict[str, str] = {}  # path -> extension
    links: dict[str, str] = {}  # path -> why it is skipped
    real: dict[str, str] = {}  # a file's real path -> the first path found to it
    for pattern in corpus.paths:
        files = _expand(pattern, links)
        matches = [p for p in sorted(files) if p in found or (p not in links and is_candidate(p))]
        usable = []
        for path in matches:
            problem = None if path in found else _link_problem(path, real)
            if problem:
                links[path] = problem
            else:
                usable.append(path)
        if not usable and not (matches and all(p in links for p in matches)):
            raise ConfigError(_holds_nothing(corpus.name, pattern, files))
        for path in usable:
            stat = os.stat(path)
            found.setdefault(path, Candidate(corpus.name, path, stat.st_size, stat.st_mtime_ns))
        skipped.update({p: _extension(p) for p in files if p not in found and p not in links})
    for path, reason in sorted(links.items()):
        log.warning("%s: skipped: %s", path, reason)
    return Survey([found[p] for p in sorted(found)], Counter(skipped.values()), links)


def _holds_nothing(name: str, pattern: str, files: list[str]) -> str:
    """The error for a folder or pattern without an audio file: what it holds instead, and how
    to write a path with glob characters that does not exist yet."""
    held = Counter(_extension(p) for p in files)
    holds = ", ".join(f"{n} {ext}" for ext, n in held.most_common()) or "no file"
    hint = ""
    if not files and any(c in pattern for c in "[]*?"):
        escaped = glob.escape(pattern)
        hint = f"; no such path, and as a glob pattern it matches nothing (a literal [ is [[]: {escaped!r})"
    return (
        f"ingest.corpora: corpus {name!r}: {pattern!r} holds no audio file ({holds}){hint}; "
        "audio is any file libsndfile or FFmpeg decodes"
    )


def discover(corpus: Corpus) -> list[Candidate]:
    """`survey(corpus)`'s candidates."""
    return survey(corpus).candidates
