"""Temperature scaling and the expected calibration error on synthetic scores whose calibration is known."""

from __future__ import annotations

import numpy as np
import pytest

from dlpipe.models.calibration import (
    as_logits, calibration_summary, expected_calibration_error, fit_temperature, reliability_bins, tempered,
)


def calibrated_set(count: int, classes: int, seed: int, sharpness: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): scores calibrated by construction; `sharpness` > 1 multiplies
    the logits afterwards, so the scores claim more than the labels bear out (an over-confident model)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(count, classes))
    truth = tempered(logits, 1.0)
    labels = np.array([rng.choice(classes, p=row) for row in truth])
    return logits * sharpness, labels


def test_perfectly_calibrated_scores_have_near_zero_ece():
    logits, labels = calibrated_set(20000, 3, seed=0)
    assert expected_calibration_error(tempered(logits, 1.0), labels) < 0.015
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)


def test_over_confident_scores_get_a_temperature_above_one_and_a_lower_ece():
    logits, labels = calibrated_set(5000, 2, seed=1, sharpness=3.0)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)  # undoes the sharpening
    summary = calibration_summary(logits, labels, temperature)
    assert summary["ece_before"] > 0.1
    assert summary["ece_after"] < 0.03
    assert summary["nll_after"] < summary["nll_before"]
    # the answers do not change, only the scores
    assert (tempered(logits, temperature).argmax(1) == tempered(logits, 1.0).argmax(1)).all()


def test_under_confident_scores_get_a_temperature_below_one():
    logits, labels = calibrated_set(5000, 4, seed=2, sharpness=0.5)
    assert fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.1)


def test_views_are_tempered_then_averaged_as_a_flip_model_does():
    logits, labels = calibrated_set(400, 2, seed=3, sharpness=2.0)
    views = np.stack([logits, logits[:, ::-1] * 0.1 + logits])
    expected = (tempered(views[0], 2.0) + tempered(views[1], 2.0)) / 2
    np.testing.assert_allclose(tempered(views, 2.0), expected)
    # log-probabilities are logits up to a row's constant: tempering them gives the same scores
    np.testing.assert_allclose(tempered(as_logits(tempered(logits, 1.0)), 2.0), tempered(logits, 2.0), atol=1e-9)
    assert fit_temperature(views, labels) > 1.0


def test_reliability_bins_hand_computed():
    probabilities = np.array([[0.95, 0.05], [0.92, 0.08], [0.4, 0.6], [1.0, 0.0]])
    labels = np.array([0, 1, 1, 0])
    rows = reliability_bins(probabilities, labels, bins=15)
    assert sum(row["count"] for row in rows) == 4
    last = rows[-1]  # [0.933, 1.0]: 0.95 and 1.0, both right
    assert last["count"] == 2 and last["accuracy"] == 1.0 and last["confidence"] == pytest.approx(0.975)
    # |1 - 0.975| * 2/4 + |0 - 0.92| * 1/4 + |1 - 0.6| * 1/4
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0125 + 0.23 + 0.1)
