# CPC pretraining on the index's train windows (see jtm/train/pretrain.py).


rule pretrain:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        code=[
            "jtm/train/pretrain.py",
            "jtm/train/infonce.py",
            "jtm/data/sampling.py",
            "jtm/data/windows.py",
            "jtm/models",
        ],
    output:
        model=directory(config["paths"]["pretrain"]),
    log:
        "logs/pretrain.log",
    conda:
        "../envs/jtm.yaml"
    # torch's threads plus the DataLoader's worker processes: every CPU the job keeps busy
    threads: config["pretrain"]["threads"] + config["pretrain"]["workers"]
    resources:
        **rule_resources(config, "pretrain"),
    params:
        read=subset(
            config,
            [
                "pretrain.seed",
                "pretrain.encoder",
                "pretrain.sinc_kernel",
                "pretrain.hidden",
                "pretrain.norm",
                "pretrain.context",
                "pretrain.context_layers",
                "pretrain.heads",
                "pretrain.head",
                "pretrain.n_predicts",
                "pretrain.reverse",
                "pretrain.n_negatives",
                "pretrain.sampling",
                "pretrain.category",
                "pretrain.batch_size",
                "pretrain.jitter",
                "pretrain.lr",
                "pretrain.betas",
                "pretrain.eps",
                "pretrain.warmup_steps",
                "pretrain.decay_every",
                "pretrain.decay_gamma",
                "pretrain.steps",
                "pretrain.log_every",
                "pretrain.val_every",
                "pretrain.val_batches",
                "pretrain.threads",
                "pretrain.bf16",
            ],
        ),
    script:
        "../scripts/pretrain.py"
