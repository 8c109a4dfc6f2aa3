"""The gan runtime task: seeds in (numbers, ranges, files), deterministic latent vectors, parity, its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from dlpipe.errors import DataError
from dlpipe.models.tasks import get_task
from dlpipe.models.tasks.gan import GanPreprocessing, latent_vectors

TASK = get_task("gan")
PREP = GanPreprocessing(latent_dim=16)


def test_seeds_come_from_numbers_ranges_and_files_in_order_each_once(tmp_path):
    listed = tmp_path / "seeds.txt"
    listed.write_text("7\n# a comment\n\n3  # again\nseven\n9-8\n")
    inputs = TASK.collect_inputs(["3", "0-2", str(listed)])
    assert inputs.ids == ["3", "0", "1", "2", "7", f"{listed}:5", f"{listed}:6"]
    assert [inputs.payloads[key] for key in inputs.ids[:5]] == [3, 0, 1, 2, 7]
    assert "'seven' is not a seed" in inputs.errors[f"{listed}:5"]
    assert "smaller to a larger seed" in inputs.errors[f"{listed}:6"]
    with pytest.raises(DataError, match="neither a seed nor a file of seeds"):
        TASK.collect_inputs(["-1"])
    with pytest.raises(DataError, match="is a folder"):
        TASK.collect_inputs([str(tmp_path)])


def test_a_seed_is_always_the_same_latent_vector_and_bad_instances_are_refused():
    latent = TASK.prepare(5, PREP)
    np.testing.assert_array_equal(latent, np.random.default_rng(5).standard_normal(16).astype(np.float32))
    np.testing.assert_array_equal(TASK.prepare("5", PREP), latent)  # a seed sent as text
    assert not np.allclose(TASK.prepare(6, PREP), latent)
    batches = list(TASK.batches(TASK.collect_inputs(["4-6"]), PREP, batch_size=2))
    assert [batch.ids for batch in batches] == [["4", "5"], ["6"]]
    np.testing.assert_array_equal(batches[0].batch[1], latent)
    for bad in (-1, 1.5, True, "x", "²", "9" * 40, {"b64": "AA=="}):
        with pytest.raises(DataError, match="takes seeds") as error:
            TASK.prepare(bad, PREP)
        assert error.value.path == "instance"


def test_dcgan_samples_are_the_images_of_consecutive_seeds():
    from dlpipe.models import dcgan

    generator = dcgan.build_generator(latent_dim=16, image_size=8, filters=4, upsamplings=2)
    direct = dcgan.to_pixels(generator.predict(latent_vectors([5, 6, 7], 16), verbose=0))
    np.testing.assert_array_equal(dcgan.generate_images(generator, 3, seed=5), direct)


def test_parity_measures_images_and_says_none_when_nothing_was_compared():
    empty = TASK.parity(np.zeros((0, 4, 4, 1)), np.zeros((0, 4, 4, 1)))
    assert empty["top1_agreement"] is None and empty["max_abs_diff"] is None and empty["count"] == 0
    reference = np.zeros((2, 4, 4, 1))
    outputs = reference.copy()
    outputs[1, 0, 0, 0] = 0.1  # one pixel of the second image: grey 140 instead of 128
    parity = TASK.parity(reference, outputs)
    assert parity["top1_agreement"] == parity["image_agreement"] == 0.5
    assert parity["max_abs_diff"] == pytest.approx(0.1) and parity["max_pixel_diff"] == 12 and parity["count"] == 2


def test_a_generator_has_no_labelled_evaluation_nor_int8_or_web_exports(tmp_path):
    from dlpipe.models.export import support

    with pytest.raises(DataError, match="no labelled evaluation"):
        TASK.labelled_data(tmp_path)
    with pytest.raises(DataError, match="no labelled evaluation"):
        TASK.score([], np.zeros((0, 4, 4, 1)), [])
    formats = support("gan")
    assert formats["keras"] is None and formats["savedmodel"] is None and formats["tflite-float16"] is None
    assert "Gaussian latent" in formats["tflite-int8"] and "not a classifier" in formats["web"]
