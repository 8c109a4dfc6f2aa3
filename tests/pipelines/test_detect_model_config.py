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


def test_the_detectors_card_names_the_size_it_ships_at_and_an_older_run_its_training_size():
    from dlpipe.pipelines.model_card_tasks import detect_use

    config = {"model": {"encoder": "centernet_coco", "image_size": 320, "inference_scale": 1.3}}
    assert "model's input (416 px)" in detect_use(config, {}, {}, {})
    assert DetectModelConfig(image_size=320).inference_size == 416
    assert "model's input (320 px)" in detect_use({"model": {"image_size": 320}}, {}, {}, {})  # saved before the option
