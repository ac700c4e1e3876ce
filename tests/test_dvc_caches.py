"""Caches that never outlive their code, in a real `dvc repro` project (a copy of the tiny
pipeline's, tests/projects.py): a checkpoint, parsed scores and decoded shards of old code are
not reused; a resample change reruns resample and what reads its output, never the stages
before it. Each test puts the project back (or works in a copy of it).
"""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.projects import edited, run, set_param, sha, stages_in
from tests.test_dvc import dvc_changed

pytestmark = pytest.mark.slow


def test_dvc_retrains_after_a_training_code_edit_as_a_clean_run_would(dvc_project):
    """The checkpoint of the old code is not restored: the edit changes the weights, exactly as
    a run without any checkpoint does; back on the old code, the old weights."""
    root = dvc_project.root
    run(["dvc", "repro"], root)
    model, checkpoints = root / "data" / "pretrain" / "run0" / "model.pt", root / "data" / "checkpoints"
    before = sha(model)
    with edited(root, "jtm/train/pretrain.py", "(step + 1) / warmup_steps", "(step + 2) / warmup_steps"):
        assert "Running stage 'pretrain@0'" in run(["dvc", "repro", "--single-item", "pretrain@0"], root)
        after = sha(model)
        assert after != before
        shutil.rmtree(checkpoints)
        run(["dvc", "repro", "--single-item", "--force", "pretrain@0"], root)
        assert sha(model) == after
    run(["dvc", "repro", "--single-item", "pretrain@0"], root)
    assert sha(model) == before
    assert dvc_changed(root) == set()


def test_the_score_cache_is_not_reused_after_its_code_changed(dvc_project):
    root = dvc_project.root
    run(["dvc", "repro"], root)
    notes = root / "data" / "scores" / "notes.parquet"
    before, pitches = sha(notes), pd.read_parquet(notes)["pitch"]
    assert any((root / "data" / "score_cache").glob("*.parquet"))  # the build filled the cache
    with edited(root, "jtm/demo/scores.py", "int(p.midi), start_s", "int(p.midi) + 1, start_s"):
        run(["dvc", "repro", "--single-item", "demo_scores"], root)
        assert (pd.read_parquet(notes)["pitch"] == pitches + 1).all()
    run(["dvc", "repro", "--single-item", "demo_scores"], root)
    assert sha(notes) == before
    assert dvc_changed(root) == set()


def test_ingest_starts_afresh_after_its_decoder_changed(dvc_project):
    """The work folder's shards are stamped with the decoder's and shard writer's code: an edit
    elsewhere in ingest reruns the stage on the same shards, an edit of the decoder decodes anew."""
    root = dvc_project.root
    run(["dvc", "repro"], root)
    work = root / "data" / "ingest_work"
    stamp, shard = work / "target.json", next((work / "shards").rglob("*.f32"))
    before, written = json.loads(stamp.read_text())["code"], shard.stat().st_mtime_ns
    with edited(root, "jtm/ingest/stage.py"):  # the stage's code, not a shard's
        assert "Running stage 'ingest'" in run(["dvc", "repro", "--single-item", "ingest"], root)
        assert json.loads(stamp.read_text())["code"] == before and shard.stat().st_mtime_ns == written
    with edited(root, "jtm/ingest/decode.py"):
        run(["dvc", "repro", "--single-item", "ingest"], root)
        assert json.loads(stamp.read_text())["code"] != before and shard.stat().st_mtime_ns != written
    run(["dvc", "repro", "--single-item", "ingest"], root)
    assert json.loads(stamp.read_text())["code"] == before
    assert dvc_changed(root) == set()


def test_dvc_reruns_only_resample_and_downstream_after_a_resample_change(dvc_project, tmp_path):
    """Reproducing one pretraining run (in a copy) reruns resample and the stages between, never
    the stages before it (what each stage reads: the code-edit tests above)."""
    root = tmp_path / "project"
    shutil.copytree(dvc_project.root, root, symlinks=True)
    set_param(root, "resample", "quality", "HQ")
    output = run(["dvc", "repro", "pretrain@0"], root)
    ran = stages_in(output)
    assert {"resample", "index", "pretrain@0"} <= ran
    assert not ran & {"acquire", "demo_scores", "pretrain@1"}


def test_a_grown_library_reruns_ingest_under_dvc_decoding_only_what_changed(dvc_project, tmp_path):
    """`dvc repro` runs `survey` (the digest of the corpora's files) every time; ingest reruns
    only when the library changed, and then decodes only the new file (one that sorts before the
    others) and nothing for a removed one (in a copy of the project)."""
    root = tmp_path / "project"
    shutil.copytree(dvc_project.root, root, symlinks=True)
    assert stages_in(run(["dvc", "repro", "ingest"], root)) == {"survey"}
    library = root / "unlabeled"
    sf.write(library / "0 added.wav", np.sin(np.arange(40_000) / 7.0) * 0.2, 16_000)
    output = run(["dvc", "repro", "ingest"], root)
    assert stages_in(output) == {"survey", "ingest"}
    assert "ingest: 3 files: 2 reused from data/ingest_work, 1 decoded, 0 copied" in output
    assert stages_in(run(["dvc", "repro", "ingest"], root)) == {"survey"}
    (library / "mono.flac").unlink()
    output = run(["dvc", "repro", "ingest"], root)
    assert "ingest: 2 files: 2 reused from data/ingest_work, 0 decoded" in output
    manifest = pd.read_parquet(root / "data" / "ingest" / "manifest.parquet")
    assert manifest["path"].tolist() == ["unlabeled/0 added.wav", "unlabeled/stereo.wav"]


def test_the_cache_is_linked_and_intact_after_every_rerun_above(dvc_project):
    """Outputs are hard links into DVC's cache (`.dvc/config`: hardlink, symlink, copy; a new
    output is linked when DVC commits it, one whose bytes were cached already after a
    `dvc checkout --relink`), so the cache adds no second copy; and after the reruns above
    (retraining, re-parsing, re-ingesting: outputs replaced many times) every cached file still
    holds the bytes its name hashes: no stage edited a linked output in place."""
    root = dvc_project.root
    run(["dvc", "repro", "--force", "--single-item", "embed@0"], root)
    cache = root / ".dvc" / "cache" / "files" / "md5"
    outputs = [p for p in (root / "data" / "embeddings" / "run0").rglob("*") if p.is_file()]
    # bytes DVC had cached already stay a copy after a rerun (DVC's choice) until a relink,
    # which `make demo` and `make study` run after `dvc repro`
    run(["dvc", "checkout", "--relink", "--quiet"], root)
    assert outputs and [p for p in outputs if p.stat().st_nlink < 2] == []  # keys: the same in every run
    frames = root / "data" / "embeddings" / "run0" / "cpc" / "frames.npy"
    digest = hashlib.md5(frames.read_bytes()).hexdigest()
    assert frames.stat().st_ino == (cache / digest[:2] / digest[2:]).stat().st_ino
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert len(files) > 50
    for path in files:
        name = path.parent.name + path.name.removesuffix(".dir")
        assert hashlib.md5(path.read_bytes()).hexdigest() == name, f"{path} was edited in place"
