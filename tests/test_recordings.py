"""Recordings: a performance heard in a room, at a level, over noise; conditions seen in training
or held out; nothing held out reaches pretraining or probe training."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from jtm.config import DemoConfig, PretrainConfig, load_params, section
from jtm.corpus.index import summarize
from jtm.demo import recording, render
from jtm.loading.windows import load_windows
from jtm.musicnet import layout
from jtm.runner import run_stage
from jtm.train.sources import training_sources

NOTES = pd.DataFrame(
    {
        "part": [0, 0, 0, 1, 1],
        "pitch": [67, 72, 76, 48, 55],
        "onset_s": [0.0, 0.5, 1.0, 0.0, 1.0],
        "duration_s": [0.5, 0.5, 1.0, 1.0, 1.0],
        "onset_beat": [0.0, 1.0, 2.0, 0.0, 2.0],
        "duration_beat": [1.0, 1.0, 2.0, 2.0, 2.0],
        "note_value": ["Quarter"] * 5,
    }
)


def _colour(audio: np.ndarray) -> np.ndarray:
    """(bins,) the long-term average spectrum in dB over 100-8000 Hz (Welch), less its mean:
    the signal's colour, whatever its level."""
    freqs, power = signal.welch(audio, 44_100, nperseg=4096)
    level = 10 * np.log10(power[(freqs > 100) & (freqs < 8000)] + 1e-20)
    return level - level.mean()


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two signals' colours, dB."""
    return float(np.mean(np.abs(_colour(a) - _colour(b))))


