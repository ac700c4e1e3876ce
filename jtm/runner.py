"""Run the stages of jtm.stages: where DVC's commands, Snakemake's scripts and `jtm <stage>` meet.

`run_stage` resolves a stage's paths from params (or takes the engine's), checks its inputs
exist, and runs it inside an MLflow run; `run_all` runs the DAG in order, in-process.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from jtm.config import ConfigError, get_dotted, subset, validate_params
from jtm.errors import DataError
from jtm.stages import STAGES, Stage
from jtm.tracking import stage_run


def stage_items(stage: Stage, params: dict) -> list[dict[str, str]]:
    """The items a matrix stage runs for (every combination of its params lists); [{}] otherwise."""
    names = list(stage.matrix)
    values = [list(get_dotted(params, key)) for key in stage.matrix.values()]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def job_name(name: str, item: dict) -> str:
    """As DVC names a stage's job: `index`, or a matrix item's `end_to_end@ensemble-finetune-0`
    (also its MLflow run's name)."""
    return f"{name}@" + "-".join(str(v) for v in item.values()) if item else name


def stage_paths(
    stage: Stage, params: dict, item: dict | None = None
) -> tuple[dict[str, Path], dict[str, Path]]:
    """The stage's input and output paths as params name them (a matrix item's cell below)."""
    inputs = {role: Path(get_dotted(params, key)) for role, key in stage.inputs.items()}
    outputs = {role: Path(get_dotted(params, key)) for role, key in stage.outputs.items()}
    if stage.matrix and (item is None or set(item) != set(stage.matrix)):
        raise ConfigError(f"stage {stage.name!r} runs per item: give {', '.join(stage.matrix)}")
    item = item or {}
    inputs |= {role: inputs[role] / pattern.format(**item) for role, pattern in stage.input_cells.items()}
    if stage.cell:
        outputs = {role: path / stage.cell.format(**item) for role, path in outputs.items()}
    return inputs, outputs


def run_stage(
    name: str, params: dict, inputs: dict | None = None, outputs: dict | None = None, item: dict | None = None
) -> dict:
    """Run one stage (one item of a matrix stage) inside an MLflow run; paths default to params'.

    Inputs the stage does not read under these params (`Stage.input_when`) are neither
    required nor passed.
    """
    validate_params(params, source=None)
    stage = STAGES[name]
    item = dict(item or {})
    default_inputs, default_outputs = stage_paths(stage, params, item)
    inputs = {k: Path(v) for k, v in (inputs or default_inputs).items() if stage.needs(k, params)}
    outputs = {k: Path(v) for k, v in (outputs or default_outputs).items()}
    for role, path in inputs.items():
        if not path.exists():
            raise DataError(
                path, f"input {role!r} of stage {name!r} not found: run the stage that makes it first"
            )
    with stage_run(job_name(name, item), params["mlflow"], subset(params, list(stage.params))) as tracker:
        metrics = stage.run(params, inputs, outputs, tracker, item)
        tracker.metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
    return metrics


def run_all(params: dict, names: list[str] | None = None) -> None:
    """Run stages in order (every item of a matrix stage): what `dvc repro` does, in-process."""
    for name in names or list(STAGES):
        for item in stage_items(STAGES[name], params):
            run_stage(name, params, item=item)
