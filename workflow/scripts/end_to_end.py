"""Snakemake glue for stage `end_to_end`: see jtm.stages."""

from jtm.workflow import run_snakemake_rule

run_snakemake_rule(snakemake)  # noqa: F821 (injected by Snakemake)
