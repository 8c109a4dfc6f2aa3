"""Multi-label metrics against scikit-learn, threshold choice, and the thresholds folded into a model."""

from __future__ import annotations

import numpy as np
import pytest

from dlpipe.models.multilabel_metrics import choose_thresholds, crossfit_thresholds, f1_scores, multilabel_report


def _data(seed: int = 0, n: int = 80):
    rng = np.random.default_rng(seed)
    truth = (rng.uniform(size=(n, 3)) < [0.5, 0.3, 0.1]).astype(int)
    scores = np.clip(truth * 0.35 + rng.uniform(size=truth.shape) * 0.65, 0, 1)
    return truth, scores


def test_map_and_f1_match_scikit_learn():
    from sklearn.metrics import average_precision_score, f1_score

    truth, scores = _data()
    thresholds = np.array([0.5, 0.6, 0.7])
    report = multilabel_report(truth, scores, thresholds, ["a", "b", "c"], resamples=100)
    assert report["map"] == pytest.approx(np.mean([average_precision_score(truth[:, j], scores[:, j]) for j in range(3)]))
    decided = scores >= thresholds
    assert report["micro_f1"] == pytest.approx(f1_score(truth, decided, average="micro"))
    assert report["macro_f1"] == pytest.approx(f1_score(truth, decided, average="macro", zero_division=0))
    low, high = report["micro_f1_interval"]
    assert low <= report["micro_f1"] <= high and high - low > 0.01
    assert report["per_label"]["c"]["support"] == int(truth[:, 2].sum())


def test_chosen_thresholds_reach_the_best_f1_of_any_threshold():
    truth, scores = _data(1)
    chosen = choose_thresholds(truth, scores)
    for j in range(3):
        best = f1_scores(truth[:, [j]], scores[:, [j]] >= chosen[j])[0]
        for t in np.linspace(0.01, 0.99, 99):
            assert best >= f1_scores(truth[:, [j]], scores[:, [j]] >= t)[0] - 1e-12
    assert choose_thresholds(np.zeros((4, 1), int), np.random.default_rng(0).uniform(size=(4, 1)))[0] == 0.5


def test_average_precision_equals_scikit_learn_with_tied_scores():
    from sklearn.metrics import average_precision_score

    from dlpipe.models.multilabel_metrics import average_precisions

    truth, scores = _data(3, n=60)
    tied = np.round(scores, 1)  # many photos share a score, as saturated sigmoids do
    expected = [average_precision_score(truth[:, j], tied[:, j]) for j in range(3)]
    np.testing.assert_allclose(average_precisions(truth, tied), expected, rtol=1e-12)
    assert average_precisions(np.zeros((5, 1), int), tied[:5, :1]) == [None]


def test_tied_scores_are_kept_or_dropped_together_when_choosing_a_threshold():
    # four photos tie at 1.0, one of them positive; the other positive scores 0.2. Cutting inside the tie
    # would promise F1 0.67, but `score >= t` keeps all four (F1 0.33); keeping everything gives 0.57
    truth = np.array([[1], [0], [0], [0], [1]])
    scores = np.array([[1.0], [1.0], [1.0], [1.0], [0.2]])
    chosen = choose_thresholds(truth, scores)
    assert chosen[0] < 0.2
    assert f1_scores(truth, scores >= chosen)[0] == pytest.approx(4 / 7)


def test_crossfit_thresholds_never_use_a_photo_s_own_fold():
    truth, scores = _data(2)
    fold_of = np.arange(len(truth)) % 4
    limits = crossfit_thresholds(truth, scores, fold_of)
    others = fold_of != 0
    np.testing.assert_allclose(limits[fold_of == 0][0], choose_thresholds(truth[others], scores[others]))


@pytest.mark.parametrize("head", ["dense", "activation"])
def test_folded_thresholds_decide_at_one_half_as_the_raw_scores_at_their_thresholds(head):
    """A sigmoid Dense head gets its bias lowered by logit(t); any other head a ThresholdShift. Same scores."""
    import keras

    from dlpipe.models.tasks.multilabel.layers import ThresholdShift, fold_thresholds, shifted_scores

    keras.utils.set_random_seed(0)
    layers = ([keras.layers.Dense(3, activation="sigmoid")] if head == "dense"
              else [keras.layers.Dense(3), keras.layers.Activation("sigmoid")])
    model = keras.Sequential([keras.Input((5,)), *layers])
    x = np.random.default_rng(0).normal(size=(200, 5)).astype(np.float32) * 3
    thresholds = [0.2, 0.5, 0.83]
    raw = model.predict(x, verbose=0)
    folded_model = fold_thresholds(model, thresholds)
    folded = folded_model.predict(x, verbose=0)
    np.testing.assert_array_equal(folded >= 0.5, raw >= np.asarray(thresholds))
    np.testing.assert_allclose(folded, shifted_scores(raw, thresholds), atol=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), raw)  # the model given is left as it was
    shifts = [layer for layer in folded_model.layers if isinstance(layer, ThresholdShift)]
    assert len(shifts) == (head == "activation")
    with pytest.raises(ValueError, match="Received: thresholds"):
        fold_thresholds(model, [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="one threshold per label: the model has 3 outputs"):
        fold_thresholds(model, [0.5, 0.5])
    restored = ThresholdShift.from_config(ThresholdShift(thresholds).get_config())
    assert restored.thresholds == thresholds
