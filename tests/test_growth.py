"""A library that grows, shrinks and changes under stage `ingest`: only new or changed files are
decoded, wherever they sort; a removed file leaves the shards; and the manifest, windows and
every file's samples are what a fresh ingest of the same files gives."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from jtm.config import set_dotted
from jtm.runner import run_stage
from tests.test_ingest import ingest_params, stereo

RATE = 16_000


def write(folder: Path, name: str, seconds: float, pitch: float = 1.0) -> None:
    sf.write(folder / name, stereo(RATE, seconds) * pitch, RATE)


def samples_of(out: Path, manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each ingested file's samples, by path, read from the shards the manifest names."""
    shards: dict[str, np.ndarray] = {}
    found = {}
    for row in manifest.itertuples():
        data = shards.setdefault(row.shard, np.fromfile(out / row.shard, np.float32))
        found[row.path] = data[row.offset : row.offset + row.samples]
    return found


def fresh(params: dict, tmp_path: Path, tag: str) -> tuple[pd.DataFrame, bytes, dict]:
    """Ingest the same corpora from scratch into folders of their own."""
    params = {**params, "paths": dict(params["paths"])}
    set_dotted(params, "paths.ingest", str(tmp_path / f"fresh_{tag}"))
    set_dotted(params, "paths.ingest_work", str(tmp_path / f"fresh_{tag}_work"))
    run_stage("ingest", params)
    return built(tmp_path / f"fresh_{tag}")


def built(out: Path) -> tuple[pd.DataFrame, bytes, dict]:
    manifest = pd.read_parquet(out / "manifest.parquet")
    return manifest, (out / "windows.parquet").read_bytes(), samples_of(out, manifest)


def same_as_fresh(params: dict, tmp_path: Path, tag: str) -> pd.DataFrame:
    """The grown ingest equals a fresh one but for where the samples sit; and no shard holds a
    sample no manifest row points at."""
    out = Path(params["paths"]["ingest"])
    manifest, windows, samples = built(out)
    want_manifest, want_windows, want_samples = fresh(params, tmp_path, tag)
    placed = ["shard", "offset"]
    pd.testing.assert_frame_equal(manifest.drop(columns=placed), want_manifest.drop(columns=placed))
    assert windows == want_windows
    assert samples.keys() == want_samples.keys()
    for path, got in samples.items():
        np.testing.assert_array_equal(got, want_samples[path])
    shard_bytes = sum(p.stat().st_size for p in (out / "shards").rglob("*.f32"))
    assert shard_bytes == 4 * int(manifest["samples"].sum())
    rejects = pd.read_parquet(out / "rejects.parquet")
    want_rejects = pd.read_parquet(tmp_path / f"fresh_{tag}" / "rejects.parquet")
    pd.testing.assert_frame_equal(rejects, want_rejects)
    return manifest


def test_a_library_that_grows_shrinks_and_changes_decodes_only_what_is_new(tiny_params, tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    for i, name in enumerate(["b.wav", "c.wav", "d.wav", "e.wav"]):
        write(music, name, 1.0 + 0.25 * i, pitch=0.5 + 0.1 * i)
    corpora = [{"name": "lib", "paths": [str(music)], "weight": 1.0}]
    params = ingest_params(tiny_params, corpora, shard_mb=0.1)  # 100 KiB: a shard per file or two
    first = run_stage("ingest", params)
    assert (first["decoded_files"], first["reused_files"]) == (4, 0)
    work = Path(params["paths"]["ingest_work"]) / "shards" / "lib"
    kept = {p.name: p.stat().st_ino for p in work.iterdir()}

    write(music, "a first.wav", 1.5, pitch=0.9)  # sorts before every file ingested
    grown = run_stage("ingest", params)
    assert (grown["decoded_files"], grown["reused_files"], grown["repacked_files"]) == (1, 4, 0)
    assert {n: ino for n, ino in ((p.name, p.stat().st_ino) for p in work.iterdir()) if n in kept} == kept
    manifest = same_as_fresh(params, tmp_path, "grown")
    assert Path(manifest["path"].iloc[0]).name == "a first.wav"

    (music / "c.wav").unlink()  # its shard is repacked without it: copied, not decoded
    shrunk = run_stage("ingest", params)
    assert shrunk["decoded_files"] == 0 and shrunk["removed_shards"] >= 1
    manifest = same_as_fresh(params, tmp_path, "shrunk")
    assert "c.wav" not in {Path(p).name for p in manifest["path"]}

    write(music, "d.wav", 2.0, pitch=0.3)  # replaced: another size and time
    os.utime(music / "d.wav", ns=(1_800_000_000_000_000_000,) * 2)
    changed = run_stage("ingest", params)
    assert (changed["decoded_files"], changed["reused_files"]) == (1, 3)
    same_as_fresh(params, tmp_path, "changed")


def test_a_new_twin_that_sorts_first_takes_the_samples_and_a_lone_twin_is_decoded_again(
    tiny_params, tmp_path
):
    """The same bytes under a new name that sorts first: that path is the ingested one (as in a
    fresh run) and the old one the duplicate naming it; remove the file that held the samples
    and its twin, stored without samples, is decoded again."""
    music = tmp_path / "music"
    music.mkdir()
    write(music, "m.wav", 1.5)
    write(music, "z.wav", 1.0, pitch=0.5)
    params = ingest_params(tiny_params, [{"name": "lib", "paths": [str(music)], "weight": 1.0}])
    run_stage("ingest", params)
    shutil.copy2(music / "m.wav", music / "a copy.wav")
    metrics = run_stage("ingest", params)
    assert (metrics["decoded_files"], metrics["ingested"], metrics["duplicates"]) == (1, 2, 1)
    rejects = pd.read_parquet(Path(params["paths"]["ingest"]) / "rejects.parquet")
    twin = [str(music / "m.wav"), f"same bytes as {music / 'a copy.wav'}"]
    assert rejects[["path", "reason"]].values.tolist() == [twin]
    same_as_fresh(params, tmp_path, "twin")
    (music / "m.wav").unlink()  # held the samples; "a copy.wav" was stored as its duplicate
    metrics = run_stage("ingest", params)
    assert metrics["decoded_files"] == 1 and metrics["duplicates"] == 0
    same_as_fresh(params, tmp_path, "lone")
