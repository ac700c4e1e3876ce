"""The study's design: which methods a task is studied with, at which label budgets and seeds,
and in which cell (job) each is trained. Torch-free: the workflow and the gatherer read it too.

A method is a frozen feature set with a probe head (`cpc-linear`, `logmel-mlp`, ...) or an
end-to-end baseline (`supervised`, `finetune`). A method is per run when a pretraining run gives
it its own model (cpc, its random-init control, both end-to-end baselines); log-mel is fixed. A
cell is one task's models of one job: a task's probes on one run's features
(`run<r>/probes/<task>`: one job, `probe@<r>`, trains every task's), on the fixed features
(`fixed/probes/<task>`: job `probe_fixed`), or an end-to-end init on a task in a run
(`run<r>/<init>/<task>`: job `end_to_end@<task>-<init>-<r>`).
"""

from __future__ import annotations

from dataclasses import dataclass

from jtm import choices
from jtm.config import ConfigError, DownstreamConfig

# Every method the study knows, in report order: dvc.yaml's plots name them all.
ALL_METHODS = [f"{f}-{p}" for f in choices.FEATURES for p in choices.PROBES] + list(choices.INITS)


@dataclass(frozen=True)
class Method:
    name: str
    feature: str  # an embed feature set, or "audio" for end-to-end training
    head: str  # a probe head (linear | mlp); end-to-end baselines use a linear one
    kind: str  # "probe", "supervised" or "finetune"

    @property
    def per_run(self) -> bool:
        """Whether each pretraining run gives this method its own models."""
        return self.kind != "probe" or self.feature in choices.LEARNED_FEATURES

    def cell(self, task: str, run: int | None = None) -> str:
        """The folder, below the cells' path, of the cell this method is trained in on `task`
        (in run `run`)."""
        if not self.per_run:
            return f"fixed/probes/{task}"
        return f"run{run}/" + ("probes" if self.kind == "probe" else self.name) + f"/{task}"


def methods(cfg: DownstreamConfig, task: str) -> list[Method]:
    """The methods a task is studied with, in report order."""
    found = [Method(f"{f}-{p}", f, p, "probe") for f in cfg.features for p in cfg.probes]
    if task in cfg.end_to_end_tasks:
        found += [Method(init, "audio", "linear", init) for init in cfg.end_to_end]
    return found


def cell_methods(task: str, item: dict[str, str], cfg: DownstreamConfig) -> list[Method]:
    """The methods one job trains on `task`: for a matrix item {} (fixed-feature probes), {run}
    (the run's probes) or {task, init, run} (one end-to-end baseline)."""
    if task not in choices.TASKS:
        raise ConfigError(f"task {task!r}: known tasks are {list(choices.TASKS)}")
    if "init" not in item:
        per_run = "run" in item
        return [m for m in methods(cfg, task) if m.kind == "probe" and m.per_run == per_run]
    if item["init"] not in choices.INITS:
        raise ConfigError(f"init {item['init']!r}: known inits are {list(choices.INITS)}")
    return [Method(item["init"], "audio", "linear", item["init"])]


def budget(cfg: DownstreamConfig, method: Method, framewise: bool) -> tuple[tuple[int, ...], tuple]:
    """(seeds, label budgets) a method is trained at: the demo's budget lives in params."""
    if method.kind != "probe":
        return cfg.end_to_end_seeds, cfg.end_to_end_budgets
    return (cfg.transcription_seeds if framewise else cfg.seeds), cfg.budgets
