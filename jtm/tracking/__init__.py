"""MLflow records every stage run; it never decides anything and never breaks a stage.

One run per stage invocation: the stage's params, its figures (hours processed, x realtime, ...)
and tags (stage, git commit, params hash). If the tracking store cannot be reached the stage
warns once and carries on: losing a record is better than losing the work.

The MLflow calls are made by a recorder (jtm/tracking/recorder.py). Params' `mlflow.recorder`
says where it runs: `process`, a process of its own started with the stage, so importing MLflow
and opening its store overlap the stage's work (jtm/tracking/process.py); `inline`, the stage's
own process; `auto`, inline where MLflow is imported already (it then costs nothing more), else
a process; `none`, no record at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator

from jtm.config.load import params_hash
from jtm.tracking.recorder import Recorder, git_commit, open_client
from jtm.tracking.ui import runs_page

__all__ = ["Tracker", "git_commit", "open_client", "runs_page", "stage_run"]


class Tracker:
    """What a stage logs to: curves, final figures and artifacts. A no-op when tracking is off."""

    def __init__(self, stage: str, recorder=None):
        self.stage, self._recorder = stage, recorder

    def metrics(self, values: dict, step: int | None = None) -> None:
        self._send({"op": "metrics", "values": {k: float(v) for k, v in values.items()}, "step": step})

    def artifacts(self, path, artifact_path: str | None = None) -> None:
        """A file, or every file under a folder, below `artifact_path` in the run's artifacts.
        Returns once logged: the stage may move `path` afterwards."""
        self._send({"op": "artifacts", "path": str(path), "artifact_path": artifact_path}, flush=True)

    def child_run(self, name: str, params: dict, metrics: dict, curves: dict[str, list[float]]) -> None:
        """Record one model of the stage (e.g. a downstream cell and seed) as a nested run."""
        self._send(
            {
                "op": "child_run",
                "name": name,
                "params": {k: str(v)[:6000] for k, v in params.items()},
                "metrics": {k: float(v) for k, v in metrics.items()},
                "curves": {k: [float(v) for v in curve] for k, curve in curves.items()},
            }
        )

    def _send(self, op: dict, flush: bool = False) -> None:
        if self._recorder is None:
            return
        self._recorder.send(op)
        if flush:
            self._recorder.flush()
        _warn(self._recorder.warnings())


class _Inline:
    """The recorder in the stage's own process: the `RecorderProcess` interface, applied at once."""

    def __init__(self):
        self._recorder, self._warnings = Recorder(), []

    def send(self, op: dict) -> None:
        if (warning := self._recorder.apply(op)) is not None:
            self._warnings.append(warning)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def warnings(self) -> list[str]:
        taken, self._warnings = self._warnings, []
        return taken


def _start_recorder(where: str):
    if where == "inline" or (where == "auto" and "mlflow" in sys.modules):
        return _Inline()
    from jtm.tracking.process import RecorderProcess

    return RecorderProcess()


def _warn(messages: list[str]) -> None:
    for message in messages:
        warnings.warn(message, stacklevel=4)


@contextlib.contextmanager
def stage_run(stage: str, tracking: dict, values: dict) -> Iterator[Tracker]:
    """Open an MLflow run for `stage`; yield its `Tracker`.

    `tracking` is the params' mlflow section (tracking_uri, experiment, recorder); `values` the
    dotted params the stage reads. Tracking errors become warnings; stage errors propagate.
    Under torchrun only rank 0 tracks; with `recorder: none`, nothing does.
    """
    if int(os.environ.get("RANK", "0")) != 0 or tracking["recorder"] == "none":
        yield Tracker(stage)
        return
    try:
        recorder = _start_recorder(tracking["recorder"])
    except OSError as err:
        warnings.warn(f"MLflow tracking disabled for stage {stage!r}: {err}", stacklevel=3)
        yield Tracker(stage)
        return
    params = {key: str(value)[:6000] for key, value in values.items()}
    tags = {"params_hash": params_hash(values)}
    began = int(time.time() * 1000)  # the stage's clock: MLflow's run spans the stage's work
    recorder.send(
        {"op": "start", "stage": stage, "tracking": tracking, "tags": tags, "params": params, "began": began}
    )
    _warn(recorder.warnings())
    status = "FAILED"
    try:
        yield Tracker(stage, recorder)
        status = "FINISHED"
    finally:
        recorder.send({"op": "end", "status": status, "ended": int(time.time() * 1000)})
        recorder.close()
        _warn(recorder.warnings())
