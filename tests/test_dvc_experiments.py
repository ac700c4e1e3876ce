"""DVC's experiments and remotes on a real project (a copy of the tiny pipeline's,
tests/projects.py), as the README uses them: `dvc exp run -S` reruns what a study variant
changes and `dvc exp show` lists it; a shared folder as remote restores a fresh clone.
"""

import shutil

import pytest

from tests.projects import commit, digest, run, stages_in

pytestmark = pytest.mark.slow


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
    skips acquire; ingest reruns (its library's files carry the clone's times, which the
    corpora's digest, `survey`, sees), and a plain `dvc repro` re-acquires: the identical audio
    reruns nothing after them (the ingest's work folder, a cache, and the digest record the
    clone's file times, so they are left out of the comparison)."""
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
    uncached = ("raw/", "ingest/", "survey.json")  # survey.json: rewritten by every `dvc repro`
    assert {k: v for k, v in built.items() if not k.startswith(uncached)} == restored
    # the clone's library files carry the checkout's times: the digest changes and ingest reruns
    assert stages_in(run(["dvc", "repro", "--allow-missing"], clone)) == {"survey", "ingest"}
    output = run(["dvc", "repro"], clone)
    ran = stages_in(output)
    assert ran == {"survey", "acquire"}
    rebuilt = digest(clone / "data")
    times = ("ingest_work/", "survey.json")  # they record the clone's file times
    assert {k: v for k, v in rebuilt.items() if not k.startswith(times)} == {
        k: v for k, v in built.items() if not k.startswith(times)
    }
