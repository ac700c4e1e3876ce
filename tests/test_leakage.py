"""The leakage guard: a test recording re-encoded (Ogg Vorbis, 22.05 kHz, stereo) and hidden in an
unlabeled folder is caught and kept out of pretraining; other music, a training track of the same
synthesiser included, is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from jtm.config import PretrainConfig, section, set_dotted
from jtm.ingest.fingerprint import ITEMS_PER_SECOND
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


def _slice(raw: Path, split: str, track: int, start: float, seconds: float | None, out: Path) -> None:
    """`seconds` of a track's raw recording from `start` (to its end if None), as FLAC."""
    audio, rate = sf.read(raw / f"{split}_data" / f"{track}.wav", dtype="float32")
    first = round(start * rate)
    last = len(audio) if seconds is None else first + round(seconds * rate)
    sf.write(out, audio[first:last], rate)


def _guarded(params: dict, library: Path, **leakage) -> pd.DataFrame:
    """The matches of the guard over `library`'s files, with these leakage params."""
    from jtm.config import LeakageConfig
    from jtm.leakage.stage import guard

    for key, value in leakage.items():
        set_dotted(params, f"leakage.{key}", value)
    paths = params["paths"]
    guard(paths["index"], paths["ingest"], paths["leakage"], section(params, "leakage", LeakageConfig))
    matches = pd.read_parquet(Path(paths["leakage"]) / "matches.parquet")
    return matches.assign(name=[Path(p).name for p in matches["path"]]).set_index("name")


def test_the_guard_at_its_boundaries(built, tmp_path):
    """A validation track; an excerpt starting mid-track, found at its offset; the same match
    with `min_seconds` and `threshold` just at and just past what it has."""
    tracks = pd.read_parquet(Path(built["paths"]["index"]) / "tracks.parquet")
    val_id = int(tracks.loc[tracks["split"] == "val", "id"].iloc[0])
    test_id = int(tracks.loc[tracks["split"] == "test", "id"].iloc[0])
    raw, library = Path(built["paths"]["raw"]) / "musicnet", tmp_path / "library"
    library.mkdir()
    _slice(raw, "train", val_id, 0.0, None, library / "val.flac")  # MusicNet's val is part of train
    _slice(raw, "test", test_id, 1.5, None, library / "offset.flac")
    set_dotted(built, "ingest.corpora", [{"name": "library", "paths": [str(library)], "weight": 1.0}])
    run_stage("ingest", built)

    matches = _guarded(built, library)
    assert set(matches.index) == {"val.flac", "offset.flac"}
    assert (matches.loc["val.flac", "matched_id"], matches.loc["val.flac", "matched_split"]) == (
        val_id,
        "val",
    )
    assert matches.loc["offset.flac", "matched_id"] == test_id
    assert matches.loc["offset.flac", "offset_seconds"] == pytest.approx(1.5, abs=0.2)

    overlap = float(matches.loc["offset.flac", "overlap_seconds"])  # the whole excerpt's fingerprint
    assert "offset.flac" in _guarded(built, library, min_seconds=overlap).index
    assert "offset.flac" not in _guarded(built, library, min_seconds=overlap + 1 / ITEMS_PER_SECOND).index
    set_dotted(built, "leakage.min_seconds", 1.0)
    similarity = float(matches.loc["offset.flac", "similarity"])
    assert "offset.flac" in _guarded(built, library, threshold=similarity).index  # at least: matched
    assert "offset.flac" not in _guarded(built, library, threshold=similarity + 1e-6).index
    assert "val.flac" not in _guarded(built, library, splits=["test"]).index  # only the splits named


def test_unrelated_music_stays_well_below_the_threshold(built):
    """Every train track against every test and val track, recordings of other scores by the same
    synthesiser: aligned at their starts they share about half their bits (chance), and the
    guard's best alignment stays far below the threshold (0.75)."""
    from jtm.leakage.match import References, equal_bits
    from jtm.leakage.stage import reference_fingerprints

    index = Path(built["paths"]["index"])
    held_out, _ = reference_fingerprints(index, ("test", "val"), 16_000)
    train, _ = reference_fingerprints(index, ("train",), 16_000)
    for a in train.values():
        for b in held_out.values():
            n = min(len(a), len(b))
            assert 0.35 < equal_bits(a[:n], b[:n]) < 0.65
    references = References(held_out)
    best = max(references.best(fingerprint, 16).similarity for fingerprint in train.values())
    assert best < built["leakage"]["threshold"] - 0.1
