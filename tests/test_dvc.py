"""Real `dvc repro` runs in a temporary git repository (the tiny pipeline of tests/projects.py).

Built from scratch, an immediate rerun does nothing; a code edit, or one more pretraining run,
reruns exactly the stages concerned; `dvc metrics show`, `dvc plots show`, `dvc exp run -S` and
a shared remote work as the README says. The tests share this module's copy of the project and
run in this order, on one worker (`make test`: --dist loadfile); each puts it back as it found
it, or works in a copy. Caches: test_dvc_caches.py.
"""

import json
import shutil
from pathlib import Path

import pytest

from tests.projects import UNIMPORTED, commit, digest, edited, one_more_run, run

pytestmark = pytest.mark.slow


def dvc_changed(root: Path) -> set[str]:
    """The stages `dvc status` lists as changed (matrix items as `probe@0`)."""
    return set(json.loads(run(["dvc", "status", "--json"], root, stderr=False)))


def test_dvc_builds_then_does_nothing(dvc_project):
    root, output = dvc_project.root, dvc_project.output
    for stage in (
        "demo_scores",
        "acquire",
        "resample",
        "index",
        "ingest",
        "pretrain@1",
        "probe@0",
        "probe@1",
        "probe_fixed",
        "downstream",
        "report",
    ):
        assert f"Running stage '{stage}'" in output
    assert (root / "data" / "index" / "windows.parquet").is_file()
    assert "ingest/shards/library/00000.f32" in dvc_project.built
    again = run(["dvc", "repro"], root)
    assert "Running stage" not in again
    assert "up to date" in again


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


def test_dvc_adding_a_pretraining_run_reruns_only_that_run_and_the_gathering(dvc_project):
    root = dvc_project.root
    run(["dvc", "repro"], root)
    text, more, jobs = one_more_run(root)
    assert {"pretrain@2", "embed@2", "end_to_end@ensemble-finetune-2"} <= jobs
    with edited(root, "params.yaml", text, more):
        assert dvc_changed(root) == jobs | {"downstream", "report"}
    assert dvc_changed(root) == set()


def test_dvc_metrics_show_prints_every_downstream_cell(dvc_project):
    root = dvc_project.root
    table = run(["dvc", "metrics", "show", "--md"], root)
    assert "metrics/ensemble/cpc-linear/all.json" in table
    assert "metrics/transcription/logmel-linear/1-per-class.json" in table
    assert "headline.lo" in table and "headline.hi" in table and "mean.onset_f1" in table
    assert "pretrain/run0/metrics.json" in table and "pretrain/run1/metrics.json" in table


def test_dvc_plots_show_renders_the_curves(dvc_project):
    root = dvc_project.root
    run(["dvc", "plots", "show", "-o", "plots_html"], root)
    page = (root / "plots_html" / "index.html").read_text()
    for title in (
        "CPC validation accuracy",
        "Ensemble accuracy vs labelled tracks per class",
        "Transcription frame",
    ):
        assert title in page
    assert '"field": "cpc-linear"' in page and '"field": "finetune"' in page  # a line per method


def test_dvc_exp_run_reruns_a_study_variant(dvc_project):
    root = dvc_project.root
    commit(root, "baseline")
    output = run(["dvc", "exp", "run", "-n", "one-seed", "-S", "downstream.seeds=[0]"], root)
    assert "Running stage 'probe@0'" in output and "Running stage 'report'" in output
    assert "Running stage 'pretrain@0'" not in output and "Running stage 'resample'" not in output
    shown = run(["dvc", "exp", "show", "--md", "--no-pager"], root)
    assert "one-seed" in shown and "[0]" in shown
    assert "mean.accuracy" in shown and "val_acc_k1" in shown  # the metrics of each experiment


def test_dvc_remote_push_and_pull_into_a_fresh_clone(dvc_project, tmp_path):
    """A shared folder as DVC remote, as the README's "Running on a cluster" says: `dvc push`
    stores the data and models; a fresh clone's `dvc pull` restores them byte for byte, and
    nothing is recomputed. data/raw and data/ingest are never cached (re-acquirable, re-ingestible;
    MusicNet's 11 GB and a library's shards are not duplicated), so `dvc repro --allow-missing`
    skips them, and a plain `dvc repro` re-acquires and re-ingests them alone: the identical
    audio reruns nothing after them (the ingest's work folder, a cache, records the clone's file
    times, so it is left out of the comparison)."""
    root = tmp_path / "project"
    shutil.copytree(dvc_project.root, root)
    run(["dvc", "checkout", "--force"], root)  # whatever earlier tests changed, back to dvc.lock
    remote = tmp_path / "shared" / "jtm-dvc"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], root)
    commit(root, "built, with a shared remote")
    pushed = run(["dvc", "push"], root)
    assert "pushed" in pushed and any(remote.rglob("*"))
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path)
    assert not (clone / "data" / "pretrain" / "run0" / "model.pt").exists()
    run(["dvc", "pull"], clone)
    restored, built = digest(clone / "data"), digest(root / "data")
    assert {k: v for k, v in built.items() if not k.startswith(("raw/", "ingest/"))} == restored
    assert "up to date" in run(["dvc", "repro", "--allow-missing"], clone)
    output = run(["dvc", "repro"], clone)
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    assert ran == {"acquire", "ingest"}
    rebuilt = digest(clone / "data")
    assert {k: v for k, v in rebuilt.items() if not k.startswith("ingest_work/")} == {
        k: v for k, v in built.items() if not k.startswith("ingest_work/")
    }
