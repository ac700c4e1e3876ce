"""Every stage run is an MLflow run; a tracking outage warns and the stage still completes."""

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


def test_stage_run_is_logged_to_a_real_server(built, mlflow_server):
    params = built
    params["mlflow"]["tracking_uri"] = mlflow_server
    params["mlflow"]["experiment"] = "jtm-test"
    metrics = run_stage("index", params)
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("jtm-test")
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


def test_the_report_and_its_figures_are_artifacts_of_the_report_run(built, mlflow_server):
    built["mlflow"].update(tracking_uri=mlflow_server, experiment="jtm-report")
    run_stage("report", built)
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("jtm-report")
    (run,) = client.search_runs([experiment.experiment_id])
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "report.md", "figures"} <= top
    figures = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {p.name for p in Path(built["paths"]["figures"]).iterdir()}
    assert "confusion.png" in figures


def test_resample_logs_hours_and_speed(built, tmp_path):
    params = built
    params["paths"]["audio16k"] = str(tmp_path / "again16k")
    params["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'local.db'}"
    run_stage("resample", params)
    client = MlflowClient(tracking_uri=params["mlflow"]["tracking_uri"])
    (run,) = client.search_runs([client.get_experiment_by_name(params["mlflow"]["experiment"]).experiment_id])
    assert run.data.metrics["hours"] > 0 and run.data.metrics["x_realtime"] > 1
    assert run.data.params["resample.quality"] == "VHQ"


def test_unreachable_tracking_server_warns_and_the_stage_completes(built, tmp_path):
    params = built
    params["paths"]["index"] = str(tmp_path / "index-offline")
    params["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{_free_port()}"
    with pytest.warns(UserWarning, match="MLflow tracking disabled"):
        metrics = run_stage("index", params)
    assert metrics["windows"] > 0
    assert (tmp_path / "index-offline" / "windows.parquet").is_file()


def test_a_failing_stage_marks_its_run_failed(built, tmp_path):
    params = built
    params["paths"]["audio16k"] = str(tmp_path / "nothing-here")
    params["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'failed.db'}"
    (tmp_path / "nothing-here").mkdir()
    with pytest.raises(Exception, match="no manifest"):
        run_stage("index", params)
    client = MlflowClient(tracking_uri=params["mlflow"]["tracking_uri"])
    (run,) = client.search_runs([client.get_experiment_by_name(params["mlflow"]["experiment"]).experiment_id])
    assert run.info.status == "FAILED"
