"""Where a user browses the runs: the MLflow UI's page of the experiment's training runs."""

from __future__ import annotations

# The UI's GenAI / Model training switch is a per-browser setting that a URL parameter
# overrides (see EXPERIMENT_KIND in jtm/tracking/recorder.py).
RUNS_PAGE = "#/experiments/{id}/runs?workflowType=machine_learning"


def runs_page(tracking: dict, ui: str = "http://127.0.0.1:5000") -> str | None:
    """The UI page listing the experiment's training runs (None if the store has no such
    experiment yet, or cannot be read). `tracking`: params' mlflow section; `ui`: where
    `mlflow ui` serves (its default address)."""
    try:
        from jtm.tracking.recorder import open_client

        experiment = open_client(tracking["tracking_uri"]).get_experiment_by_name(tracking["experiment"])
    except Exception:
        return None
    return None if experiment is None else f"{ui}/{RUNS_PAGE.format(id=experiment.experiment_id)}"