def _performance(**changes) -> render.Performance:
    base = render.Performance(
        3001, 0, 0, "String Quartet", (41, 43), 1.0, "test", 0, None, "room0", "seen", -12.0, 45.0
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def demo_cfg() -> DemoConfig:
    return section(load_params(Path(__file__).parents[1] / "params.yaml"), "demo", DemoConfig)


@pytest.mark.check
def test_conditions_are_a_function_of_the_seed():
    assert recording.rooms(0, 6) == recording.rooms(0, 6) != recording.rooms(1, 6)
    assert recording.rooms(0, 6)[:3] == recording.rooms(0, 3)  # room i does not depend on how many
    assert recording.held_out(0, 6, 2) == recording.held_out(0, 6, 2)
    assert (
        len(recording.held_out(0, 6, 2)) == 2
        and len({tuple(recording.held_out(s, 6, 2)) for s in range(8)}) > 1
    )
    a = recording.draw_timbre(np.random.default_rng([0, 24, 1, 0]))
    assert (
        a
        == recording.draw_timbre(np.random.default_rng([0, 24, 1, 0]))
        != recording.draw_timbre(np.random.default_rng([1, 24, 1, 0]))
    )


@pytest.mark.check
def test_a_room_response_decays_by_its_reverberation_time():
    room = recording.rooms(0, 6)[2]
    response = recording.impulse_response(room, 44_100, np.random.default_rng(0)).astype(np.float64)
    delay = int(room.predelay_ms / 1000 * 44_100)
    tail = response[delay + 1 :] ** 2
    tail_db = 10 * np.log10(np.sum(tail) / response[0] ** 2)
    assert abs(tail_db - room.wet_db) < 0.5  # the reverberant energy its params say
    # Schroeder's backward integral falls 60 dB within the longest band's RT60 (+- 25 %)
    decay = 10 * np.log10(np.cumsum(tail[::-1])[::-1] / np.sum(tail))
    t60 = np.argmax(decay < -60) / 44_100
    assert 0.5 * min(room.rt60_s) < t60 < 1.25 * max(room.rt60_s)


@pytest.mark.check
def test_one_performance_in_two_rooms_has_the_same_labels_and_other_audio(demo_cfg):
    seen, seen_labels = render.perform(NOTES, _performance(), demo_cfg)
    again, _ = render.perform(NOTES, _performance(), demo_cfg)
    unseen, unseen_labels = render.perform(
        NOTES, _performance(room="room3", take=1, heard="unseen"), demo_cfg
    )
    pd.testing.assert_frame_equal(seen_labels, unseen_labels)
    np.testing.assert_array_equal(seen, again)  # a function of the seed
    assert _distance(seen, unseen) > 1.5  # dB: another room and microphone colour the sound
    dry, _ = render.perform(
        NOTES, _performance(room=None), dataclasses.replace(demo_cfg, timbre_variation=False)
    )
    assert _distance(seen, dry) > 1.5
    assert abs(20 * np.log10(np.max(np.abs(seen))) - (-12.0)) < 1.0  # the recording's level, dBFS


@pytest.mark.check
def test_each_part_gets_its_own_timbre_and_labels_stay_in_tune(demo_cfg):
    one, _ = render.perform(NOTES, _performance(room=None), demo_cfg)
    other, _ = render.perform(NOTES, _performance(room=None, rendering=1), demo_cfg)
    plain, _ = render.perform(
        NOTES, _performance(room=None), dataclasses.replace(demo_cfg, timbre_variation=False)
    )
    assert _distance(one, other) > 1.5 and _distance(one, plain) > 1.5
    timbres = [recording.draw_timbre(np.random.default_rng(s)) for s in range(200)]
    assert max(abs(t.detune_cents) + t.vibrato_cents for t in timbres) < 50  # within a quarter tone


@pytest.mark.check
def test_held_out_conditions_need_something_left_to_train_on(demo_cfg):
    from jtm.errors import ConfigError

    with pytest.raises(ConfigError, match="held_out_rooms"):
        render.conditions(dataclasses.replace(demo_cfg, rooms=2, held_out_rooms=2))
    with pytest.raises(ConfigError, match="held_out_soundfonts"):
        render.conditions(dataclasses.replace(demo_cfg, held_out_soundfonts=1))


@pytest.mark.check
def test_a_missing_packaged_soundfont_names_its_package(demo_cfg, monkeypatch):
    from jtm.demo import synth
    from jtm.errors import DataError

    monkeypatch.setitem(synth.PACKAGED, "fluid", ("/nonexistent/FluidR3_GM.sf2", "fluid-soundfont-gm"))
    with pytest.raises(DataError, match="apt install fluid-soundfont-gm"):
        synth.resolve_soundfont("fluid")


def test_the_corpus_records_test_performances_under_a_seen_and_an_unseen_condition(built):
    raw = built["paths"]["raw"]
    metadata, tracks = layout.discover(raw)
    recordings = layout.read_recordings(raw, metadata["id"])
    split = pd.Series({t.id: t.split for t in tracks})
    recordings = recordings.assign(split=recordings["id"].map(split))
    held = set(recordings.loc[recordings["heard"] == "unseen", "room"])
    assert held and held.isdisjoint(recordings.loc[recordings["heard"] == "seen", "room"])
    assert (recordings.loc[recordings["heard"] == "unseen", "split"] == "test").all()
    takes = recordings[recordings["split"] == "test"].groupby("performance")["heard"].apply(sorted)
    assert (takes.map(tuple) == ("seen", "unseen")).all()  # every test performance: both takes
    assert recordings[recordings["split"] == "train"].groupby("performance").size().max() == 1
    for _, pair in recordings[recordings["split"] == "test"].groupby("performance"):
        a, b = (layout.read_labels(layout.labels_path(raw, "test", i)) for i in pair["id"])
        pd.testing.assert_frame_equal(a, b)  # one performance: the same notes


def test_nothing_held_out_reaches_pretraining_or_probe_training(built):
    index = built["paths"]["index"]
    tracks = pd.read_parquet(f"{index}/tracks.parquet")
    assert set(tracks["heard"]) == {"seen", "unseen"}
    assert (tracks.loc[tracks["heard"] == "unseen", "split"] == "test").all()
    test_works = set(tracks.loc[tracks["split"] == "test", "catalog_name"])
    cfg = section(built, "pretrain", PretrainConfig)
    sources = training_sources(index, None, cfg)
    used = tracks.set_index("id").loc[sources.windows["id"].unique()]
    assert (used["heard"] == "seen").all() and (used["split"] == "train").all()
    assert test_works.isdisjoint(used["catalog_name"])
    (said,) = [line for line in summarize(index).splitlines() if "recordings:" in line]  # jtm summary
    held = sorted(tracks.loc[tracks["heard"] == "unseen", "room"].unique())
    assert f"held-out rooms: {', '.join(held)}" in said and "train" in said and "unseen" in said
    windows, probe_tracks = load_windows(index, ("train", "val"))  # what probes train and select on
    assert (probe_tracks["heard"] == "seen").all() and test_works.isdisjoint(probe_tracks["catalog_name"])


def test_the_fonts_preset_holds_out_a_soundfont_for_test_recordings_only(tiny_params, built):
    """make demo-fonts' conditions (Debian's GM SoundFonts, installed by .ci/run), on the tiny scores."""
    params = tiny_params
    params["paths"]["scores"] = built["paths"]["scores"]
    params["demo"].update(more_soundfonts=["fluid", "musescore", "opl3"], held_out_soundfonts=1)
    run_stage("acquire", params)
    raw = params["paths"]["raw"]
    metadata, tracks = layout.discover(raw)
    recordings = layout.read_recordings(raw, metadata["id"])
    split = recordings["id"].map({t.id: t.split for t in tracks})
    unseen_fonts = set(recordings.loc[recordings["heard"] == "unseen", "soundfont"])
    seen_fonts = set(recordings.loc[split == "train", "soundfont"])
    assert len(unseen_fonts) == 1 and unseen_fonts.isdisjoint(seen_fonts)
    assert seen_fonts <= {"TimGM6mb.sf2", "FluidR3_GM.sf2", "MuseScore_General_Lite.sf3", "OPL-3_FM_128M.sf2"}


def test_each_test_part_holds_the_recordings_of_its_conditions(built):
    from jtm.downstream.inputs import TaskData
    from jtm.downstream.parts import test_parts

    index = Path(built["paths"]["index"])
    windows, tracks = load_windows(index, ("train", "val", "test"))
    keys = windows[["id", "start", "length", "split"]]
    data = TaskData("ensemble", keys, tracks, pd.read_parquet(index / "notes.parquet"), "work")
    test = data.part("test")
    parts = test_parts(data.heard[test])
    assert list(parts) == ["seen", "unseen"]
    heard = tracks.set_index("id")["heard"]
    for part, where in parts.items():
        ids = data.keys["id"].to_numpy()[test[where]]
        assert (heard.loc[ids] == part).all()
        assert all(name.startswith(f"{part}|") for name in data.unit_names[test[where]])
    works = {part: {n.split("|", 1)[1] for n in data.unit_names[test[w]]} for part, w in parts.items()}
    assert works["seen"] == works["unseen"]  # the same works: the parts pair up
