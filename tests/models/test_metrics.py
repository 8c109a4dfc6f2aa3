"""Honest intervals: the Wilson score interval behind every reported accuracy."""

from __future__ import annotations

from dlpipe.models.metrics import wilson_interval


def test_wilson_interval_holds_its_rate_at_the_extremes():
    for successes, total in [(24, 24), (0, 24), (48, 49), (1, 3)]:
        low, high = wilson_interval(successes, total)
        assert low <= successes / total <= high
    assert wilson_interval(24, 24)[1] == 1.0 and wilson_interval(0, 24)[0] == 0.0
    assert 0.89 < wilson_interval(48, 49)[0] < 0.90  # 48 of 49 right is consistent with 0.89-1.00
