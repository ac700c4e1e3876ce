"""The downstream study's parts on hand-made data: targets, label fractions, metrics, probes."""

import numpy as np
import pandas as pd
import pytest
import torch

from jtm.downstream.labels import activity_roll, task_labels
from jtm.downstream.metrics import (
    best_threshold,
    classification_scores,
    multilabel_scores,
    roll_to_notes,
    transcription_scores,
)
from jtm.downstream.probe import fit_path, predict
from jtm.downstream.subsets import budget_contents, budget_name, label_subset
from jtm.loading.windows import non_overlapping

pytestmark = pytest.mark.check  # the contributor tier: make check


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


def test_label_budget_is_whole_tracks_per_class_seeded_and_nested():
    tracks = np.repeat(np.arange(12), 10)  # 12 tracks of 10 windows
    strata = np.where(tracks < 8, "a", "b")  # 8 tracks of a, 4 of b
    every = label_subset(tracks, strata, "all", seed=0)
    assert every.dtype == bool and every.all()  # a mask, not counts
    one = label_subset(tracks, strata, 1, seed=0)
    assert (
        len(np.unique(tracks[one & (strata == "a")])) == 1
        and len(np.unique(tracks[one & (strata == "b")])) == 1
    )
    assert all(one[tracks == t].all() for t in np.unique(tracks[one]))  # whole tracks
    three = label_subset(tracks, strata, 3, seed=0)
    assert len(np.unique(tracks[three])) == 6 and (three | one).sum() == three.sum()  # nested
    assert np.array_equal(three, label_subset(tracks, strata, 3, seed=0))
    assert not np.array_equal(three, label_subset(tracks, strata, 3, seed=1))
    assert len(np.unique(tracks[label_subset(tracks, strata, 6, seed=0)])) == 10  # b has only 4
    contents = budget_contents(tracks, (strata == "b").astype(int), one)
    assert contents == {"tracks": 2, "windows": 20, "classes": 2}
    with pytest.raises(ValueError, match="label budget 0: a positive number of tracks per class"):
        label_subset(tracks, strata, 0, seed=0)


def test_budget_names_are_the_folder_and_table_names():
    assert [budget_name(b) for b in (1, "5", "all")] == ["1-per-class", "5-per-class", "all"]


def test_a_multilabel_budget_covers_every_label_a_train_track_holds():
    tracks = np.repeat(np.arange(6), 4)
    strata = np.array(["trio"] * 24)  # one stratum: one track at budget 1
    present = np.zeros((24, 3), dtype=bool)
    present[:, 0] = True
    present[tracks == 4, 1] = True  # only track 4 holds label 1, only track 5 label 2
    present[tracks == 5, 2] = True
    for seed in range(5):
        mask = label_subset(tracks, strata, 1, seed, present)
        assert present[mask].any(0).all()
        assert len(np.unique(tracks[mask])) <= 3


def test_a_label_only_another_strata_track_holds_is_covered_too():
    """Two strata at budget 1: label 2 is held only by a track of the first stratum that the
    draw left out; the cover looks through every stratum's remaining tracks, not the last's."""
    tracks = np.repeat(np.arange(8), 3)
    strata = np.where(tracks < 4, "duo", "trio")
    present = np.zeros((24, 3), dtype=bool)
    present[:, 0] = True
    present[tracks == 1, 1] = True
    present[tracks == 2, 2] = True
    for seed in range(6):
        mask = label_subset(tracks, strata, 1, seed, present)
        assert present[mask].any(0).all(), seed
        assert len(np.unique(tracks[mask])) <= 4  # the two drawn, and a track per missing label
    contents = budget_contents(tracks, present, label_subset(tracks, strata, "all", 0, present))
    assert contents == {"tracks": 8, "windows": 24, "classes": 3}  # labels held, multi-label
    first = budget_contents(tracks, present, tracks == 0)
    assert first == {"tracks": 1, "windows": 3, "classes": 1}


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


