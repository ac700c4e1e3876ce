"""The Parquet index: schemas, windows inside tracks, a by-work validation split, determinism."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from jtm.corpus.index import NOTE_SCHEMA, WINDOW_SCHEMA, validation_split, window_starts
from jtm.runner import run_stage


def test_tables_round_trip_with_documented_schemas(built):
    index = built["paths"]["index"]
    assert pq.read_schema(f"{index}/windows.parquet").remove_metadata() == WINDOW_SCHEMA
    assert pq.read_schema(f"{index}/notes.parquet").remove_metadata() == NOTE_SCHEMA
    tracks = pd.read_parquet(f"{index}/tracks.parquet")
    for column in (
        "id",
        "split",
        "composer",
        "ensemble",
        "composition",
        "movement",
        "catalog_name",
        "source",
    ):
        assert column in tracks.columns
    assert {"samples", "path", "subtype", "seconds", "transcriber"} <= set(tracks.columns)
    assert set(tracks["split"]) == {"train", "val", "test"}


def test_windows_never_cross_a_track_end(built):
    index = built["paths"]["index"]
    tracks = pd.read_parquet(f"{index}/tracks.parquet").set_index("id")
    windows = pd.read_parquet(f"{index}/windows.parquet")
    assert (windows["start"] >= 0).all()
    assert (windows["start"] + windows["length"] <= tracks.loc[windows["id"], "samples"].to_numpy()).all()
    assert (windows["length"] == built["index"]["window"]).all()
    # and every track contributes all the windows that fit
    expected = (tracks["samples"] - built["index"]["window"]) // built["index"]["hop"] + 1
    assert windows.groupby("id").size().equals(expected.rename(None).rename_axis("id"))


@pytest.mark.check
def test_window_starts_handles_short_and_empty_tracks():
    track, starts = window_starts(np.array([10, 3, 0, 7]), window=4, hop=3)
    assert track.tolist() == [0, 0, 0, 3, 3]
    assert starts.tolist() == [0, 3, 6, 0, 3]


def test_notes_are_at_16k_and_inside_their_tracks(built):
    index = built["paths"]["index"]
    tracks = pd.read_parquet(f"{index}/tracks.parquet").set_index("id")
    notes = pd.read_parquet(f"{index}/notes.parquet")
    assert (notes["end_time"] >= notes["start_time"]).all()
    assert (notes["end_time"] <= tracks.loc[notes["id"], "samples"].to_numpy()).all()


@pytest.mark.check
def test_validation_split_keeps_works_whole_and_is_seeded():
    rng = np.random.default_rng(0)
    rows = []
    for work in range(30):
        for _ in range(3):
            rows.append(
                {
                    "composer": f"C{work % 4}",
                    "catalog_name": f"W{work}",
                    "ensemble": ["Solo Piano", "String Quartet", "Piano Trio"][rng.integers(3)],
                    "split": "test" if work < 3 else "train",
                }
            )
    tracks = pd.DataFrame(rows)
    split = validation_split(tracks, 0.2, seed=7)
    assert split.equals(validation_split(tracks, 0.2, seed=7))
    assert not split.equals(validation_split(tracks, 0.2, seed=8))
    assert (split[tracks["split"] == "test"] == "test").all()
    per_work = tracks.assign(split=split).groupby("catalog_name")["split"].nunique()
    assert per_work.max() == 1
    assert 0.1 < (split == "val").sum() / (tracks["split"] == "train").sum() < 0.3
    assert set(tracks.loc[split == "val", "ensemble"]) == {"Solo Piano", "String Quartet", "Piano Trio"}
    assert set(tracks.loc[split == "val", "composer"]) == {"C0", "C1", "C2", "C3"}


@pytest.mark.check
def test_validation_split_covers_classes_train_keeps():
    rows = [{"composer": "Rare", "catalog_name": "R1", "ensemble": "Solo Piano", "split": "train"}]
    rows += [
        {"composer": "Two", "catalog_name": f"T{w}", "ensemble": "Piano Trio", "split": "train"}
        for w in range(2)
    ]
    rows += [
        {"composer": "Many", "catalog_name": f"M{w}", "ensemble": "String Quartet", "split": "train"}
        for w in range(20)
    ]
    tracks = pd.DataFrame(rows)
    split = validation_split(tracks, 0.1, seed=0)
    assert split[tracks["composer"] == "Rare"].eq("train").all()  # its only work stays in train
    assert set(split[tracks["composer"] == "Two"]) == {"train", "val"}  # one work each side


def test_index_is_deterministic(tiny_params, built):
    params = tiny_params
    params["paths"]["audio16k"] = built["paths"]["audio16k"]
    run_stage("index", params)
    for table in ("tracks", "windows", "notes"):
        a = pd.read_parquet(f"{built['paths']['index']}/{table}.parquet")
        b = pd.read_parquet(f"{params['paths']['index']}/{table}.parquet")
        if table == "tracks":  # paths name the arrays each index was built from
            assert all(Path(p).is_file() for p in b.pop("path"))
            a = a.drop(columns="path")
        pd.testing.assert_frame_equal(a, b)
