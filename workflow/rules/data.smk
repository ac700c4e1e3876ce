# Data stages: demo scores -> raw MusicNet-format corpus -> 16 kHz arrays -> Parquet index.
# `params: read=` holds the values of the params keys a rule reads: a change reruns it.


rule demo_scores:
    input:
        code=STAGES["demo_scores"].code,
    output:
        scores=directory(config["paths"]["scores"]),
    log:
        "logs/demo_scores.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["demo"]["workers"]
    resources:
        **rule_resources(config, "demo_scores"),
    params:
        read=subset(config, STAGES["demo_scores"].params),
    script:
        "../scripts/demo_scores.py"


rule acquire:
    input:
        scores=rules.demo_scores.output.scores if needs_scores else [],
        code=STAGES["acquire"].code,
    output:
        raw=directory(config["paths"]["raw"]),
    log:
        "logs/acquire.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["demo"]["workers"]
    resources:
        **rule_resources(config, "acquire"),
    params:
        read=subset(config, STAGES["acquire"].params),
    script:
        "../scripts/acquire.py"


rule resample:
    input:
        raw=rules.acquire.output.raw,
        code=STAGES["resample"].code,
    output:
        audio16k=directory(config["paths"]["audio16k"]),
    log:
        "logs/resample.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["resample"]["workers"]
    resources:
        **rule_resources(config, "resample"),
    params:
        read=subset(config, STAGES["resample"].params),
    script:
        "../scripts/resample.py"


rule index:
    input:
        audio16k=rules.resample.output.audio16k,
        code=STAGES["index"].code,
    output:
        index=directory(config["paths"]["index"]),
    log:
        "logs/index.log",
    conda:
        "../envs/jtm.yaml"
    resources:
        **rule_resources(config, "index"),
    params:
        read=subset(config, STAGES["index"].params),
    script:
        "../scripts/index.py"


# Unlabeled corpora -> 16 kHz shards (see jtm/ingest/stage.py): the corpora's audio files are the
# rule's inputs, so a file added to a listed folder reruns it (finished shards are reused).
rule ingest:
    input:
        audio=ingest_files(config),
        code=STAGES["ingest"].code,
    output:
        ingest=directory(config["paths"]["ingest"]),
    log:
        "logs/ingest.log",
    conda:
        "../envs/jtm.yaml"
    threads: config["ingest"]["workers"]
    resources:
        **rule_resources(config, "ingest"),
    params:
        read=subset(config, STAGES["ingest"].params),
    script:
        "../scripts/ingest.py"


# Ingested files that are test/val recordings (see jtm/leakage/stage.py): pretraining skips them.
rule leakage:
    input:
        index=rules.index.output.index,
        ingest=rules.ingest.output.ingest,
        code=STAGES["leakage"].code,
    output:
        leakage=directory(config["paths"]["leakage"]),
    log:
        "logs/leakage.log",
    conda:
        "../envs/jtm.yaml"
    resources:
        **rule_resources(config, "leakage"),
    params:
        read=subset(config, STAGES["leakage"].params),
    script:
        "../scripts/leakage.py"
