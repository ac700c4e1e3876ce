"""The demo corpus: real scores, rendered to MusicNet's exact layout, labels = what sounds."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import pytest
import soundfile as sf

from jtm.cli import main
from jtm.demo import ensembles, scores
from jtm.demo.render import choose_ensembles, choose_test_works
from jtm.musicnet import layout
from jtm.runner import run_stage


def _digest(folder):
    folder = Path(folder)
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.*"))
    }


def test_layout_and_metadata_match_musicnet(built):
    raw = built["paths"]["raw"]
    metadata, tracks = layout.discover(raw)
    assert list(metadata.columns) == list(layout.METADATA_COLUMNS)
    assert {t.split for t in tracks} == {"train", "test"}
    for track in tracks:
        info = layout.check_wav(track.wav)
        assert info.samplerate == 44_100 and info.channels == 1 and info.subtype == "FLOAT"
        labels = layout.read_labels(track.labels, n_samples=info.frames)
        assert list(labels.columns) == list(layout.LABEL_COLUMNS)
        row = metadata.set_index("id").loc[track.id]
        assert set(labels["instrument"]) <= set(ensembles.ENSEMBLES[row["ensemble"]])
        for program, group in labels.groupby("instrument"):
            low, high = ensembles.RANGES[program]
            assert group["note"].between(low, high).all()
    # a test work never also appears in train
    works = metadata.merge(pd.DataFrame({"id": [t.id for t in tracks], "split": [t.split for t in tracks]}))
    assert works.groupby(["composer", "catalog_name"])["split"].nunique().max() == 1


def test_labels_are_what_sounds(built):
    metadata, tracks = layout.discover(built["paths"]["raw"])
    track = tracks[0]
    audio, sr = sf.read(track.wav, dtype="float32")
    labels = layout.read_labels(track.labels)
    first = int(labels["start_time"].min())
    sounding = np.zeros(len(audio), bool)
    for start, end in zip(labels["start_time"], labels["end_time"], strict=True):
        sounding[start:end] = True
    rms_before = np.sqrt(np.mean(audio[:first] ** 2)) if first else 0.0
    rms_notes = np.sqrt(np.mean(audio[sounding] ** 2))
    floor = 10 ** (-min(built["demo"]["snr_db"]) / 20)  # the quietest noise floor a recording gets
    assert rms_before < 1.5 * floor * rms_notes and rms_notes > 1e-4  # the noise floor until the first onset
    # pitch check: the loudest spectral peak while one part holds a long note sits near a labelled pitch
    labels["length"] = labels["end_time"] - labels["start_time"]
    note = labels.sort_values("length").iloc[-1]
    segment = audio[int(note.start_time) + 2000 : int(note.start_time) + 2000 + 8192]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    peak_hz = np.fft.rfftfreq(len(segment), 1 / sr)[np.argmax(spectrum)]
    active = labels[
        (labels.start_time <= note.start_time + 2000) & (labels.end_time >= note.start_time + 10192)
    ]
    active_hz = 440 * 2 ** ((active["note"].to_numpy() - 69) / 12)
    harmonics = np.outer(active_hz, np.arange(1, 6)).ravel()
    assert np.min(np.abs(np.log2(peak_hz / harmonics))) < 0.05


def test_rendering_is_deterministic_for_a_seed(tiny_params, built):
    params = tiny_params
    params["paths"]["scores"] = built["paths"]["scores"]
    run_stage("acquire", params)
    assert _digest(built["paths"]["raw"]) == _digest(params["paths"]["raw"])


def test_another_seed_gives_another_performance(tiny_params, built):
    params = tiny_params
    params["paths"]["scores"] = built["paths"]["scores"]
    params["demo"]["seed"] = 1
    run_stage("acquire", params)
    a, _ = sf.read(sorted((Path(built["paths"]["raw"]) / "musicnet").rglob("*.wav"))[0])
    b, _ = sf.read(sorted((Path(params["paths"]["raw"]) / "musicnet").rglob("*.wav"))[0])
    assert len(a) != len(b) or not np.allclose(a, b)


def test_jtm_render_turns_a_midi_folder_into_a_corpus(tmp_path, tracking_uri):
    scores = tmp_path / "scores"
    scores.mkdir()
    for k, (program, name) in enumerate([(40, "Violin"), (42, "Cello")]):
        midi = pretty_midi.PrettyMIDI(initial_tempo=100)
        for voice, base in enumerate((72, 48)):
            instrument = pretty_midi.Instrument(
                program=program if voice == 0 else 0, name=name if voice == 0 else "Piano"
            )
            for i in range(8):
                instrument.notes.append(pretty_midi.Note(90, base + (i + k) % 5, i * 0.5, i * 0.5 + 0.45))
            midi.instruments.append(instrument)
        midi.write(str(scores / f"piece{k}.mid"))
    out = tmp_path / "corpus"
    code = main(
        [
            "render",
            str(scores),
            "--out",
            str(out),
            "--set",
            "demo.test_fraction=0",
            "--set",
            "demo.ensemble_choice=original",
            "--set",
            "demo.renderings=2",
            "--set",
            f"mlflow.tracking_uri={tracking_uri}",
        ]
    )
    assert code == 0
    metadata, tracks = layout.discover(out)
    assert len(tracks) == 2 * 2  # two files x two renderings
    assert set(metadata["ensemble"]) == {"Accompanied Violin", "Accompanied Cello"}


@pytest.mark.check
def test_jtm_render_refuses_to_replace_a_folder_with_content(tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["render", "bach/bwv66.6", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.check
def test_a_score_gives_non_overlapping_excerpts_spread_over_it():
    table, notes = scores.extract_scores(["mozart/k155/movement1.mxl"], 6.0, 90.0, workers=1, excerpts=3)
    assert list(table["excerpt"]) == [0, 1, 2]
    starts, ends = table["start_s"].to_numpy(), (table["start_s"] + table["seconds"]).to_numpy()
    assert starts[0] == 0 and (starts[1:] >= ends[:-1] - 1e-9).all()  # in order, never overlapping
    assert (table["seconds"] >= 6.0 - 1e-9).all()
    assert starts[-1] > 0.5 * ends[-1]  # the last one well into the movement, not right after the first
    for row in table.itertuples():  # notes are timed from their excerpt's start
        mine = notes[notes["score"] == row.score]
        assert len(mine) and mine["onset_s"].min() >= 0 and mine["onset_s"].max() < row.seconds


@pytest.mark.check
def test_parsed_excerpts_are_cached_by_content(tmp_path, monkeypatch):
    spec = ["bach/bwv66.6"]
    first = scores.extract_scores(spec, 4.0, 90.0, workers=1, excerpts=2, cache=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1

    def refuse(spec):
        raise AssertionError(f"{spec} parsed again")

    monkeypatch.setattr(scores, "_parse", refuse)
    again = scores.extract_scores(spec, 4.0, 90.0, workers=1, excerpts=2, cache=tmp_path)
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    try:  # other settings are another entry: parsed
        scores.extract_scores(spec, 5.0, 90.0, workers=1, excerpts=2, cache=tmp_path)
    except AssertionError as err:
        assert "parsed again" in str(err)
    else:
        raise AssertionError("a changed excerpt length must not reuse the cache")


def _catalog(n_works: dict, excerpts: int, parts: dict) -> pd.DataFrame:
    """A scores table: `n_works[composer]` works of `excerpts` rows each."""
    rows = [
        {"composer": c, "catalog_name": f"{c}{w}", "n_parts": parts[c], "spec": "x"}
        for c in n_works
        for w in range(n_works[c])
        for _ in range(excerpts)
    ]
    return pd.DataFrame(rows).assign(score=lambda t: range(len(t)))


@pytest.mark.check
def test_test_works_take_each_composers_share_and_leave_two_in_train():
    table = _catalog({"Bach": 20, "Mozart": 4, "Haydn": 2}, 3, {"Bach": 4, "Mozart": 4, "Haydn": 4})
    chosen = choose_test_works(table, 0.2, seed=0)
    by_composer = pd.Series([c for c, _ in chosen]).value_counts()
    assert by_composer["Bach"] == 4 and by_composer["Mozart"] == 1 and "Haydn" not in by_composer
    assert chosen == choose_test_works(table, 0.2, seed=0) != choose_test_works(table, 0.2, seed=1)


def test_balanced_ensembles_fit_every_score_and_are_spread_evenly(tiny_params):
    from jtm.config import DemoConfig, section

    cfg = section(tiny_params, "demo", DemoConfig)
    table = _catalog({"Bach": 30, "Monteverdi": 30}, 2, {"Bach": 4, "Monteverdi": 5})
    splits = {int(s): "test" if s % 5 == 0 else "train" for s in table["score"]}
    chosen = choose_ensembles(table, splits, cfg)
    common = [e for e in ensembles.ENSEMBLES if ensembles.fits(e, 4) and ensembles.fits(e, 5)]
    assert set(chosen.values()) == set(common)  # no quintet only a 5-part score could get
    frame = pd.DataFrame(
        [
            {"ensemble": e, "split": splits[s], "composer": table.at[s, "composer"]}
            for (s, _), e in chosen.items()
        ]
    )
    for _, counts in frame.groupby(["split", "composer"])["ensemble"]:  # each composer: every ensemble
        per_ensemble = counts.value_counts().reindex(common, fill_value=0)
        assert per_ensemble.max() - per_ensemble.min() <= 1
    for _, counts in frame.groupby("split")["ensemble"]:
        assert counts.value_counts().max() - counts.value_counts().min() <= 2
