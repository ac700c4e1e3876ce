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


# Probes and end-to-end baselines on the labelled tasks (see jtm/train/downstream.py).


rule downstream:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        model=rules.pretrain.output.model,
        embeddings=rules.embed.output.embeddings,
        code=[
            "jtm/train/downstream.py",
            "jtm/train/probe.py",
            "jtm/train/end_to_end.py",
            "jtm/eval/labels.py",
            "jtm/eval/subsets.py",
            "jtm/eval/metrics.py",
        ],
    output:
        results=directory(config["paths"]["downstream"]),
        metrics=directory(config["paths"]["metrics"]),
    log:
        "logs/downstream.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["downstream"]["threads"]
    params:
        read=subset(
            config,
            [
                "downstream.tasks",
                "downstream.features",
                "downstream.heads",
                "downstream.mlp_hidden",
                "downstream.end_to_end",
                "downstream.end_to_end_tasks",
                "downstream.end_to_end_fractions",
                "downstream.fractions",
                "downstream.seeds",
                "downstream.transcription_seeds",
                "downstream.end_to_end_seeds",
                "downstream.lr",
                "downstream.weight_decay",
                "downstream.batch_size",
                "downstream.frame_batch_size",
                "downstream.max_epochs",
                "downstream.patience",
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
