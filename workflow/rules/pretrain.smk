# CPC pretraining on the index's train windows (see jtm/train/pretrain.py), one job per run.


rule pretrain:
    input:
        index=rules.index.output.index,
        audio16k=rules.resample.output.audio16k,
        ingest=rules.ingest.output.ingest,
        leakage=rules.leakage.output.leakage,
        code=STAGES["pretrain"].code,
    output:
        model=directory(cell_pattern(config, "pretrain", "model")),
    log:
        "logs/pretrain/run{run}.log",
    conda:
        "../envs/jtm.yaml"
    # torch's threads plus the loader's worker processes or fetch threads: every CPU the job keeps busy
    threads:
        config["pretrain"]["threads"]
        + config["pretrain"]["workers"]
        + config["pretrain"]["fetch_threads"]
    resources:
        **rule_resources(config, "pretrain"),
    params:
        read=subset(config, STAGES["pretrain"].params),
    script:
        "../scripts/pretrain.py"
