"""Glue for Snakemake's `script:` directive: run the rule's stage with the rule's paths."""

from __future__ import annotations

import contextlib
import copy
import sys

from jtm.config import set_dotted
from jtm.stages import STAGES, run_stage


def run_snakemake_rule(smk) -> None:
    """Run stage `smk.rule` with the rule's inputs, outputs and config; log to `smk.log[0]`.

    The stage's worker count becomes the rule's `threads`, so `--cores N` is never exceeded.
    """
    stage = STAGES[smk.rule]
    params = copy.deepcopy(dict(smk.config))
    if stage.workers:
        set_dotted(params, stage.workers, int(smk.threads))
    inputs = {role: smk.input[role] for role in stage.inputs}
    outputs = {role: smk.output[role] for role in stage.outputs}
    with open(smk.log[0], "w") as log, contextlib.redirect_stderr(log):
        metrics = run_stage(stage.name, params, inputs, outputs)
        print(f"{stage.name}: {metrics}", file=sys.stderr)
