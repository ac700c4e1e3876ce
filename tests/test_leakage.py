"""The leakage guard: a test recording re-encoded (Ogg Vorbis, 22.05 kHz, stereo) and hidden in an
unlabeled folder is caught and kept out of pretraining; other music, a training track of the same
synthesiser included, is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr

from jtm.config import PretrainConfig, section, set_dotted
from jtm.runner import run_stage
from jtm.train.sources import training_sources


def reencode(wav: Path, out: Path) -> None:
    """The recording as a user's copy might be: 22.05 kHz, stereo (unequal channels), Vorbis."""
    audio, rate = sf.read(wav, dtype="float32")
    audio = soxr.resample(audio, rate, 22_050)
    sf.write(out, np.stack([audio, 0.7 * audio], axis=1), 22_050, format="OGG", subtype="VORBIS")


def test_a_reencoded_test_track_is_caught_and_left_out_of_pretraining(built, tmp_path):
    tracks = pd.read_parquet(Path(built["paths"]["index"]) / "tracks.parquet")
    test_id = int(tracks.loc[tracks["split"] == "test", "id"].iloc[0])
    train_id = int(tracks.loc[tracks["split"] == "train", "id"].iloc[0])
    raw = Path(built["paths"]["raw"]) / "musicnet"
    library = tmp_path / "library"
    library.mkdir()
    reencode(raw / "test_data" / f"{test_id}.wav", library / "bought.ogg")
    reencode(raw / "train_data" / f"{train_id}.wav", library / "rehearsal.ogg")
    t = np.arange(16_000 * 6) / 16_000
    sf.write(library / "sweep.flac", 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t), 16_000)
    set_dotted(built, "ingest.corpora", [{"name": "library", "paths": [str(library)], "weight": 1.0}])
    assert run_stage("ingest", built)["ingested"] == 3

    metrics = run_stage("leakage", built)
    assert metrics["matches"] == 1 and metrics["references"] == (tracks["split"] != "train").sum()
    matches = pd.read_parquet(Path(built["paths"]["leakage"]) / "matches.parquet")
    match = matches.iloc[0]
    assert (Path(match.path).name, match.matched_id, match.matched_split) == ("bought.ogg", test_id, "test")
    assert match.similarity > 0.9 and abs(match.offset_seconds) < 0.5

    unlabeled = (Path(built["paths"]["ingest"]), Path(built["paths"]["leakage"]))
    sources = training_sources(
        Path(built["paths"]["index"]), unlabeled, section(built, "pretrain", PretrainConfig)
    )
    kept = sources.tracks[sources.tracks["source"] == "library"]  # one row per file (a shard slice)
    assert len(kept) == 2 and sources.summary["library"]["windows"] > 0
    used = sources.windows.loc[sources.windows["source"] == "library", "id"]
    assert set(used) == set(sources.tracks.loc[sources.tracks["source"] == "library", "id"])
