"""Snakemake glue for stage `leakage`: see jtm.stages."""

from jtm.workflow import run_snakemake_rule

run_snakemake_rule(snakemake)  # noqa: F821 (injected by Snakemake)
