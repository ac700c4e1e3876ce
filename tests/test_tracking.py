"""Every stage run is an MLflow run; a tracking outage warns and the stage still completes.

The behaviour tests run with the recorder in the stage's process and in a process of its own
(params' `mlflow.recorder`): both must record the same runs.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from jtm.config import params_hash, subset
from jtm.runner import run_stage
from jtm.stages import STAGES
from jtm.tracking import open_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 with a sqlite backend, stopped after the module."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += [
        "--backend-store-uri",
        f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "art"),
    ]
    command += ["--workers", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        # Any request error (refused, read timeout on a busy machine, reset) means "not yet".
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, (root / "server.log").read_text()
            time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


RECORDERS = pytest.mark.parametrize("recorder", ["inline", "process"])


@RECORDERS
def test_stage_run_is_logged_to_a_real_server(built, mlflow_server, recorder):
    params = built
    params["mlflow"].update(tracking_uri=mlflow_server, experiment=f"jtm-test-{recorder}", recorder=recorder)
    metrics = run_stage("index", params)
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name(f"jtm-test-{recorder}")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["stage"] == "index"
    assert len(run.data.tags["git_commit"]) in (40, len("unknown"))
    assert run.data.tags["params_hash"] == params_hash(subset(params, list(STAGES["index"].params)))
    assert run.data.params["index.window"] == str(params["index"]["window"])
    assert run.data.metrics["windows"] == metrics["windows"] > 0
    assert run.data.metrics["hours"] == pytest.approx(metrics["hours"])
    # MLflow 3's UI opens an untagged experiment on its GenAI overview; ours opens on the runs.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_printed_ui_link_opens_the_training_runs_in_a_browser(built, mlflow_server):
    from playwright.sync_api import sync_playwright

    from jtm.tracking import runs_page
    from tests.browser import chromium_path

    built["mlflow"].update(tracking_uri=mlflow_server, experiment="jtm-ui")
    run_stage("index", built)
    page_url = runs_page(built["mlflow"], ui=mlflow_server)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(page_url, wait_until="load")
        # The runs table lists the stage's run; MLflow 3's default would be the GenAI overview.
        page.get_by_text("index", exact=True).first.wait_for(timeout=120_000)
        landed = page.url
        browser.close()
    assert "/runs" in landed and "overview" not in landed


@RECORDERS
def test_the_report_and_its_figures_are_artifacts_of_the_report_run(built, mlflow_server, recorder):
    built["mlflow"].update(tracking_uri=mlflow_server, experiment=f"jtm-report-{recorder}", recorder=recorder)
    run_stage("report", built)
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name(f"jtm-report-{recorder}")
    (run,) = client.search_runs([experiment.experiment_id])
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "report.md", "figures"} <= top
    figures = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {p.name for p in Path(built["paths"]["figures"]).iterdir()}
    assert "confusion.png" in figures


@RECORDERS
def test_resample_logs_hours_and_speed_in_a_run_that_spans_its_work(built, tmp_path, recorder):
    """The run's start and end are the stage's own: a recorder process opens it after importing
    MLflow, when a short stage may be done already."""
    params = built
    params["paths"]["audio16k"] = str(tmp_path / "again16k")
    params["mlflow"].update(tracking_uri=f"sqlite:///{tmp_path / 'local.db'}", recorder=recorder)
    before = time.time() * 1000
    run_stage("resample", params)
    after = time.time() * 1000
    client = MlflowClient(tracking_uri=params["mlflow"]["tracking_uri"])
    (run,) = client.search_runs([client.get_experiment_by_name(params["mlflow"]["experiment"]).experiment_id])
    assert run.data.metrics["hours"] > 0 and run.data.metrics["x_realtime"] > 1
    assert run.data.params["resample.quality"] == "VHQ"
    assert before <= run.info.start_time <= run.info.end_time <= after
    assert (
        run.info.end_time - run.info.start_time >= 1000 * run.data.metrics["seconds"]
    )  # the stage's own clock


@RECORDERS
def test_unreachable_tracking_server_warns_and_the_stage_completes(built, tmp_path, recorder):
    params = built
    params["paths"]["index"] = str(tmp_path / "index-offline")
    params["mlflow"].update(tracking_uri=f"http://127.0.0.1:{_free_port()}", recorder=recorder)
    with pytest.warns(UserWarning, match="MLflow tracking disabled"):
        metrics = run_stage("index", params)
    assert metrics["windows"] > 0
    assert (tmp_path / "index-offline" / "windows.parquet").is_file()


def test_with_no_recorder_a_stage_records_nothing(built, tmp_path):
    built["paths"]["index"] = str(tmp_path / "index-untracked")
    built["mlflow"].update(tracking_uri=f"sqlite:///{tmp_path / 'never.db'}", recorder="none")
    assert run_stage("index", built)["windows"] > 0
    assert not (tmp_path / "never.db").exists()


@RECORDERS
def test_a_failing_stage_marks_its_run_failed(built, tmp_path, recorder):
    params = built
    params["paths"]["audio16k"] = str(tmp_path / "nothing-here")
    params["mlflow"].update(tracking_uri=f"sqlite:///{tmp_path / 'failed.db'}", recorder=recorder)
    (tmp_path / "nothing-here").mkdir()
    with pytest.raises(Exception, match="no manifest"):
        run_stage("index", params)
    client = MlflowClient(tracking_uri=params["mlflow"]["tracking_uri"])
    (run,) = client.search_runs([client.get_experiment_by_name(params["mlflow"]["experiment"]).experiment_id])
    assert run.info.status == "FAILED"


# A stage that logs a figure, then waits for its stdin to close (it never does: it is killed).
_STAGE_KILLED_MIDWAY = """
import sys
from jtm.tracking import stage_run
tracking = {"tracking_uri": sys.argv[1], "experiment": "x", "recorder": "process"}
with stage_run("killed", tracking, {}) as tracker:
    tracker.metrics({"alive": 1.0})
    sys.stdin.read()
