# Window embeddings for downstream tasks (see jtm/features/embed.py): each pretraining run's
# (cpc and its random-init control), and the fixed ones (log-mel) once.


rule embed:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        model=input_pattern(config, "embed", "model"),
        code=STAGES["embed"].code,
    output:
        embeddings=directory(cell_pattern(config, "embed", "embeddings")),
    log:
        "logs/embed/run{run}.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["embed"]["threads"]
    resources:
        **rule_resources(config, "embed"),
    params:
        read=subset(config, STAGES["embed"].params),
    script:
        "../scripts/embed.py"


rule embed_fixed:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        code=STAGES["embed_fixed"].code,
    output:
        embeddings=directory(cell_pattern(config, "embed_fixed", "embeddings")),
    log:
        "logs/embed_fixed.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["embed"]["threads"]
    resources:
        **rule_resources(config, "embed_fixed"),
    params:
        read=subset(config, STAGES["embed_fixed"].params),
    script:
        "../scripts/embed_fixed.py"


# The downstream study: a job per run's probes (a cell per task), the fixed features' probes and
# each end-to-end cell (see jtm/downstream/cell.py), then gathered (jtm/downstream/collect.py). Jobs
# run side by side: locally as --cores allows, on a cluster at once.


rule probe:
    input:
        index=rules.index.output.index,
        embeddings=input_pattern(config, "probe", "embeddings"),
        code=STAGES["probe"].code,
    output:
        cell=directory(cell_pattern(config, "probe")),
    log:
        "logs/probe/run{run}.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["downstream"]["threads"]
    resources:
        **rule_resources(config, "probe"),
    params:
        read=subset(config, STAGES["probe"].params),
    script:
        "../scripts/probe.py"


rule probe_fixed:
    input:
        index=rules.index.output.index,
        embeddings=input_pattern(config, "probe_fixed", "embeddings"),
        code=STAGES["probe_fixed"].code,
    output:
        cell=directory(cell_pattern(config, "probe_fixed")),
    log:
        "logs/probe_fixed.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["downstream"]["threads"]
    resources:
        **rule_resources(config, "probe_fixed"),
    params:
        read=subset(config, STAGES["probe_fixed"].params),
    script:
        "../scripts/probe_fixed.py"


rule end_to_end:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        model=input_pattern(config, "end_to_end", "model"),
        code=STAGES["end_to_end"].code,
    output:
        cell=directory(cell_pattern(config, "end_to_end")),
    log:
        "logs/end_to_end/{task}/run{run}/{init}.log",
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
        model=outputs_of(config, "pretrain"),
        embeddings=outputs_of(config, "embed", "embed_fixed"),
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
