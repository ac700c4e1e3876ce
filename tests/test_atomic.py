"""Outputs get the permissions an ordinary mkdir/open gives under the user's umask."""

import os
import stat
from pathlib import Path

import pytest

from jtm.atomic import atomic_dir, atomic_file
from jtm.runner import run_stage


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.check
def test_atomic_outputs_get_the_umask_permissions(tmp_path, umask_022):
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "file.txt").write_text("x")
    with atomic_file(tmp_path / "single.txt") as tmp:
        tmp.write_text("y")
    assert _mode(tmp_path / "folder") == 0o755
    assert _mode(tmp_path / "folder" / "file.txt") == 0o644
    assert _mode(tmp_path / "single.txt") == 0o644


def test_a_stage_output_is_readable_by_colleagues(built, tmp_path, umask_022):
    built["paths"].update(index=str(tmp_path / "index"))
    run_stage("index", built)
    assert _mode(tmp_path / "index") == 0o755
    assert all(_mode(p) == 0o644 for p in (tmp_path / "index").iterdir())
