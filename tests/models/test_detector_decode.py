"""The detector's decoding: a peak's box votes with its neighbours', weighted by their heat; old saved models keep the
peak cell's own box."""

from __future__ import annotations

import math

import numpy as np

GRID, CLASSES = 8, 2


def _head(peak_sides: float, neighbour_sides: float, neighbour_heat: float = 0.5) -> np.ndarray:
    """One object of class 1 centred in cell (4, 4): the peak at 0.9, its 8 neighbours at `neighbour_heat`; the peak
    predicts sides `peak_sides` away, the neighbours the box whose sides are `neighbour_sides` from the centre cell."""
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    head = np.zeros((1, GRID, GRID, CLASSES + 4), np.float32)
    head[..., :CLASSES] = logit(1e-4)
    head[..., CLASSES:] = math.log(1.0)
    for row in range(3, 6):
        for column in range(3, 6):
            head[0, row, column, 1] = logit(0.9 if (row, column) == (4, 4) else neighbour_heat)
            # distances from this cell's centre to the sides of the box around cell (4, 4)'s centre
            dx, dy = column - 4, row - 4
            sides = [neighbour_sides + dx, neighbour_sides + dy, neighbour_sides - dx, neighbour_sides - dy]
            head[0, row, column, CLASSES:] = np.log(np.maximum(sides, 1e-3))
    head[0, 4, 4, CLASSES:] = math.log(peak_sides)
    return head


def _best_box(window: int, head: np.ndarray) -> np.ndarray:
    from dlpipe.models.detector import CenterNetDecode

    rows = np.asarray(CenterNetDecode(CLASSES, 5, window)(head))
    assert rows[0, 0, 5] == 1 and np.isclose(rows[0, 0, 4], 0.9, atol=1e-5)  # the peak, its class and score
    return rows[0, 0, :4] * GRID  # in cells


def test_a_peak_whose_own_box_is_off_takes_its_neighbours_box():
    head = _head(peak_sides=1.0, neighbour_sides=2.0)
    truth = np.array([4.5 - 2, 4.5 - 2, 4.5 + 2, 4.5 + 2])
    own, voted = _best_box(1, head), _best_box(3, head)
    np.testing.assert_allclose(own, [3.5, 3.5, 5.5, 5.5], atol=1e-4)  # the peak cell's own box
    # 8 neighbours at 0.5 ** 4 against the peak's 0.9 ** 4: 0.5 / (0.5 + 0.656) of the way to their box
    share = 8 * 0.5 ** 4 / (8 * 0.5 ** 4 + 0.9 ** 4)
    np.testing.assert_allclose(voted, own + share * (truth - own), atol=1e-3)


def test_faint_neighbours_barely_move_the_peaks_box():
    head = _head(peak_sides=1.0, neighbour_sides=2.0, neighbour_heat=0.05)
    assert np.abs(_best_box(3, head) - _best_box(1, head)).max() < 0.01


def test_a_saved_decoding_without_the_setting_keeps_the_peaks_own_box():
    from dlpipe.models.detector import CenterNetDecode

    restored = CenterNetDecode.from_config({"num_classes": CLASSES, "max_detections": 5, "name": "decode"})
    assert restored.vote_window == 1
    head = _head(peak_sides=1.0, neighbour_sides=2.0)
    np.testing.assert_allclose(np.asarray(restored(head))[0, 0, :4] * GRID, [3.5, 3.5, 5.5, 5.5], atol=1e-4)
