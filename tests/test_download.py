"""Real MusicNet acquisition against a loopback HTTP server: resume, retries, checksums, and
safe extraction, with an archive in MusicNet's exact layout made from the demo corpus."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from jtm.errors import DataError
from jtm.musicnet import layout
from jtm.musicnet.download import RemoteFile, cross_check, download, require_free_space
from jtm.musicnet.extract import extract
from jtm.runner import run_stage
from tests.loopback import Loopback


@pytest.fixture
def server():
    loopback = Loopback()
    yield loopback
    loopback.close()


def make_archive(raw: Path) -> bytes:
    """musicnet.tar.gz as on Zenodo: one top folder musicnet/ with the four split folders."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(raw / "musicnet", arcname="musicnet")
    return buffer.getvalue()


def remote(server, path: str, data: bytes) -> RemoteFile:
    server.put(path, data)
    return RemoteFile(server.url(path), path, len(data), hashlib.md5(data).hexdigest())


@pytest.fixture
def archive(built) -> bytes:
    return make_archive(Path(built["paths"]["raw"]))


def musicnet_source(server, raw: Path, archive: bytes) -> dict:
    """data.* params for source=musicnet served by `server`, record JSON included."""
    metadata = (raw / layout.METADATA_FILE).read_bytes()
    a, m = remote(server, "musicnet.tar.gz", archive), remote(server, "musicnet_metadata.csv", metadata)
    server.put("api/records/5120004", _record(a, m))
    return {
        "source": "musicnet",
        "archive_url": a.url,
        "archive_size": a.size,
        "archive_md5": a.md5,
        "metadata_url": m.url,
        "metadata_size": m.size,
        "metadata_md5": m.md5,
        "record_url": server.url("api/records/5120004"),
        "retries": 1,
        "timeout": 10,
    }


def test_full_download_extract_and_pipeline(server, archive, built, tmp_path):
    built["data"].update(musicnet_source(server, Path(built["paths"]["raw"]), archive))
    built["data"]["downloads"] = str(tmp_path / "downloads")
    built["paths"].update(
        raw=str(tmp_path / "downloaded"), audio16k=str(tmp_path / "a16"), index=str(tmp_path / "idx")
    )
    metrics = run_stage("acquire", built)
    assert metrics["downloaded_bytes"] == len(archive) + built["data"]["metadata_size"]
    assert metrics["record_checked"] == 1  # the pins agreed with the served record JSON
    ids, _ = layout.discover(tmp_path / "downloaded")
    assert len(ids) == metrics["train"] + metrics["test"]
    run_stage("resample", built)
    run_stage("index", built)
    assert (tmp_path / "idx" / "windows.parquet").is_file()
    again = run_stage("acquire", built)  # verified downloads are never fetched twice
    assert again["downloaded_bytes"] == 0 and server.sent("musicnet.tar.gz") == len(archive)


def _record(*files: RemoteFile) -> bytes:
    """The record JSON as Zenodo serves it: files[].key, .size, .checksum "md5:..."."""
    return json.dumps(
        {"files": [{"key": f.name, "size": f.size, "checksum": f"md5:{f.md5}"} for f in files]}
    ).encode()


def test_the_record_json_cross_checks_the_pins(server, archive):
    a = remote(server, "musicnet.tar.gz", archive)
    server.put("record", _record(RemoteFile(a.url, a.name, a.size, "f" * 32)))
    with pytest.raises(DataError, match=f"record says MD5 {'f' * 32}, params say {a.md5}"):
        cross_check(server.url("record"), [a])
    assert cross_check(server.url("nowhere"), [a]) is False  # unreachable or absent: pins stand
    server.put("record", _record(a))
    assert cross_check(server.url("record"), [a]) is True


def test_a_cut_transfer_resumes_with_range(server, archive, tmp_path):
    file = remote(server, "musicnet.tar.gz", archive)
    server.script["musicnet.tar.gz"] = [f"drop:{len(archive) // 2}"]
    with pytest.raises(DataError, match="download failed after 1 attempts"):
        download(file, tmp_path, retries=0, timeout=5)
    part = tmp_path / "musicnet.tar.gz.part"
    kept = part.stat().st_size  # what reached the disk before the cut (up to the last whole chunk)
    assert 0 < kept <= len(archive) // 2 and not (tmp_path / "musicnet.tar.gz").exists()
    result = download(file, tmp_path, retries=0, timeout=5)
    assert result.resumed and result.bytes_transferred == len(archive) - kept < len(archive)
    assert server.log[-1]["range"] == f"bytes={kept}-"
    assert hashlib.md5(result.path.read_bytes()).hexdigest() == file.md5 and not part.exists()


