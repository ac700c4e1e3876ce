"""The tiny pipeline on a real one-node SLURM cluster, through snakemake-executor-plugin-slurm.

The test cluster has no accounting database (no slurmdbd), so `sacct` cannot answer: the plugin
checks jobs with `squeue` (`--slurm-status-command squeue`, reliable since MinJobAge keeps
finished jobs listed for 10 minutes) and SLURM's job-completion log shows what ran.
"""

from pathlib import Path

import pytest
import yaml

from jtm.runner import stage_items
from jtm.stages import STAGES
from tests.conftest import shared_once
from tests.projects import comparable, digest, make_project, run, stages_in
from tests.slurm import single_node_slurm
from tests.test_dvc import dvc_changed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def slurm_project(tmp_path_factory):
    """The tiny pipeline built with the repo's SLURM profile, as the README says, on a cluster
    started for the build (and stopped after it), once per test run: the project, what
    Snakemake printed and SLURM's records of the jobs that ran. This module alone uses it (its
    last test has DVC adopt the outputs)."""

    def build(folder: Path) -> dict:
        with single_node_slurm(folder / "cluster") as cluster:
            # No MLflow records: they would cost each job about 4 s of CPU, and what the
            # engines record is checked on Snakemake's local build (test_snakemake.py).
            root = make_project(folder / "project", ["mlflow.recorder=none"])
            command = ["snakemake", "--workflow-profile", "profiles/slurm", "--jobs", "4"]
            # No accounting database here; poll every 2 s rather than a busy cluster's 40 s.
            command += ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1"]
            command += ["--seconds-between-status-checks", "2", "--latency-wait", "5"]
            output = run(command, root, env=cluster.env)
            return {"root": str(root), "output": output, "jobs": cluster.finished_jobs()}

    built = shared_once(tmp_path_factory, "slurm", build)
    return Path(built["root"]), built["output"], built["jobs"]


def test_every_job_went_through_sbatch(slurm_project):
    root, output, jobs = slurm_project
    submitted = [line for line in output.splitlines() if "has been submitted with SLURM jobid" in line]
    logs = root / "logs" / "slurm"
    assert {p.name.removeprefix("rule_") for p in logs.iterdir()} == set(STAGES)
    # a job per item: each pretraining run's model, embeddings and cells (tests/projects.py)
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert len(submitted) == sum(len(stage_items(stage, params)) for stage in STAGES.values())
    assert len(jobs) == len(submitted)
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}
    assert {job["WorkDir"] for job in jobs} == {str(root)}
    # A job asks for the rule's threads and params' memory: the probes' 500 MB, 1 CPU.
    assert all(job["ProcCnt"] == "1" and "mem=500M" in job["Tres"] for job in jobs)


def test_slurm_outputs_equal_a_local_run(slurm_project, snakemake_project):
    root, _, _ = slurm_project
    on_slurm = digest(root / "data")
    assert "cells/run1/probes/transcription/scores.parquet" in on_slurm
    assert comparable(on_slurm) == comparable(snakemake_project.built)


def test_a_rerun_submits_nothing(slurm_project):
    root, _, _ = slurm_project
    again = run(["snakemake", "--workflow-profile", "profiles/slurm", "--dry-run"], root)
    assert "Nothing to be done" in again


def test_dvc_records_what_slurm_built(slurm_project):
    """`dvc commit` adopts the cluster's outputs (same stages, same paths): nothing to rerun."""
    root, _, _ = slurm_project
    run(["jtm", "survey"], root)  # DVC's digest of the corpora: Snakemake has no such rule
    run(["dvc", "commit", "--force"], root)
    assert dvc_changed(root) == set()  # but survey, "always changed" by design
    assert stages_in(run(["dvc", "repro"], root)) == {"survey"}  # the corpora's digest: always run
