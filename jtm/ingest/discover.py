"""Which files a corpus holds: every audio file under its folders and glob patterns.

A corpus (params `ingest.corpora`) is a name, a list of folders or glob patterns, and a weight.
Folders are walked recursively; a pattern is expanded with `glob` (`**` recurses). Only names
with an audio extension are candidates (cover art and playlists beside the music are not
rejects); the order is sorted by path, so shards are the same whatever the file system lists
first.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from jtm.errors import ConfigError

# What libsndfile 1.2 reads (soundfile.available_formats(): WAV, FLAC, OGG Vorbis/Opus, MP3,
# AIFF, AU, CAF, W64, RF64, ...), by the extensions those files carry.
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .bwf .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64".split()
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


def _expand(pattern: str) -> list[str]:
    """Files under a folder, or matching a glob pattern; [] when nothing matches."""
    if os.path.isdir(pattern):
        return [
            os.path.join(root, name)
            for root, _, names in os.walk(pattern, followlinks=True)
            for name in names
        ]
    return [p for p in glob.glob(pattern, recursive=True) if not os.path.isdir(p)]


def discover(corpus: Corpus) -> list[Candidate]:
    """Every audio file of `corpus`, sorted by path, each once (patterns may overlap).

    A folder or pattern that matches no audio file is a ConfigError naming it: a typo in a path
    must not silently shrink the pretraining data.
    """
    found: dict[str, Candidate] = {}
    for pattern in corpus.paths:
        matches = [p for p in _expand(pattern) if Path(p).suffix.lower() in AUDIO_EXTENSIONS]
        if not matches:
            raise ConfigError(
                f"ingest.corpora: corpus {corpus.name!r}: {pattern!r} holds no audio file "
                f"(extensions: {' '.join(sorted(AUDIO_EXTENSIONS))})"
            )
        for path in matches:
            stat = os.stat(path)
            found.setdefault(path, Candidate(corpus.name, path, stat.st_size, stat.st_mtime_ns))
    return [found[p] for p in sorted(found)]