def test_retries_transient_failures_then_succeeds(server, archive, tmp_path):
    file = remote(server, "musicnet.tar.gz", archive)
    server.script["musicnet.tar.gz"] = ["500", f"drop:{len(archive) // 3}", "500"]
    result = download(file, tmp_path, retries=3, timeout=5, backoff=0.01)
    assert result.attempts == 4 and result.resumed
    assert result.path.read_bytes() == archive


def test_a_stalled_transfer_times_out_and_resumes(server, archive, tmp_path):
    file = remote(server, "musicnet.tar.gz", archive)
    server.script["musicnet.tar.gz"] = [f"stall:{len(archive) // 4}"]
    result = download(file, tmp_path, retries=2, timeout=1, backoff=0.01)
    assert result.attempts == 2 and result.path.read_bytes() == archive


def test_a_server_ignoring_range_restarts_cleanly(server, archive, tmp_path):
    file = remote(server, "musicnet.tar.gz", archive)
    server.script["musicnet.tar.gz"] = [f"drop:{len(archive) // 2}", "norange"]
    result = download(file, tmp_path, retries=1, timeout=5, backoff=0.01)
    assert not result.resumed and result.path.read_bytes() == archive


def test_a_changed_file_restarts_instead_of_splicing(server, archive, tmp_path):
    old = remote(server, "musicnet.tar.gz", archive)
    server.script["musicnet.tar.gz"] = [f"drop:{len(archive) // 2}"]
    with pytest.raises(DataError):
        download(old, tmp_path, retries=0, timeout=5)
    changed = archive[::-1]
    new = remote(server, "musicnet.tar.gz", changed)  # new bytes, new ETag, same size
    result = download(new, tmp_path, retries=0, timeout=5)
    assert not result.resumed and result.path.read_bytes() == changed


def test_a_checksum_mismatch_keeps_the_file_aside(server, archive, tmp_path):
    file = remote(server, "musicnet.tar.gz", archive)
    wrong = RemoteFile(file.url, file.name, file.size, "0" * 32)
    with pytest.raises(DataError, match=f"expected {'0' * 32}, got {file.md5}"):
        download(wrong, tmp_path, retries=0, timeout=5)
    assert (tmp_path / "musicnet.tar.gz.bad").read_bytes() == archive
    assert not (tmp_path / "musicnet.tar.gz").exists()


def test_404_fails_at_once(server, tmp_path):
    file = RemoteFile(server.url("missing.tar.gz"), "missing.tar.gz", 10, None)
    with pytest.raises(DataError, match="HTTP 404.*not retrying"):
        download(file, tmp_path, retries=5, timeout=5)
    assert len(server.log) == 1


def test_repeated_500s_give_up_naming_the_url(server, archive, tmp_path):
    file = remote(server, "musicnet.tar.gz", archive)
    server.script["musicnet.tar.gz"] = ["500"] * 10
    with pytest.raises(DataError, match=r"musicnet.tar.gz.*failed after 3 attempts.*HTTP 500"):
        download(file, tmp_path, retries=2, timeout=5, backoff=0.01)
    assert len(server.log) == 3


def test_free_space_is_checked_first(tmp_path):
    with pytest.raises(DataError, match="needs .* GB, only .* GB free"):
        require_free_space(tmp_path, 10**18, "downloading everything")


def _tar_with(tmp_path, add) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _member(tar, name, data=b"x", **fields):
    info = tarfile.TarInfo(name)
    info.size = len(data) if not fields else 0
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if not fields else None)


