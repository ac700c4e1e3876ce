"""Glue for the engines: each Snakemake rule's resources from params and its `script:` run of the
stage; dvc.yaml's code deps and dvc.lock's entries kept to the stages that exist."""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from jtm.config import ClusterConfig, ConfigError, get_dotted, section, set_dotted
from jtm.runner import job_name, run_stage, stage_items, stage_paths
from jtm.stages import STAGES

# What a rule may ask for, as snakemake-executor-plugin-slurm reads it (runtime in minutes).
RESOURCES = ("mem_mb", "runtime", "gpu", "gres", "constraint")
# The rules that run networks, and the param naming the device each runs them on.
DEVICE_PARAMS = {
    "pretrain": "pretrain.device",
    "embed": "embed.device",
    "end_to_end": "downstream.e2e_device",
}


def params_source(workflow) -> str:
    """The params files Snakemake read (the Snakefile's and any --configfile), for error messages."""
    files = [str(f) for f in workflow.configfiles]
    return " + ".join(dict.fromkeys(files)) or "params.yaml"


def rule_resources(config: dict, rule: str) -> dict:
    """Snakemake `resources:` of `rule` from params' cluster section (zeros and nulls left out).

    Locally Snakemake counts them against `--resources`; the SLURM executor turns them into
    sbatch's --mem, --time, --gpus/--gres, --constraint, --partition and --account.
    """
    cluster = section(config, "cluster", ClusterConfig)
    unknown = sorted(set(cluster.rules) - set(STAGES))
    if unknown:
        raise ConfigError(f"cluster.rules: unknown rules {unknown}; rules are {list(STAGES)}")
    wanted = {"mem_mb": cluster.mem_mb, "runtime": cluster.runtime} | dict(cluster.rules.get(rule) or {})
    unknown = sorted(set(wanted) - set(RESOURCES))
    if unknown:
        raise ConfigError(f"cluster.rules.{rule}: unknown resources {unknown}; known: {list(RESOURCES)}")
    device = DEVICE_PARAMS.get(rule)
    if wanted.get("gpu") and (device is None or get_dotted(config, device) == "cpu"):
        gpus, runs = wanted["gpu"], f"{device} is cpu" if device else "it runs no network"
        raise ConfigError(f"cluster.rules.{rule} asks for {gpus} GPU(s), but {runs}")
    # Null in params: sbatch's own environment variables, as users of the cluster already set them.
    wanted["slurm_partition"] = cluster.partition or os.environ.get("SBATCH_PARTITION")
    wanted["slurm_account"] = cluster.account or os.environ.get("SBATCH_ACCOUNT")
    return {key: value for key, value in wanted.items() if value not in (None, 0, "")}


def cell_pattern(config: dict, rule: str, role: str = "cell") -> str:
    """A stage's output below its path, items as wildcards: results/cells/{task}/run{run}/{init}."""
    stage = STAGES[rule]
    return str(Path(get_dotted(config, stage.outputs[role])) / stage.cell)


def input_pattern(config: dict, rule: str, role: str) -> str:
    """A stage's input, one item's folder below its path as wildcards: results/pretrain/run{run}."""
    stage = STAGES[rule]
    return str(Path(get_dotted(config, stage.inputs[role])) / stage.input_cells[role])


def outputs_of(config: dict, *rules: str) -> list[str]:
    """Every item's output of these one-output rules: what a gathering rule lists as its input
    (the downstream rule every cell, the report every run's model and embeddings)."""
    return [
        str(path)
        for rule in rules
        for item in stage_items(STAGES[rule], config)
        for path in stage_paths(STAGES[rule], config, item)[1].values()
    ]


def cells(config: dict) -> list[str]:
    """Every cell folder of the study: what the downstream rule gathers."""
    return outputs_of(config, "probe", "probe_fixed", "end_to_end")


def ingest_files(config: dict) -> list[str]:
    """Every audio file of `ingest.corpora`: the ingest rule's inputs (Snakemake reruns it when
    one is added, changed or removed)."""
    from jtm.ingest.discover import corpora_from_params, discover

    corpora = corpora_from_params(get_dotted(config, "ingest.corpora"))
    return [candidate.path for corpus in corpora for candidate in discover(corpus)]


