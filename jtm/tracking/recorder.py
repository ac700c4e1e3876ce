"""What a stage's MLflow run receives, applied to MLflow: the one place that calls it.

A `Recorder` takes operations as plain dicts (`{"op": "start", ...}`: start, metrics,
artifacts, child_run, end), so the same code serves a stage in its own process and a recorder
process fed over a pipe (jtm/tracking/process.py). A failing operation returns the warning to
give instead of raising: losing a record is better than losing the work.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

# Fail fast on an unreachable server instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

# MLflow 3's UI opens an experiment on its GenAI overview unless told otherwise: the experiment
# is tagged as model training, and the link jtm prints asks for the training runs page (the
# UI's GenAI / Model training switch is a per-browser setting that a URL parameter overrides).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


class Recorder:
    """One stage run's MLflow calls. `apply(op)` returns None, or the warning to give."""

    def __init__(self):
        self.stage, self._mlflow = "?", None

    def apply(self, op: dict) -> str | None:
        kind = op["op"]
        if kind == "start":
            return self._start(op["stage"], op["tracking"], op["tags"], op["params"], op.get("began"))
        if self._mlflow is None:  # tracking disabled: the start already warned
            return None
        handlers = {
            "metrics": self._metrics,
            "artifacts": self._artifacts,
            "child_run": self._child_run,
            "end": self._end,
        }
        try:
            handlers[kind](op)
        except Exception as err:  # any tracking failure: warn, keep working
            if kind == "end":
                self._mlflow = None
            return _FAILURES[kind].format(stage=self.stage, err=err, **op)
        return None

    def _start(self, stage: str, tracking: dict, tags: dict, params: dict, began: int | None) -> str | None:
        """Open the stage's run, started at `began` (ms since the epoch, the stage's own clock:
        a recorder process opens it a second or two later, after importing MLflow)."""
        self.stage = stage
        try:
            import mlflow

            _open_store(mlflow, tracking["tracking_uri"], tracking["experiment"])
            experiment = mlflow.get_experiment_by_name(tracking["experiment"]).experiment_id
            run = mlflow.MlflowClient().create_run(experiment, start_time=began, run_name=stage)
            mlflow.start_run(run_id=run.info.run_id)
            mlflow.set_tags({"stage": stage, "git_commit": git_commit()} | tags)
            mlflow.log_params(params)
        except Exception as err:
            return f"MLflow tracking disabled for stage {stage!r}: {err}"
        self._mlflow = mlflow
        return None

    def _metrics(self, op: dict) -> None:
        self._mlflow.log_metrics(op["values"], step=op["step"])

    def _artifacts(self, op: dict) -> None:
        path, under = op["path"], op["artifact_path"]
        log = self._mlflow.log_artifacts if os.path.isdir(path) else self._mlflow.log_artifact
        log(path, under)

    def _child_run(self, op: dict) -> None:
        """A nested run in a few batched calls: a study of hundreds of models costs seconds."""
        from mlflow.entities import Metric, Param

        client = self._mlflow.MlflowClient()
        parent = self._mlflow.active_run().info
        run = client.create_run(
            parent.experiment_id,
            run_name=op["name"],
            tags={"mlflow.parentRunId": parent.run_id, "stage": self.stage},
        )
        now = int(time.time() * 1000)
        values = [Metric(k, v, now, 0) for k, v in op["metrics"].items()]
        values += [Metric(k, v, now, i) for k, curve in op["curves"].items() for i, v in enumerate(curve)]
        entries = [Param(k, v) for k, v in op["params"].items()]
        for begin in range(0, max(len(values), len(entries)), 100):
            client.log_batch(
                run.info.run_id, metrics=values[begin : begin + 100], params=entries[begin : begin + 100]
            )
        client.set_terminated(run.info.run_id)

    def _end(self, op: dict) -> None:
        """Close the run at the stage's own end time (`ended`, ms), not the recorder's."""
        mlflow, self._mlflow = self._mlflow, None
        run_id = mlflow.active_run().info.run_id
        mlflow.end_run(status=op["status"])
        if op.get("ended") is not None:
            mlflow.MlflowClient().set_terminated(run_id, op["status"], end_time=op["ended"])


_FAILURES = {
    "metrics": "MLflow: could not log metrics for {stage!r}: {err}",
    "artifacts": "MLflow: could not log {path} for {stage!r}: {err}",
    "child_run": "MLflow: could not record {name!r} of {stage!r}: {err}",
    "end": "MLflow: could not close the run for {stage!r}: {err}",
}


def _open_store(mlflow, uri: str, experiment: str) -> None:
    """Point MLflow at `uri` and open `experiment` (created if new), in turn with other openers."""

    def open_experiment():
        mlflow.set_tracking_uri(uri)
        _open_experiment(mlflow, experiment, artifacts_beside(uri))

    in_turn(uri, open_experiment)


def open_client(uri: str):
    """An MlflowClient on `uri` whose store is opened (created if new) in turn with jtm's stages."""
    from mlflow.tracking import MlflowClient

    def opened():
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (and creates) the store
        return client

    return in_turn(uri, opened)


def in_turn(uri: str, action, attempts: int = 5):
    """`action()`'s result, with `action` opening the store at `uri` for the first time: safe
    when several processes open a new SQLite store at once (`snakemake --cores 2` on a fresh
    project). MLflow's SQL store creates its tables, and `set_experiment` an experiment, without
    a lock, so two first openers collide ("table already exists", "duplicate column"). jtm's
    openers take turns under a lock (in the temporary folder, keyed on the URI: nothing is
    written beside the store); an opener that is not jtm's (an MLflow UI, a client) may still
    collide, so on a SQLite store a failed `action` is retried once the other has finished.
    Other stores (a server) are tried once."""
    import filelock

    if not uri.startswith("sqlite:"):
        return action()
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    lock = filelock.FileLock(Path(tempfile.gettempdir()) / f"jtm-mlflow-{key}.lock")
    for attempt in range(attempts):
        try:
            with lock:
                return action()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2**attempt)


def _open_experiment(mlflow, name: str, artifact_location: str | None) -> None:
    """Make `name` the active experiment, tagged as model training so the UI opens on its runs;
    a new one keeps its artifacts at `artifact_location` (None: where the store decides)."""
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=artifact_location)
    experiment = mlflow.set_experiment(name)
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)


def artifacts_beside(uri: str) -> str | None:
    """Where a new experiment of a SQLite store keeps its artifacts: mlruns/ beside the store's
    file (sqlite:///mlflow.db: ./mlruns, MLflow's own default when run from the store's
    folder), whatever the working folder of the process that creates it. None for a server,
    which decides itself."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.removeprefix(prefix) in ("", ":memory:"):
        return None
    return (Path(uri.removeprefix(prefix)).resolve().parent / "mlruns").as_uri()
