"""MLflow records every stage run; it never decides anything and never breaks a stage.

One run per stage invocation: the stage's params, its figures (hours processed, x realtime, ...)
and tags (stage, git commit, params hash). If the tracking store cannot be reached the stage
warns once and carries on: losing a record is better than losing the work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Iterator

from jtm.config.load import params_hash

log = logging.getLogger(__name__)

# Fail fast on an unreachable server instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


class Tracker:
    """What a stage logs to: curves, final figures and artifacts. A no-op when tracking is off."""

    def __init__(self, stage: str, mlflow_module=None):
        self.stage, self._mlflow = stage, mlflow_module

    def metrics(self, values: dict, step: int | None = None) -> None:
        if self._mlflow is None:
            return
        try:
            self._mlflow.log_metrics({k: float(v) for k, v in values.items()}, step=step)
        except Exception as err:
            warnings.warn(f"MLflow: could not log metrics for {self.stage!r}: {err}", stacklevel=2)

    def artifacts(self, path, artifact_path: str | None = None) -> None:
        """A file, or every file under a folder, below `artifact_path` in the run's artifacts."""
        if self._mlflow is None:
            return
        log = self._mlflow.log_artifacts if os.path.isdir(path) else self._mlflow.log_artifact
        try:
            log(str(path), artifact_path)
        except Exception as err:
            warnings.warn(f"MLflow: could not log {path} for {self.stage!r}: {err}", stacklevel=2)

    def child_run(self, name: str, params: dict, metrics: dict, curves: dict[str, list[float]]) -> None:
        """Record one model of the stage (e.g. a downstream cell and seed) as a nested run.

        Written in a few batched calls: a study of hundreds of models costs seconds, not minutes.
        """
        if self._mlflow is None:
            return
        try:
            from mlflow.entities import Metric, Param

            client = self._mlflow.MlflowClient()
            parent = self._mlflow.active_run().info
            run = client.create_run(
                parent.experiment_id,
                run_name=name,
                tags={"mlflow.parentRunId": parent.run_id, "stage": self.stage},
            )
            now = int(time.time() * 1000)
            values = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
            values += [
                Metric(k, float(v), now, i) for k, curve in curves.items() for i, v in enumerate(curve)
            ]
            entries = [Param(k, str(v)[:6000]) for k, v in params.items()]
            for begin in range(0, max(len(values), len(entries)), 100):
                client.log_batch(
                    run.info.run_id, metrics=values[begin : begin + 100], params=entries[begin : begin + 100]
                )
            client.set_terminated(run.info.run_id)
        except Exception as err:
            warnings.warn(f"MLflow: could not record {name!r} of {self.stage!r}: {err}", stacklevel=2)


# MLflow 3's UI opens an experiment on its GenAI overview unless told otherwise: the experiment
# is tagged as model training, and the link jtm prints asks for the training runs page (the
# UI's GenAI / Model training switch is a per-browser setting that a URL parameter overrides).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
RUNS_PAGE = "#/experiments/{id}/runs?workflowType=machine_learning"


def runs_page(tracking: dict, ui: str = "http://127.0.0.1:5000") -> str | None:
    """The UI page listing the experiment's training runs (None if the store has no such
    experiment yet, or cannot be read). `tracking`: params' mlflow section; `ui`: where
    `mlflow ui` serves (its default address)."""
    try:
        from mlflow.tracking import MlflowClient

        experiment = MlflowClient(tracking["tracking_uri"]).get_experiment_by_name(tracking["experiment"])
    except Exception:
        return None
    return None if experiment is None else f"{ui}/{RUNS_PAGE.format(id=experiment.experiment_id)}"


def _open_experiment(mlflow, name: str) -> None:
    """Make `name` the active experiment, tagged as model training so the UI opens on its runs."""
    experiment = mlflow.set_experiment(name)
    for key, value in EXPERIMENT_KIND.items():
        if experiment.tags.get(key) != value:
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)


@contextlib.contextmanager
def stage_run(stage: str, tracking: dict, values: dict) -> Iterator[Tracker]:
    """Open an MLflow run for `stage`; yield its `Tracker`.

    `tracking` is the params' mlflow section (tracking_uri, experiment); `values` the dotted
    params the stage reads. Tracking errors become one warning; stage errors propagate. Under
    torchrun only rank 0 tracks.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        yield Tracker(stage)
        return
    mlflow = None
    try:
        import mlflow

        mlflow.set_tracking_uri(tracking["tracking_uri"])
        _open_experiment(mlflow, tracking["experiment"])
        mlflow.start_run(run_name=stage)
        mlflow.set_tags({"stage": stage, "git_commit": git_commit(), "params_hash": params_hash(values)})
        mlflow.log_params({key: str(value)[:6000] for key, value in values.items()})
    except Exception as err:  # any tracking failure: warn, keep working
        warnings.warn(f"MLflow tracking disabled for stage {stage!r}: {err}", stacklevel=3)
        mlflow = None
    status = "FAILED"
    try:
        yield Tracker(stage, mlflow)
        status = "FINISHED"
    finally:
        if mlflow is not None:
            try:
                mlflow.end_run(status=status)
            except Exception as err:
                warnings.warn(f"MLflow: could not close the run for {stage!r}: {err}", stacklevel=2)
