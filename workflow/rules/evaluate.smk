# Window embeddings for downstream tasks (see jtm/eval/embed.py).


rule embed:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        model=rules.pretrain.output.model,
        code=["jtm/eval/embed.py", "jtm/models"],
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
        read=subset(
            config,
            [
                "embed.features",
                "embed.layer",
                "embed.seed",
                "embed.batch_size",
                "embed.threads",
            ],
        ),
    script:
        "../scripts/embed.py"


# The downstream study, one job per cell (see jtm/train/downstream.py), then gathered
# (jtm/eval/collect.py). Cells run side by side: locally as --cores allows, on a cluster at once.


rule probe:
    input:
        index=rules.index.output.index,
        embeddings=rules.embed.output.embeddings,
        code=[
            "jtm/train/downstream.py",
            "jtm/eval/labels.py",
            "jtm/eval/subsets.py",
            "jtm/eval/metrics.py",
            "jtm/train/probe.py",
        ],
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
        read=subset(
            config,
            [
                "downstream.features",
                "downstream.heads",
                "downstream.mlp_hidden",
                "downstream.fractions",
                "downstream.seeds",
                "downstream.transcription_seeds",
                "downstream.lr",
                "downstream.weight_decay",
                "downstream.batch_size",
                "downstream.frame_batch_size",
                "downstream.max_epochs",
                "downstream.patience",
                "downstream.excerpt_windows",
                "downstream.threads",
            ],
        ),
    script:
        "../scripts/probe.py"


rule end_to_end:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        model=rules.pretrain.output.model,
        code=[
            "jtm/train/downstream.py",
            "jtm/eval/labels.py",
            "jtm/eval/subsets.py",
            "jtm/eval/metrics.py",
            "jtm/train/end_to_end.py",
        ],
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
        read=subset(
            config,
            [
                "downstream.end_to_end_fractions",
                "downstream.end_to_end_seeds",
                "downstream.e2e_steps",
                "downstream.e2e_batch_size",
                "downstream.e2e_lr",
                "downstream.e2e_val_every",
                "downstream.e2e_val_windows",
                "downstream.excerpt_windows",
                "downstream.threads",
            ],
        ),
    script:
        "../scripts/end_to_end.py"


rule downstream:
    input:
        cells=cells(config),
        code=["jtm/eval/collect.py"],
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
        read=subset(
            config,
            [
                "downstream.tasks",
                "downstream.features",
                "downstream.heads",
                "downstream.end_to_end",
                "downstream.end_to_end_tasks",
            ],
        ),
    script:
        "../scripts/downstream.py"


# The study's report (see jtm/report/build.py).


rule report:
    input:
        index=rules.index.output.index,
        model=rules.pretrain.output.model,
        embeddings=rules.embed.output.embeddings,
        results=rules.downstream.output.results,
        code=["jtm/report"],
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
        read=subset(
            config,
            [
                "report.seed",
                "report.projection_windows",
            ],
        ),
    script:
        "../scripts/report.py"
