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