def run_snakemake_rule(smk) -> None:
    """Run stage `smk.rule` with the rule's inputs, outputs, wildcards and config; log to `smk.log[0]`.

    The stage's worker count becomes the rule's `threads`, so `--cores N` is never exceeded. A
    rule input that lists several paths (the downstream cells) is passed as its params folder.
    `pretrain` given several GPUs runs one DDP process per GPU under torchrun.
    """
    stage = STAGES[smk.rule]
    params = copy.deepcopy(dict(smk.config))
    if stage.workers:
        set_dotted(params, stage.workers, int(smk.threads))
    inputs = {
        role: Path(smk.input[role]) if isinstance(smk.input[role], str) else Path(get_dotted(params, key))
        for role, key in stage.inputs.items()
    }
    outputs = {role: Path(smk.output[role]) for role in stage.outputs}
    item = {name: smk.wildcards[name] for name in stage.matrix}
    processes = int(smk.resources.get("gpu", 0) or 0)
    with open(smk.log[0], "w") as log, contextlib.redirect_stderr(log):
        if stage.name == "pretrain" and processes > 1:
            _torchrun(stage.name, params, inputs | outputs, item, processes, log)
            return
        metrics = run_stage(stage.name, params, inputs, outputs, item)
        print(f"{stage.name}: {metrics}", file=sys.stderr)


def _torchrun(name: str, params: dict, paths: dict[str, Path], item: dict, processes: int, log) -> None:
    """`torchrun --standalone --nproc-per-node N -m jtm.cli <stage> <item>` on these params and
    inputs; its outputs are where params and the item put them, as the rule's are."""
    stage = STAGES[name]
    for role, key in stage.inputs.items():
        if role not in stage.input_cells:
            set_dotted(params, key, str(paths[role]))
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "params.yaml"
        file.write_text(yaml.safe_dump(params, sort_keys=False))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc-per-node={processes}", "-m", "jtm.cli", name, *map(str, item.values())]
        command += ["--params", str(file)]
        print(" ".join(command), file=log, flush=True)
        subprocess.run(command, stdout=log, stderr=log, check=True)


def dvc_yaml_with_code(text: str) -> str:
    """dvc.yaml's text with each stage's code deps (its `- jtm/...` lines) replaced by the
    computed list (jtm.stages), after the stage's other deps; comments and all else kept."""
    lines, out = text.splitlines(), []
    stage, in_deps = None, False
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if in_deps and not (indent == 6 and line.lstrip().startswith("- ")):
            out += [f"      - {path}" for path in STAGES[stage].code]
            in_deps = False
        if indent == 2 and line.rstrip().endswith(":") and line.strip()[:-1] in STAGES:
            stage = line.strip()[:-1]
        elif line == "    deps:" and stage:
            in_deps = True
        elif in_deps and line.strip().startswith("- jtm/"):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def write_dvc_code(path: str | Path = "dvc.yaml") -> bool:
    """Rewrite `path`'s code deps from the import graph; whether anything changed."""
    path = Path(path)
    old = path.read_text()
    new = dvc_yaml_with_code(old)
    if new != old:
        path.write_text(new)
    return new != old


DVC_ONLY = ("survey",)  # dvc.yaml's helper stage (the corpora's digest that ingest depends on)


def dvc_stage_names(params: dict) -> set[str]:
    """The stages dvc.yaml declares under `params`, as DVC names them (`probe@0`, `index`)."""
    jobs = {job_name(name, item) for name, stage in STAGES.items() for item in stage_items(stage, params)}
    return jobs | set(DVC_ONLY)


def prune_dvc_lock(params: dict, path: str | Path = "dvc.lock") -> list[str]:
    """Drop `path`'s entries for stages dvc.yaml no longer declares under `params` (a renamed
    stage, a run taken out of `pretrain.runs`); the names dropped, the rest kept byte for byte.

    DVC keeps such entries forever, and after every stage it parses and rewrites the whole lock
    (ruamel.yaml, ~1 s per 3 000 lines on a 2-core EPYC): a lock grown to 11 000 lines made each
    stage of the demo 3 s slower. A dropped stage's outputs stay in DVC's run cache.
    """
    path = Path(path)
    if not path.is_file():
        return []
    live, kept, dropped, keep = dvc_stage_names(params), [], [], True
    for line in path.read_text().splitlines(keepends=True):
        if not line.startswith(" "):  # schema:, stages:
            keep = True
        elif not line.startswith("   ") and line.rstrip().endswith(":"):  # a stage's name
            name = line.strip()[:-1].strip("'\"")
            keep = name in live
            dropped += [] if keep else [name]
        if keep:
            kept.append(line)
    if dropped:
        path.write_text("".join(kept))
    return dropped
