"""Snakemake glue for stage `probe_fixed`: see jtm.stages."""

from jtm.workflow import run_snakemake_rule

run_snakemake_rule(snakemake)  # noqa: F821 (injected by Snakemake)