def test_probe_learns_is_reproducible_and_lists_every_strength():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32) * 5 + 3
    y = (x[:, :3] * [1.0, -1.0, 0.5]).argmax(1)  # linearly separable, three classes
    options = dict(hidden=16, l2_grid=(1e-2, 1e-4), max_iter=100, seed=0)
    for head in ("linear", "mlp"):
        path = fit_path(x[:300], y[:300], head, 3, **options)
        assert [l2 for l2, _, _ in path] == [1e-2, 1e-4]  # strongest first
        accuracy = (predict(path[-1][1], x[300:], False).argmax(1) == y[300:]).mean()
        assert accuracy > 0.85, head
        again = fit_path(x[:300], y[:300], head, 3, **options)
        for a, b in zip(path[-1][1].state_dict().values(), again[-1][1].state_dict().values(), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown probe head 'svm'"):
        fit_path(x, y, "svm", 3, **options)


@pytest.mark.parametrize("multilabel", [False, True])
def test_a_training_set_in_chunks_is_the_same_objective_and_in_place_the_same_model(multilabel):
    """Chunks (a large training set's memory bound) sum to the full-batch objective: the same
    optimum to float precision; standardising a handed-over matrix in place: the same bits."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 6)).astype(np.float32) * 2 + 1
    y = (x[:, :4] + rng.normal(size=(500, 4)) > 1) if multilabel else x[:, :3].argmax(1)
    outputs = y.shape[1] if multilabel else 3
    options = dict(hidden=1, l2_grid=(1e-2, 1e-3), max_iter=200, seed=0)
    whole = fit_path(x, y, "linear", outputs, **options)
    chunked = fit_path(x, y, "linear", outputs, chunk=64, **options)
    for (_, a, objective_a), (_, b, objective_b) in zip(whole, chunked, strict=True):
        assert objective_a[0] == pytest.approx(objective_b[0], rel=1e-5)  # the same objective at the start
        torch.testing.assert_close(a[1].weight, b[1].weight, atol=2e-4, rtol=1e-3)
    handed = x.copy()
    consumed = fit_path(handed, y, "linear", outputs, consume=True, **options)
    assert not np.array_equal(handed, x)  # standardised in place
    for a, b in zip(whole[-1][1].state_dict().values(), consumed[-1][1].state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_probe_standardises_with_the_training_features_mean_and_std():
    """Stored in the model: the training features come out with mean 0 and std 1, small and
    large scales alike."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(300, 4)) * [0.01, 0.5, 3.0, 40.0] + [1.0, -2.0, 0.0, 7.0]).astype(np.float32)
    y = (x[:, 0] > 1).astype(np.int64)
    model = fit_path(x, y, "linear", 2, hidden=1, l2_grid=(1e-2,), max_iter=20, seed=0)[0][1]
    standardized = model[0](torch.as_tensor(x))
    torch.testing.assert_close(standardized.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(standardized.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)


def test_the_path_warm_starts_the_linear_head_and_restarts_the_mlp_from_one_init():
    """Linear (convex): each strength starts from the previous solution, so below the loss of
    zero weights, and keeps its own model (weaker L2, larger weights). MLP: each strength from
    the same seeded init, so a strength's model does not depend on the strengths before it."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, :3] + rng.normal(size=(300, 3))).argmax(1)
    options = dict(hidden=8, max_iter=50, seed=0)
    path = fit_path(x, y, "linear", 3, l2_grid=(1e-1, 1e-3), **options)
    assert path[1][2][0] < np.log(3) - 0.05  # warm: not back at zero weights
    norms = [model[1].weight.norm().item() for _, model, _ in path]
    assert norms[0] < 0.8 * norms[1]
    both = fit_path(x, y, "mlp", 3, l2_grid=(1e-1, 1e-3), **options)[1][1]
    alone = fit_path(x, y, "mlp", 3, l2_grid=(1e-3,), **options)[0][1]
    for a, b in zip(both.state_dict().values(), alone.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_mlp_probe_learns_what_no_linear_probe_can():
    """Two classes by the sign of x0 * x1 (XOR): a linear head is at chance, the MLP is not."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    accuracy = {}
    for head in ("linear", "mlp"):
        path = fit_path(x[:400], y[:400], head, 2, hidden=16, l2_grid=(1e-4,), max_iter=300, seed=0)
        probabilities = predict(path[0][1], x[400:], False)
        assert probabilities.shape == (200, 2)
        np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)
        accuracy[head] = (probabilities.argmax(1) == y[400:]).mean()
    assert accuracy["linear"] < 0.7 < 0.9 < accuracy["mlp"], accuracy


@pytest.mark.parametrize("l2", [1e-1, 1e-3])
def test_linear_probe_matches_scikit_learns_logistic_regression(l2):
    """Same features, same L2 strength (C = 1 / (l2 n)): the same model, so the same accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(1500, 32)) * rng.uniform(0.5, 5, 32) + 2).astype(np.float32)
    y = (x @ rng.normal(size=(32, 5)) + rng.normal(size=(1500, 5)) * 6).argmax(1)  # noisy: not separable
    train, test = slice(0, 1000), slice(1000, None)
    path = fit_path(x[train], y[train], "linear", 5, hidden=1, l2_grid=(l2,), max_iter=1000, seed=0)
    ours = predict(path[0][1], x[test], False)
    scaler = StandardScaler().fit(x[train])
    reference = LogisticRegression(C=1 / (l2 * 1000), tol=1e-10, max_iter=10_000).fit(
        scaler.transform(x[train]), y[train]
    )
    theirs = reference.predict_proba(scaler.transform(x[test]))
    assert abs((ours.argmax(1) == y[test]).mean() - (theirs.argmax(1) == y[test]).mean()) <= 0.005
    assert np.abs(ours - theirs).max() < 0.01


@pytest.mark.parametrize("l2", [1e-1, 1e-3])
def test_multilabel_linear_probe_matches_one_logistic_regression_per_label(l2):
    """Multi-hot targets: sigmoid outputs trained on the mean binary cross-entropy over (n, K)
    cells, so label k's model is scikit-learn's binary one with C = 1 / (l2 n K)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    x = rng.normal(size=(1200, 16)) * rng.uniform(0.5, 4, 16) - 1  # float64 features are welcome too
    logits = x @ rng.normal(size=(16, 4)) * 0.4 + rng.normal(size=(1200, 4)) * 2 - [0, 1, 2, 3]
    y = (logits > 0).astype(np.float32)  # four labels, from common to rare
    train, test = slice(0, 900), slice(900, None)
    path = fit_path(x[train], y[train], "linear", 4, hidden=1, l2_grid=(l2,), max_iter=1000, seed=0)
    ours = predict(path[0][1], x[test], True)
    scaler = StandardScaler().fit(x[train])
    for label in range(4):
        reference = LogisticRegression(C=1 / (l2 * 900 * 4), tol=1e-10, max_iter=10_000)
        reference.fit(scaler.transform(x[train]), y[train, label])
        theirs = reference.predict_proba(scaler.transform(x[test]))[:, 1]
        assert np.abs(ours[:, label] - theirs).max() < 0.01, label


def test_a_linear_probe_starts_from_the_base_rates():
    """Zero weights and, for multi-hot targets, each output's bias at its label's log-odds: the
    first objective is the loss of predicting the base rates (log K for one label per example)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    classes = rng.integers(0, 5, 200).astype(np.int32)  # any integer and boolean labels
    multi = rng.random((200, 3)) < [0.5, 0.2, 0.05]
    options = dict(hidden=1, l2_grid=(1.0,), max_iter=5, seed=0)
    first = fit_path(x, classes, "linear", 5, **options)[0][2][0]
    assert first == pytest.approx(np.log(5), rel=1e-5)
    rate = multi.mean(0)
    entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate)).mean()
    first = fit_path(x, multi, "linear", 3, **options)[0][2][0]
    assert first == pytest.approx(entropy, rel=1e-5)
    # A label no labelled example holds, and one every example holds: rates clamped to
    # [1e-4, 1 - 1e-4], so a finite start and a finite model, not biases at -inf and +inf.
    always = np.column_stack([multi, np.zeros(200, bool), np.ones(200, bool)])
    _, model, objective = fit_path(x, always, "linear", 5, **options)[0]
    clamped = np.array([1e-4, 1 - 1e-4])
    rare = -(np.log(1 - clamped[0]) + np.log(clamped[1]))  # each: the loss of its clamped rate
    assert objective[0] == pytest.approx((3 * entropy + rare) / 5, rel=1e-4)
    assert all(torch.isfinite(p).all() for p in model.parameters()) and np.isfinite(objective).all()
