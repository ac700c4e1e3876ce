# Window embeddings for downstream tasks (see jtm/features/embed.py).


rule embed:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        model=rules.pretrain.output.model,
        code=STAGES["embed"].code,
    output:
        embeddings=directory(config["paths"]["embeddings"]),
    log:
        "logs/embed.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["embed"]["threads"]
    resources:
        **rule_resources(config, "embed"),
    params:
        read=subset(config, STAGES["embed"].params),
    script:
        "../scripts/embed.py"


# The downstream study, one job per cell (see jtm/downstream/cell.py), then gathered
# (jtm/downstream/collect.py). Cells run side by side: locally as --cores allows, on a cluster at once.


rule probe:
    input:
        index=rules.index.output.index,
        embeddings=rules.embed.output.embeddings,
        code=STAGES["probe"].code,
    output:
        cell=directory(cell_pattern(config, "probe")),
    log:
        "logs/probe/{task}.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["downstream"]["threads"]
    resources:
        **rule_resources(config, "probe"),
    params:
        read=subset(config, STAGES["probe"].params),
    script:
        "../scripts/probe.py"


rule end_to_end:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        model=rules.pretrain.output.model,
        code=STAGES["end_to_end"].code,
    output:
        cell=directory(cell_pattern(config, "end_to_end")),
    log:
        "logs/end_to_end/{task}/{init}.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["downstream"]["threads"]
    resources:
        **rule_resources(config, "end_to_end"),
    params:
        read=subset(config, STAGES["end_to_end"].params),
    script:
        "../scripts/end_to_end.py"


rule downstream:
    input:
        cells=cells(config),
        code=STAGES["downstream"].code,
    output:
        results=directory(config["paths"]["downstream"]),
        metrics=directory(config["paths"]["metrics"]),
    log:
        "logs/downstream.log",
    conda:
        "../envs/jtm.yaml"
    threads: 1
    resources:
        **rule_resources(config, "downstream"),
    params:
        read=subset(config, STAGES["downstream"].params),
    script:
        "../scripts/downstream.py"


# The study's report (see jtm/report/build.py).


rule report:
    input:
        index=rules.index.output.index,
        model=rules.pretrain.output.model,
        embeddings=rules.embed.output.embeddings,
        results=rules.downstream.output.results,
        code=STAGES["report"].code,
    output:
        html=config["paths"]["report"],
        markdown=config["paths"]["report_md"],
        figures=directory(config["paths"]["figures"]),
    log:
        "logs/report.log",
    conda:
        "../envs/jtm.yaml"
    threads: 1
    resources:
        **rule_resources(config, "report"),
    params:
        read=subset(config, STAGES["report"].params),
    script:
        "../scripts/report.py"
