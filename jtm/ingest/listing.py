"""`jtm survey`: a digest of the files `ingest.corpora` name, the dependency DVC compares.

The corpora's folders live outside the repository, where DVC does not look, and their patterns
are params, not paths it could hash. So dvc.yaml's stage `survey` (always run) writes this
digest and stage `ingest` depends on it: adding, removing, replacing or touching a file changes
the digest and reruns ingest, which decodes only the files its work folder does not hold
(jtm/ingest/reuse.py); an unchanged library leaves the digest, and so ingest, as they were.

The digest covers what ingest reads of a file before decoding it: its path, size and
modification time (jtm/ingest/shards.py's KEY), and what is skipped (by extension, and links
with their reason), so the account ingest logs stays true. Cost: a directory walk and one stat
per file, no file opened (but an extensionless file, which FFmpeg is asked about):
benchmarks/bench_ingest.py measures it on 1 000 and 100 000 files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from jtm.atomic import atomic_file
from jtm.ingest.discover import Corpus, survey


def digest_corpus(corpus: Corpus) -> dict:
    """One corpus's entry: files (candidates), bytes, sha256 of their sorted (path, size, time)
    lines, and the files skipped (by extension) and links skipped (by path: reason)."""
    found = survey(corpus)
    lines = "".join(f"{c.path}\t{c.bytes}\t{c.mtime_ns}\n" for c in found.candidates)
    return {
        "files": len(found.candidates),
        "bytes": sum(c.bytes for c in found.candidates),
        "sha256": hashlib.sha256(lines.encode("utf-8", "surrogateescape")).hexdigest(),
        "skipped_not_audio": dict(sorted(found.skipped.items())),
        "skipped_links": dict(sorted(found.links.items())),
    }


def write_survey(corpora: list[Corpus], out: str | Path) -> dict:
    """Write every corpus's digest to `out` (JSON, replaced atomically); returns it."""
    listing = {corpus.name: digest_corpus(corpus) for corpus in corpora}
    with atomic_file(Path(out)) as tmp:
        Path(tmp).write_text(json.dumps(listing, indent=2, ensure_ascii=False) + "\n")
    return listing
