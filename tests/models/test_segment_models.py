"""The U-Net on EfficientNet-Lite0 and the pretrained person segmenter (MediaPipe's selfie segmenter)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from assets import require, under_ci

PERSON_PHOTO = Path("/usr/share/darknet/data/person.jpg")  # Debian package darknet


def test_unet_on_lite0_starts_frozen_and_fine_tunes_the_top_blocks():
    from dlpipe.models.finetune import unfreeze_top_blocks
    from dlpipe.models.segmentation import ENCODER_LAYER_NAME, ENCODERS, build_unet

    model, pattern = build_unet("efficientnet_lite0", 3, 64, weights="imagenet")
    assert pattern == ENCODERS.get("efficientnet_lite0").block_pattern
    assert model.output_shape == (None, 64, 64, 3)
    encoder = model.get_layer(ENCODER_LAYER_NAME)
    assert [tuple(o.shape[1:3]) for o in encoder.outputs] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert not encoder.trainable_weights  # frozen: only the decoder trains in the first phase
    decoder_only = len(model.trainable_weights)
    unfreeze_top_blocks(encoder, pattern, 2)
    assert len(model.trainable_weights) > decoder_only
    assert not any("block0_" in w.path or "stem" in w.path for w in model.trainable_weights)
    probabilities = model.predict(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32"), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-4)


def test_unet_refuses_a_size_that_is_not_a_multiple_of_32():
    from dlpipe.errors import ConfigError
    from dlpipe.models.segmentation import build_unet

    with pytest.raises(ConfigError, match="multiple of 32"):
        build_unet("small", 2, 48)


def test_every_encoder_row_taps_strides_2_to_32_and_bad_choices_are_named():
    from dlpipe.errors import ConfigError
    from dlpipe.models.segmentation import ENCODERS, build_encoder, build_unet

    for name in ENCODERS:
        encoder = build_encoder(ENCODERS.get(name), 64, None)
        assert [tuple(o.shape[1:3]) for o in encoder.outputs] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)], name
    with pytest.raises(ConfigError, match="did you mean 'small'"):
        build_unet("smal", 2, 64)
    with pytest.raises(ConfigError, match="has no pretrained weights"):
        build_unet("small", 2, 64, weights="imagenet")


@pytest.fixture(scope="module")
def segmenter_file():
    from dlpipe.errors import WeightsUnavailableError
    from dlpipe.models.pretrained import person_segmenter_file

    try:
        return person_segmenter_file()
    except WeightsUnavailableError as error:
        require(False, "person segmenter", f"{error}; scripts/setup.sh fetches it")


def _photo(tmp_path: Path) -> Path:
    """darknet's person.jpg (its person score is checked); without darknet a noise photo, except under CI, where
    the lost check is a failure naming the asset (tests/assets.py)."""
    from PIL import Image

    if PERSON_PHOTO.is_file() or under_ci():
        require(PERSON_PHOTO.is_file(), f"darknet's sample photo {PERSON_PHOTO}",
                "install the Debian package darknet (scripts/setup.sh does, as root)")
        return PERSON_PHOTO
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (90, 130, 3)).astype(np.uint8)
    pixels[20:80, 50:80] = [200, 160, 140]  # a skin-coloured block, so the output is not constant
    Image.fromarray(pixels).save(tmp_path / "noise.png")
    return tmp_path / "noise.png"


def test_packaged_segmenter_runs_alone_and_matches_the_original(segmenter_file, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from dlpipe.models.pretrained import package_person_segmenter
    from dlpipe.models.runtimes import load_runtime

    photo = _photo(tmp_path)
    packaged = package_person_segmenter(tmp_path / "export")
    runtime = load_runtime(packaged)
    assert runtime.task.name == "segment" and runtime.class_names == ["background", "person"]
    batch = next(iter(runtime.task.batches(runtime.task.collect_inputs([str(photo)]), runtime.preprocessing, 4))).batch
    ours = runtime.predict(batch)
    original = Interpreter(model_path=str(segmenter_file))
    original.allocate_tensors()
    original.set_tensor(original.get_input_details()[0]["index"], (batch / 255).astype(np.float32))
    original.invoke()
    reference = original.get_tensor(original.get_output_details()[0]["index"])
    assert ours.shape == reference.shape == (1, 256, 256, 1)
    np.testing.assert_allclose(ours, reference, atol=1e-4)  # the same graph, fed as dlpipe prepares photos
    masks = [runtime.task.describe(row, runtime.class_names, 2) for row in (ours[0], reference[0])]
    assert masks[0] == masks[1]


def test_predict_with_the_named_segmenter_writes_masks_at_the_photo_size(segmenter_file, tmp_path):
    from PIL import Image

    from dlpipe.pipelines.cli import main

    photo = _photo(tmp_path)
    out = tmp_path / "masks"
    result = CliRunner().invoke(main, ["predict", "--model", "person-segmenter", str(photo), "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    row = json.loads((out / "masks.jsonl").read_text().splitlines()[0])
    mask = Image.open(row["mask"])
    assert mask.size == Image.open(photo).size and set(np.unique(np.asarray(mask))) <= {0, 1}
    assert Image.open(out / "overlays" / f"{photo.stem}.jpg").size == mask.size
    if photo == PERSON_PHOTO:  # darknet's person.jpg: a person beside a horse and a dog
        assert 0.05 < dict((t["label"], t["score"]) for t in row["top"])["person"] < 0.6
