"""Real `snakemake --cores 2` runs in a temporary git repository (the tiny pipeline of
tests/projects.py).

Built from scratch, an immediate rerun does nothing, and the outputs are byte for byte the same
as DVC's; a code edit reruns exactly the rules that import the edited module; a resample change
plans resample and what reads its output, never the rules before it; a rule given 2 GPUs runs
under torchrun. The tests run in this order, on one worker (`make test`: --dist loadfile); each
that changes the project puts it back, or works in a copy.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from jtm.runner import job_name, stage_items
from jtm.stages import STAGES
from jtm.tracking import open_client
from tests.projects import UNIMPORTED, comparable, edited, jobs_in, one_more_run, rules_in, run, set_param

pytestmark = pytest.mark.slow


def snakemake_would_run(root: Path) -> set[str]:
    return rules_in(run(["snakemake", "--cores", "2", "--dry-run"], root))


def test_snakemake_builds_then_does_nothing(snakemake_project):
    root = snakemake_project.root
    assert (root / "data" / "index" / "windows.parquet").is_file()
    again = run(["snakemake", "--cores", "2"], root)
    assert "Nothing to be done" in again


def test_every_job_of_the_build_is_a_finished_mlflow_run(snakemake_project):
    """Two jobs at a time, the first two on a store that does not exist yet: every job's run is
    recorded and closed, none lost to two stages creating the store at once."""
    root = snakemake_project.root
    params = yaml.safe_load((root / "params.yaml").read_text())
    jobs = {job_name(name, item) for name, stage in STAGES.items() for item in stage_items(stage, params)}
    client = open_client(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(params["mlflow"]["experiment"])
    runs = [
        r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" not in r.data.tags
    ]
    assert sorted(r.info.run_name for r in runs) == sorted(jobs)
    assert {r.info.status for r in runs} == {"FINISHED"}


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


def test_snakemake_adding_a_pretraining_run_reruns_only_that_run_and_the_gathering(snakemake_project):
    root = snakemake_project.root
    run(["snakemake", "--cores", "2"], root)
    text, more, _ = one_more_run(root)
    with edited(root, "params.yaml", text, more):
        would_run = jobs_in(run(["snakemake", "--cores", "2", "--dry-run"], root))
    runs = {job.split("@")[0] for job in would_run if "run=2" in job}
    assert runs == {"pretrain", "embed", "probe", "end_to_end"}
    assert {job for job in would_run if "run=2" not in job} == {"downstream", "report", "all"}


def test_snakemake_reruns_only_resample_and_downstream_after_a_resample_change(snakemake_project, tmp_path):
    """Snakemake's plan (`--dry-run`, in a copy) after a resample change: resample and every rule
    that reads its outputs, never the rules before it."""
    root = tmp_path / "project"
    shutil.copytree(snakemake_project.root, root, symlinks=True)
    set_param(root, "resample", "quality", "HQ")
    output = run(["snakemake", "--cores", "2", "--dry-run"], root)
    assert rules_in(output) == {
        "resample",
        "index",
        "ingest",  # it resamples with resample.quality too
        "leakage",
        "pretrain",
        "embed",
        "embed_fixed",
        "probe",
        "probe_fixed",
        "end_to_end",
        "downstream",
        "report",
        "all",
    }


def test_snakemake_plans_ingest_when_a_file_is_added_replaced_or_removed(snakemake_project):
    """The corpora's files are the ingest rule's inputs (a dry run each; the project is put back)."""
    root = snakemake_project.root
    run(["snakemake", "--cores", "2"], root)
    library, added = root / "unlabeled", root / "unlabeled" / "0 added.wav"
    shutil.copy(library / "stereo.wav", added)
    assert "ingest" in snakemake_would_run(root)
    added.unlink()
    stat = (library / "mono.flac").stat()
    (library / "mono.flac").rename(root / "mono.flac")
    assert "ingest" in snakemake_would_run(root)
    (root / "mono.flac").rename(library / "mono.flac")
    original = (library / "mono.flac").read_bytes()
    sf.write(library / "mono.flac", np.zeros(48_000, np.float32), 48_000)  # replaced: other audio
    assert "ingest" in snakemake_would_run(root)
    (library / "mono.flac").write_bytes(original)  # the same bytes again (Snakemake compares checksums)
    os.utime(library / "mono.flac", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "ingest" not in snakemake_would_run(root)


def test_snakemake_runs_pretrain_on_several_gpus_under_torchrun(snakemake_project, tmp_path):
    """A rule given 2 GPUs runs 2 DDP processes (gloo on this CPU machine, NCCL on GPUs)."""
    root = tmp_path / "project"
    shutil.copytree(snakemake_project.root, root)
    command = ["snakemake", "--cores", "2", "--forcerun", "pretrain", "--until", "pretrain"]
    run(command + ["--set-resources", "pretrain:gpu=2"], root)
    log = (root / "logs" / "pretrain" / "run0.log").read_text()
    assert "torch.distributed.run --standalone --nproc-per-node=2 -m jtm.cli pretrain 0" in log
    checkpoints = {p.name for p in (root / "data" / "checkpoints" / "run0").iterdir()}
    assert checkpoints >= {"rank0-of-2.pt", "rank1-of-2.pt"}
    assert (root / "data" / "pretrain" / "run0" / "model.pt").is_file()


def test_both_engines_produce_identical_outputs(dvc_project, snakemake_project):
    assert comparable(dvc_project.built).keys() == comparable(snakemake_project.built).keys()
    assert "cells/run1/probes/ensemble/scores.parquet" in dvc_project.built
    assert "ingest/manifest.parquet" in dvc_project.built
    assert comparable(dvc_project.built) == comparable(snakemake_project.built)