@pytest.mark.parametrize(
    "name,add",
    [
        ("absolute", lambda tar: _member(tar, "/tmp/jtm-evil-absolute")),
        ("dotdot", lambda tar: _member(tar, "musicnet/../../jtm-evil-dotdot")),
        ("symlink", lambda tar: _member(tar, "musicnet/link", type=tarfile.SYMTYPE, linkname="../../../etc")),
        ("hardlink", lambda tar: _member(tar, "musicnet/hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")),
        ("device", lambda tar: _member(tar, "musicnet/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
    ],
)
def test_malicious_archives_write_nothing(tmp_path, name, add):
    archive = _tar_with(tmp_path, add)
    target = tmp_path / "deep" / "raw"
    target.parent.mkdir()
    before = set(tmp_path.rglob("*"))
    with pytest.raises(DataError, match="evil.tar.gz"):
        extract(archive, target)
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/tmp/jtm-evil-absolute").exists() and not (tmp_path / "jtm-evil-dotdot").exists()


def test_local_source_reads_an_extracted_tree_in_place(built, tmp_path):
    tree = Path(built["paths"]["raw"])
    built["data"].update(source="local", path=str(tree))
    built["paths"].update(raw=str(tmp_path / "linked"), audio16k=str(tmp_path / "a16"))
    run_stage("acquire", built)
    assert (tmp_path / "linked" / "musicnet").is_symlink()
    assert (tmp_path / "linked" / "musicnet").resolve() == (tree / "musicnet").resolve()
    run_stage("resample", built)
    assert (tmp_path / "a16" / "manifest.parquet").is_file()


def test_local_source_needs_no_demo_scores(built, tmp_path, capsys):
    """`jtm acquire` alone, with no parsed demo scores anywhere: only the demo source reads them."""
    from jtm.cli import main

    args = ["acquire", "--set", "data.source=local", "--set", f"data.path={built['paths']['raw']}"]
    args += ["--set", f"paths.scores={tmp_path / 'never-parsed'}"]
    args += ["--set", f"paths.raw={tmp_path / 'linked'}"]
    args += ["--set", f"mlflow.tracking_uri={built['mlflow']['tracking_uri']}"]
    assert main(args) == 0, capsys.readouterr().err
    assert (tmp_path / "linked" / "musicnet").is_symlink()


def test_demo_scores_parse_nothing_for_another_source(built, tmp_path):
    """DVC's DAG is static: for musicnet/local its demo_scores stage writes empty tables at once."""
    built["data"].update(source="local", path=built["paths"]["raw"])
    built["paths"].update(scores=str(tmp_path / "scores"))
    built["demo"].update(scores=["no/such/score.mxl"])  # would fail if parsed
    metrics = run_stage("demo_scores", built)
    assert metrics["scores"] == 0 and pd.read_parquet(tmp_path / "scores" / "notes.parquet").empty


def test_snakemake_plans_no_demo_scores_for_another_source(built, tmp_path):
    from tests.projects import make_project, run, set_param

    root = make_project(tmp_path / "project")
    set_param(root, "data", "source", "local")
    set_param(root, "data", "path", built["paths"]["raw"])
    plan = run(["snakemake", "--dry-run", "--cores", "1"], root)
    assert "acquire" in plan and "demo_scores" not in plan


def test_local_source_extracts_an_archive(built, archive, tmp_path):
    (tmp_path / "musicnet.tar.gz").write_bytes(archive)
    (tmp_path / layout.METADATA_FILE).write_bytes(
        (Path(built["paths"]["raw"]) / layout.METADATA_FILE).read_bytes()
    )
    built["data"].update(source="local", path=str(tmp_path / "musicnet.tar.gz"))
    built["paths"].update(raw=str(tmp_path / "extracted"))
    metrics = run_stage("acquire", built)
    assert metrics["train"] > 0 and not (tmp_path / "extracted" / "musicnet").is_symlink()
    layout.discover(tmp_path / "extracted")


@pytest.mark.slow
def test_dvc_repro_acquires_from_the_server_once(server, archive, built, tmp_path):
    import yaml

    from tests.projects import make_project, run

    root = make_project(tmp_path / "project", ["mlflow.recorder=none"])
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"].update(musicnet_source(server, Path(built["paths"]["raw"]), archive))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = run(["dvc", "repro", "index"], root)
    assert "Running stage 'acquire'" in output and "Running stage 'index'" in output
    assert (root / "data" / "index" / "tracks.parquet").is_file()
    assert server.sent("musicnet.tar.gz") == len(archive)
    assert pd.read_parquet(root / "data" / "scores" / "scores.parquet").empty  # nothing parsed
    again = run(["dvc", "repro", "index"], root)
    assert "Running stage" not in again and server.sent("musicnet.tar.gz") == len(archive)
