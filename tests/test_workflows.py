"""Real `dvc repro` and `snakemake --cores 2` runs in temporary git repositories.

Both engines build data/ (and the pretrained model) from scratch on a tiny config and must
produce byte-identical outputs; an immediate rerun does nothing; changing a resample param
reruns resample and what reads its output (index, pretrain, embed, downstream, report), never
the stages before it. `dvc metrics show`, `dvc plots show` and `dvc exp run -S` work as the
README says.
"""

import shutil

import pytest

from tests.projects import commit, comparable, digest, rules_in, run, set_param

pytestmark = pytest.mark.slow


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


def test_snakemake_builds_then_does_nothing(snakemake_project):
    root = snakemake_project.root
    assert (root / "data" / "index" / "windows.parquet").is_file()
    again = run(["snakemake", "--cores", "2"], root)
    assert "Nothing to be done" in again


def test_both_engines_produce_identical_outputs(dvc_project, snakemake_project):
    assert dvc_project.built.keys() == snakemake_project.built.keys()
    assert "cells/run1/probes/ensemble/scores.parquet" in dvc_project.built
    assert "ingest/manifest.parquet" in dvc_project.built
    assert comparable(dvc_project.built) == comparable(snakemake_project.built)


def test_dvc_reruns_only_resample_and_downstream_after_a_resample_change(dvc_project):
    root = dvc_project.root
    set_param(root, "resample", "quality", "HQ")
    output = run(["dvc", "repro"], root)
    assert "Running stage 'resample'" in output and "Running stage 'pretrain@0'" in output
    assert "Running stage 'acquire'" not in output and "Running stage 'demo_scores'" not in output


def test_snakemake_reruns_only_resample_and_downstream_after_a_resample_change(snakemake_project):
    root = snakemake_project.root
    set_param(root, "resample", "quality", "HQ")
    output = run(["snakemake", "--cores", "2"], root)
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
    assert '"field": "cpc-linear"' in page and '"field": "supervised"' in page  # a line per method


def test_dvc_exp_run_reruns_a_study_variant(dvc_project):
    root = dvc_project.root
    commit(root, "baseline")
    output = run(["dvc", "exp", "run", "-n", "same-track", "-S", "pretrain.sampling=samesequence"], root)
    assert "Running stage 'pretrain@0'" in output and "Running stage 'report'" in output
    assert "Running stage 'resample'" not in output
    shown = run(["dvc", "exp", "show", "--md", "--no-pager"], root)
    assert "same-track" in shown and "samesequence" in shown
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
