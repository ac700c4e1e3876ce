"""Caches that never outlive their code (#23), in real `dvc repro` and `snakemake` projects.

Each test edits the project's own copy of `jtm` (the code the engines hash and run), checks
what reruns and what it writes, then restores the file's bytes and modification time and the
outputs, so the shared projects end as they began.
"""

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from jtm.runner import job_name, stage_items
from jtm.stages import STAGES
from tests.projects import jobs_in, rules_in, run

pytestmark = pytest.mark.slow

UNIMPORTED = "jtm/features/files.py"  # `jtm features`' own module: no stage runs it


@contextlib.contextmanager
def edited(root: Path, relative: str, old: str | None = None, new: str = "\n# an edit\n"):
    """`relative`'s text with `old` replaced by `new` (appended if `old` is None), then restored."""
    path = root / relative
    text, stat = path.read_text(), path.stat()
    assert old is None or text.count(old) == 1, f"{relative} no longer holds {old!r} once"
    path.write_text(text + new if old is None else text.replace(old, new))
    try:
        yield
    finally:
        path.write_text(text)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dvc_changed(root: Path) -> set[str]:
    """The stages `dvc status` lists as changed (matrix items as `probe@0`)."""
    return set(json.loads(run(["dvc", "status", "--json"], root, stderr=False)))


def snakemake_would_run(root: Path) -> set[str]:
    return rules_in(run(["snakemake", "--cores", "2", "--dry-run"], root))


def test_an_unimported_module_is_no_stage_dependency():
    assert all(UNIMPORTED not in stage.code for stage in STAGES.values())


@pytest.mark.parametrize(
    "module, stages",
    [
        ("jtm/downstream/metrics.py", {"probe", "probe_fixed", "end_to_end", "downstream", "report"}),
        ("jtm/loading/prefetch.py", {"pretrain"}),  # imported by the training loop only
        (
            "jtm/musicnet/layout.py",
            {"acquire", "resample", "index", "ingest", "probe", "probe_fixed", "end_to_end"},
        ),
        (UNIMPORTED, set()),
    ],
)
def test_dvc_status_after_an_edit_lists_exactly_the_stages_that_import_it(dvc_project, module, stages):
    root = dvc_project.root
    run(["dvc", "repro"], root)  # up to date whatever ran before
    assert dvc_changed(root) == set()
    with edited(root, module):
        changed = dvc_changed(root)
    assert {name.split("@")[0] for name in changed} == stages
    assert dvc_changed(root) == set()


@pytest.mark.parametrize(
    "module, rules",
    [
        ("jtm/downstream/metrics.py", {"probe", "probe_fixed", "end_to_end", "downstream", "report"}),
        (UNIMPORTED, set()),
    ],
)
def test_snakemake_after_an_edit_reruns_exactly_the_rules_that_import_it(snakemake_project, module, rules):
    root = snakemake_project.root
    run(["snakemake", "--cores", "2"], root)
    with edited(root, module):
        would_run = snakemake_would_run(root)
    assert would_run == rules | ({"all"} if rules else set())


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


def _one_more_run(root: Path) -> tuple[str, str, set[str]]:
    """(params.yaml's text, the same with one more pretraining run, the new run's jobs by name)."""
    text = (root / "params.yaml").read_text()
    params = yaml.safe_load(text)
    new = max(params["pretrain"]["runs"]) + 1
    params["pretrain"]["runs"].append(new)
    jobs = {
        job_name(name, item)
        for name, stage in STAGES.items()
        if "run" in stage.matrix
        for item in stage_items(stage, params)
        if item["run"] == new
    }
    return text, yaml.safe_dump(params, sort_keys=False), jobs


def test_dvc_adding_a_pretraining_run_reruns_only_that_run_and_the_gathering(dvc_project):
    root = dvc_project.root
    run(["dvc", "repro"], root)
    text, more, jobs = _one_more_run(root)
    assert {"pretrain@2", "embed@2", "end_to_end@ensemble-finetune-2"} <= jobs
    with edited(root, "params.yaml", text, more):
        assert dvc_changed(root) == jobs | {"downstream", "report"}
    assert dvc_changed(root) == set()


def test_snakemake_adding_a_pretraining_run_reruns_only_that_run_and_the_gathering(snakemake_project):
    root = snakemake_project.root
    run(["snakemake", "--cores", "2"], root)
    text, more, _ = _one_more_run(root)
    with edited(root, "params.yaml", text, more):
        would_run = jobs_in(run(["snakemake", "--cores", "2", "--dry-run"], root))
    runs = {job.split("@")[0] for job in would_run if "run=2" in job}
    assert runs == {"pretrain", "embed", "probe", "end_to_end"}
    assert {job for job in would_run if "run=2" not in job} == {"downstream", "report", "all"}
