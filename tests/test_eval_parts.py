"""The downstream study's parts on hand-made data: targets, label fractions, metrics, probes."""

import numpy as np
import pandas as pd
import pytest
import torch

from jtm.downstream.labels import activity_roll, non_overlapping, task_labels
from jtm.downstream.metrics import (
    best_threshold,
    classification_scores,
    multilabel_scores,
    roll_to_notes,
    transcription_scores,
)
from jtm.downstream.probe import fit_probe, predict
from jtm.downstream.subsets import label_subset


def _notes(rows):
    return pd.DataFrame(rows, columns=["id", "start_time", "end_time", "instrument", "note"])


def test_activity_roll_labels_each_frame_at_its_centre():
    notes = _notes([(1, 0, 1600, 41, 60), (1, 800, 1000, 1, 64), (1, 250, 300, 1, 70)])
    roll = activity_roll(notes, 12, "note", list(range(128)))
    # A note sounds in frame f when start <= 160 f + 80 < end.
    expected = np.zeros((12, 128), dtype=bool)
    for _, start, end, _, pitch in notes.itertuples(index=False):
        for frame in range(12):
            expected[frame, pitch] |= start <= 160 * frame + 80 < end
    np.testing.assert_array_equal(roll, expected)
    assert roll[:10, 60].all() and not roll[10:, 60].any()
    assert roll[5, 64] and not roll[4, 64] and not roll[6, 64]
    assert not roll[:, 70].any()  # shorter than a frame, between two centres


def test_task_labels_for_every_task():
    tracks = pd.DataFrame(
        {
            "id": [1, 2],
            "ensemble": ["Solo Piano", "String Quartet"],
            "composer": ["Bach", "Haydn"],
            "samples": [32000] * 2,
        }
    )
    keys = pd.DataFrame({"id": [1, 1, 2], "start": [0, 16000, 0], "length": [16000] * 3})
    notes = _notes([(1, 100, 5000, 1, 60), (2, 20000, 30000, 41, 72)])
    ensemble = task_labels("ensemble", keys, tracks, notes)
    assert ensemble.classes == ("Solo Piano", "String Quartet") and list(ensemble.targets) == [0, 0, 1]
    instruments = task_labels("instruments", keys, tracks, notes)
    assert instruments.targets.shape == (3, 11) and instruments.multilabel
    piano = instruments.classes.index("Piano")
    assert (
        instruments.targets[0, piano]
        and not instruments.targets[1].any()
        and not instruments.targets[2].any()
    )
    transcription = task_labels("transcription", keys, tracks, notes)
    assert transcription.targets.shape == (3, 100, 128) and transcription.framewise
    assert transcription.targets[0, :, 60].sum() == 30  # centres 240 ... 4880 lie in [100, 5000)
    assert not transcription.targets[2].any()  # the violin enters after this window
    with pytest.raises(ValueError, match="unknown task"):
        task_labels("genre", keys, tracks, notes)


def test_non_overlapping_keeps_every_other_half_hop_window():
    keys = pd.DataFrame(
        {"id": [1] * 5 + [2] * 2, "start": [0, 50, 100, 150, 200, 0, 50], "length": [100] * 7}
    )
    assert non_overlapping(keys).tolist() == [True, False, True, False, True, True, False]


def test_label_subset_is_stratified_by_whole_tracks_seeded_and_nested():
    tracks = np.repeat(np.arange(12), 10)  # 12 tracks of 10 windows
    strata = np.where(tracks < 8, "a", "b")  # 80 windows of a, 40 of b
    full = label_subset(tracks, strata, 1.0, seed=0)
    assert full.all()
    small = label_subset(tracks, strata, 0.25, seed=0)
    assert small[strata == "a"].sum() == 20 and small[strata == "b"].sum() == 10
    assert len(np.unique(tracks[small])) == 3  # whole tracks: 2 of a, 1 of b
    assert np.array_equal(small, label_subset(tracks, strata, 0.25, seed=0))
    assert not np.array_equal(small, label_subset(tracks, strata, 0.25, seed=1))
    tiny = label_subset(tracks, strata, 0.01, seed=0)
    assert tiny[strata == "a"].sum() == 1 and tiny[strata == "b"].sum() == 1  # every stratum keeps one
    larger = label_subset(tracks, strata, 0.5, seed=0)
    whole_small = [t for t in np.unique(tracks[small]) if small[tracks == t].all()]
    assert all(larger[tracks == t].all() for t in whole_small)
    with pytest.raises(ValueError):
        label_subset(tracks, strata, 0.0, seed=0)


def test_classification_scores_and_confusion():
    truth = np.array([0, 0, 1, 1, 2])
    probs = np.eye(4)[[0, 1, 1, 1, 2]]
    scores, matrix = classification_scores(truth, probs)
    assert scores["accuracy"] == pytest.approx(0.8)
    assert scores["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert matrix.shape == (4, 4) and matrix[0, 1] == 1 and np.trace(matrix) == 4


def test_multilabel_threshold_is_chosen_on_validation_data():
    rng = np.random.default_rng(0)
    truth = rng.random((200, 5)) < 0.2
    probs = np.clip(truth * 0.3 + rng.random((200, 5)) * 0.25, 0, 1)  # positives above 0.3
    threshold = best_threshold(truth, probs)
    assert 0.25 <= threshold <= 0.3
    scores = multilabel_scores(truth, probs, threshold)
    assert scores["micro_ap"] == pytest.approx(1.0) and scores["micro_f1"] == pytest.approx(1.0)
    assert multilabel_scores(truth, probs, 0.9)["micro_f1"] == 0


def test_transcription_scores_perfect_and_empty():
    roll = np.zeros((50, 128), dtype=bool)
    roll[5:20, 60] = roll[25:40, 60] = roll[10:30, 67] = True
    intervals, hz = roll_to_notes(roll)
    assert len(intervals) == 3 and np.allclose(np.sort(intervals[:, 0]), [0.05, 0.1, 0.25])
    midi = np.round(12 * np.log2(hz / 440) + 69)
    perfect = transcription_scores([roll], [roll * 0.9], [(intervals, midi)], 0.5)
    for key in ("micro_ap", "frame_precision", "frame_recall", "frame_accuracy", "onset_f1"):
        assert perfect[key] == pytest.approx(1.0), key
    silent = transcription_scores([roll], [np.zeros_like(roll, dtype=float) + 0.1], [(intervals, midi)], 0.5)
    assert silent["frame_recall"] == 0 and silent["onset_f1"] == 0


def test_probe_learns_and_keeps_its_best_epoch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32) * 5 + 3
    y = (x[:, :3] * [1.0, -1.0, 0.5]).argmax(1)  # linearly separable, three classes
    options = dict(hidden=16, lr=1e-2, weight_decay=0, batch_size=32, max_epochs=30, patience=3, seed=0)
    for head in ("linear", "mlp"):
        fit = fit_probe(x[:300], y[:300], x[300:], y[300:], head, 3, **options)
        accuracy = (predict(fit.model, x[300:], False).argmax(1) == y[300:]).mean()
        assert accuracy > 0.85, head
        assert fit.curves["val_loss"][fit.best] == min(fit.curves["val_loss"])
        again = fit_probe(x[:300], y[:300], x[300:], y[300:], head, 3, **options)
        for a, b in zip(fit.model.state_dict().values(), again.model.state_dict().values(), strict=True):
            assert torch.equal(a, b)
