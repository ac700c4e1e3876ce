"""Safe, atomic extraction of the MusicNet archive.

Members with absolute paths or `..` components are refused outright; tarfile's `data` filter
then refuses links that point outside the target, device files and other specials. Everything
lands in a temporary folder beside the target, renamed into place only when complete.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from jtm.atomic import atomic_dir
from jtm.errors import DataError
from jtm.musicnet.download import require_free_space


def check_members(archive: Path, tar: tarfile.TarFile) -> int:
    """Refuse unsafe member names; return the bytes the members will take."""
    total = 0
    for member in tar.getmembers():
        name = PurePosixPath(member.name)
        if name.is_absolute() or member.name.startswith(("/", "\\")):
            raise DataError(archive, f"member {member.name!r} has an absolute path: refusing to extract")
        if ".." in name.parts:
            raise DataError(archive, f"member {member.name!r} climbs out with '..': refusing to extract")
        total += member.size
    return total


def extract(archive: str | Path, target: str | Path, extra_files: dict[str, Path] | None = None) -> None:
    """Extract `archive` into `target` (atomically), adding `extra_files` {name: source} beside it."""
    import shutil

    archive, target = Path(archive), Path(target)
    try:
        with tarfile.open(archive, "r:*") as tar:
            needed = check_members(archive, tar)
            require_free_space(target.parent, needed, f"extracting {archive.name}")
            with atomic_dir(target) as tmp:
                try:
                    tar.extractall(tmp, filter="data")
                except tarfile.FilterError as err:
                    raise DataError(archive, f"unsafe member refused: {err}") from err
                for name, source in (extra_files or {}).items():
                    shutil.copy2(source, tmp / name)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(archive, f"cannot read archive: {err}") from err
