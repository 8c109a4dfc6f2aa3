"""The detect task's model options refuse what its network cannot take, before anything is built."""

from __future__ import annotations

import pytest
from dlpipe.pipelines.config import InvalidValue
from dlpipe.pipelines.detect.model import DetectModelConfig


@pytest.mark.parametrize("size", [300, 32])
def test_an_image_size_the_encoders_stride_cannot_take_is_refused_with_the_rule(size):
    with pytest.raises(InvalidValue, match=f"multiple of 32, at least 64. Received: {size}") as refused:
        DetectModelConfig(image_size=size)
    assert refused.value.key == "image_size"


def test_a_multiple_of_32_is_taken():
    assert DetectModelConfig(image_size=256).image_size == 256