"""


def test_a_killed_stage_leaves_its_run_closed_as_killed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'killed.db'}"
    stage = subprocess.Popen([sys.executable, "-c", _STAGE_KILLED_MIDWAY, uri], stdin=subprocess.PIPE)

    def run():  # the stage's run once the recorder has logged its figure, else None
        try:
            client = open_client(uri)  # in turn with the recorder, which may be creating the store
            runs = client.search_runs([client.get_experiment_by_name("x").experiment_id])
        except Exception:  # no store or experiment yet
            return None
        return runs[0] if runs and "alive" in runs[0].data.metrics else None

    try:
        assert _poll(lambda: run() is not None), "the stage's run never logged its figure"
        assert run().info.status == "RUNNING"
        os.kill(stage.pid, signal.SIGKILL)  # no `finally` of the stage runs
        assert stage.wait(timeout=60) == -signal.SIGKILL
        assert _poll(lambda: run().info.status != "RUNNING")
        assert run().info.status == "KILLED"
    finally:
        stage.kill()


def _poll(ready, deadline_s: float = 300) -> bool:
    """Whether `ready()` came true before a generous deadline (a busy machine is slow, not wrong)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.2)
    return False


# A stage whose forked worker (holding the recorder's pipe, as a fork inherits every descriptor)
# is still alive when the run ends: the worker is released only once the run has closed.
_STAGE_WITH_A_WORKER = """
import multiprocessing, sys
from jtm.tracking import stage_run
tracking = {"tracking_uri": sys.argv[1], "experiment": "x", "recorder": "process"}
released = multiprocessing.get_context("fork").Event()
with stage_run("forked", tracking, {}) as tracker:
    worker = multiprocessing.get_context("fork").Process(target=released.wait)
    worker.start()
    tracker.metrics({"alive": 1.0})
print("closed", flush=True)
released.set()
worker.join()
"""


def test_a_worker_forked_by_the_stage_does_not_hold_its_run_open(tmp_path):
    uri = f"sqlite:///{tmp_path / 'forked.db'}"
    done = subprocess.run(
        [sys.executable, "-c", _STAGE_WITH_A_WORKER, uri], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and done.stdout == "closed\n", done.stderr[-3000:]
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("x").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics["alive"] == 1.0


# A stage that imports MLflow, says it is ready, waits for the start signal, then opens its run
# on the store: several released at once are the first openers of a new SQLite store together.
_STAGE_RELEASED_WITH_OTHERS = """
import sys
import mlflow
from jtm.tracking import stage_run
tracking = {"tracking_uri": sys.argv[1], "experiment": "x", "recorder": "inline"}
print("ready", flush=True)
sys.stdin.readline()
with stage_run(sys.argv[2], tracking, {}) as tracker:
    tracker.metrics({"done": 1.0})
"""


def test_stages_opening_a_new_store_at_once_are_all_recorded(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    names = [f"stage{i}" for i in range(6)]
    stages = [
        subprocess.Popen(
            [sys.executable, "-W", "error::UserWarning", "-c", _STAGE_RELEASED_WITH_OTHERS, uri, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        assert all(stage.stdout.readline() == "ready\n" for stage in stages)
        for stage in stages:  # released together: each opens the store as soon as it reads this
            stage.stdin.write("go\n")
            stage.stdin.flush()
        errors = [stage.communicate(timeout=600)[1] for stage in stages]
    finally:
        for stage in stages:
            stage.kill()
    assert [stage.returncode for stage in stages] == [0] * len(names), "\n".join(errors)[-4000:]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("x").experiment_id])
    assert sorted(run.info.run_name for run in runs) == names
    assert all(run.info.status == "FINISHED" and run.data.metrics["done"] == 1.0 for run in runs)
