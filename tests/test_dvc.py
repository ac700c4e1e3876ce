"""Real `dvc repro` runs in a temporary git repository (the tiny pipeline of tests/projects.py).

Built from scratch, an immediate rerun does nothing; a code edit, or one more pretraining run,
reruns exactly the stages concerned; `dvc metrics show` and `dvc plots show` work as the README
says. The tests share this module's copy of the project and run in this order, on one worker
(`make test`: --dist loadfile); each puts it back as it found it. Caches: test_dvc_caches.py;
experiments and remotes: test_dvc_experiments.py.
"""

import json
from pathlib import Path

import pytest

from tests.projects import UNIMPORTED, edited, one_more_run, run, stages_in

pytestmark = pytest.mark.slow


def dvc_changed(root: Path) -> set[str]:
    """The stages `dvc status` lists as changed (matrix items as `probe@0`), but `survey`, which
    it lists as "always changed" by design (dvc.yaml: the corpora's digest, run every time)."""
    status = json.loads(run(["dvc", "status", "--json"], root, stderr=False))
    return {name for name, why in status.items() if why != ["always changed"]}


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
    assert stages_in(again) == {"survey"}  # the corpora's digest, run every time
    assert "Stage 'ingest' didn't change, skipping" in again


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
    assert "metrics/ensemble/unseen/cpc-linear/all.json" in table  # the tiny corpus: seen and unseen parts
    assert "metrics/transcription/seen/logmel-linear/1-per-class.json" in table
    assert "metrics/ensemble/transfer/all.json" in table
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
