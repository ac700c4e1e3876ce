# jtm pipeline for Snakemake: the same stages, inputs, outputs and params as dvc.yaml
# (tests/test_dag.py checks). `snakemake --cores 2` builds everything; see the README.


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    input:
        rules.report.output,
