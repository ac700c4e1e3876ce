"""Stage `acquire`: put a MusicNet-layout tree at `paths.raw`, from one of three sources.

- `musicnet`: download the archive and the metadata file from Zenodo (resumable, verified),
  then extract safely; the downloads stay in `data.downloads` so nothing is fetched twice.
- `local`: `data.path` is an extracted tree (linked in place: no 11 GB copy) or the archive
  (with musicnet_metadata.csv beside it), which is extracted.
- `demo`: render the parsed demo scores (jtm.demo.render), the only source that reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

from jtm.atomic import atomic_dir
from jtm.config import DataConfig, DemoConfig
from jtm.errors import ConfigError, DataError
from jtm.musicnet import layout
from jtm.musicnet.download import RemoteFile, cross_check, download
from jtm.musicnet.extract import extract

ARCHIVE = "musicnet.tar.gz"


def acquire(data: DataConfig, demo: DemoConfig, scores: Path | None, out: Path) -> dict:
    """Stage `acquire`: the tree at `out` from `data.source`; `scores` (the parsed demo scores)
    is read by the demo source only."""
    if data.source == "musicnet":
        return acquire_musicnet(data, out)
    if data.source == "local":
        return acquire_local(data, out)
    from jtm.demo.render import render_parsed

    return render_parsed(scores, demo, out)


def acquire_musicnet(cfg: DataConfig, out: Path) -> dict:
    downloads = Path(cfg.downloads)
    files = (
        RemoteFile(cfg.archive_url, ARCHIVE, cfg.archive_size, cfg.archive_md5),
        RemoteFile(cfg.metadata_url, layout.METADATA_FILE, cfg.metadata_size, cfg.metadata_md5),
    )
    checked = cross_check(cfg.record_url, list(files))
    results = [download(f, downloads, retries=cfg.retries, timeout=cfg.timeout) for f in files]
    extract(results[0].path, out, {layout.METADATA_FILE: results[1].path})
    downloaded = sum(r.bytes_transferred for r in results)
    return {"downloaded_bytes": downloaded, "record_checked": int(checked), **_count(out)}


def acquire_local(cfg: DataConfig, out: Path) -> dict:
    if not cfg.path:
        raise ConfigError("data.source=local needs data.path (an extracted tree or the archive)")
    source = Path(cfg.path).resolve()
    if source.is_dir():
        for name in ("musicnet", layout.METADATA_FILE):
            if not (source / name).exists():
                raise DataError(
                    source / name, "not found: data.path must hold musicnet/ and the metadata CSV"
                )
        with atomic_dir(out) as tmp:  # links, not copies: the tree is read in place
            os.symlink(source / "musicnet", tmp / "musicnet", target_is_directory=True)
            os.symlink(source / layout.METADATA_FILE, tmp / layout.METADATA_FILE)
    elif source.is_file():
        metadata = source.parent / layout.METADATA_FILE
        if not metadata.is_file():
            raise DataError(metadata, f"not found: the metadata CSV must sit beside {source.name}")
        extract(source, out, {layout.METADATA_FILE: metadata})
    else:
        raise DataError(source, "data.path does not exist")
    return _count(out)


def _count(out: Path) -> dict:
    return {split: len(list((out / "musicnet" / f"{split}_data").glob("*.wav"))) for split in layout.SPLITS}
