# Data stages: demo scores -> raw MusicNet-format corpus -> 16 kHz arrays -> Parquet index.
# `params: read=` holds the values of the params keys a rule reads: a change reruns it.


rule demo_scores:
    input:
        code=["jtm/data/scores.py"],
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
        read=subset(config, ["demo.scores", "demo.excerpt_seconds", "demo.default_bpm"]),
    script:
        "../scripts/demo_scores.py"


rule acquire:
    input:
        scores=rules.demo_scores.output.scores,
        code=[
            "jtm/data/acquire.py",
            "jtm/data/download.py",
            "jtm/data/extract.py",
            "jtm/data/render.py",
            "jtm/data/synth.py",
            "jtm/data/ensembles.py",
        ],
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
        read=subset(
            config,
            [
                "data.source",
                "data.path",
                "data.downloads",
                "data.archive_url",
                "data.archive_size",
                "data.archive_md5",
                "data.metadata_url",
                "data.metadata_size",
                "data.metadata_md5",
                "demo.seed",
                "demo.renderings",
                "demo.ensemble_choice",
                "demo.test_fraction",
                "demo.soundfont",
                "demo.sample_rate",
                "demo.tempo_jitter",
                "demo.onset_jitter_ms",
                "demo.velocity",
                "demo.velocity_jitter",
                "demo.tail_seconds",
                "demo.wav_subtype",
            ],
        ),
    script:
        "../scripts/acquire.py"


rule resample:
    input:
        raw=rules.acquire.output.raw,
        code=["jtm/data/resample.py", "jtm/data/musicnet.py"],
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
        read=subset(
            config,
            [
                "resample.sample_rate",
                "resample.quality",
                "resample.dtype",
                "resample.block_seconds",
            ],
        ),
    script:
        "../scripts/resample.py"


rule index:
    input:
        audio16k=rules.resample.output.audio16k,
        code=["jtm/data/index.py"],
    output:
        index=directory(config["paths"]["index"]),
    log:
        "logs/index.log",
    conda:
        "../envs/jtm.yaml"
    resources:
        **rule_resources(config, "index"),
    params:
        read=subset(
            config, ["index.seed", "index.window", "index.hop", "index.val_fraction"]
        ),
    script:
        "../scripts/index.py"
