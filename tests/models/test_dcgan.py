"""The DCGAN: shapes and range, training moves the losses, resumable training, sample grids, the Fréchet distance."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dlpipe.data.builtin_datasets import load_builtin
from dlpipe.models import dcgan, frechet
from dlpipe.pipelines.gan.training import train_gan


@pytest.fixture(scope="module")
def digits():
    """A balanced slice of real MNIST digits (mnist-5k): (train images, train labels, test images)."""
    data = load_builtin("mnist-5k", limit=1000)
    return data.train_images, data.train_labels, data.test_images


@pytest.mark.parametrize("size, channels, steps", [(28, 1, 2), (32, 3, 2), (64, 1, 3)])
def test_generator_makes_images_of_the_right_shape_and_range(size, channels, steps):
    generator = dcgan.build_generator(latent_dim=16, image_size=size, channels=channels, filters=8, upsamplings=steps)
    images = generator.predict(np.random.default_rng(0).standard_normal((5, 16)) * 3, verbose=0)
    assert images.shape == (5, size, size, channels)
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0
    discriminator = dcgan.build_discriminator(size, channels, filters=8, downsamplings=steps)
    assert discriminator(images).shape == (5, 1)
    pixels = dcgan.to_pixels(images)
    assert pixels.dtype == np.uint8 and pixels.shape == images.shape


def test_bad_sizes_say_what_fits():
    with pytest.raises(ValueError, match=r"multiple of 2\*\*upsamplings.*Received: image_size=30"):
        dcgan.build_generator(image_size=30)
    with pytest.raises(ValueError, match="generator makes"):
        dcgan.DCGAN(dcgan.build_generator(image_size=28), dcgan.build_discriminator(image_size=32))


def test_a_few_steps_on_real_digits_move_both_losses_and_the_generator(digits, tmp_path):
    gan = dcgan.make_dcgan(filters=8, latent_dim=16)
    gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5))  # quick moves
    before = [w.copy() for w in gan.generator.get_weights()]
    first = float(gan._bce(1.0, gan.discriminator(dcgan.to_gan_range(digits[0][:64]))))
    history = train_gan(gan, dcgan.gan_dataset(digits[0][:512], 32), 2, tmp_path)
    assert len(history["d_loss"]) == 2 and len(history["g_loss"]) == 2
    assert all(np.isfinite(history["d_loss"])) and abs(history["g_loss"][1] - history["g_loss"][0]) > 0.01
    after = float(gan._bce(1.0, gan.discriminator(dcgan.to_gan_range(digits[0][:64]))))
    assert after < first - 0.1  # the discriminator has learnt that real digits are real
    assert any(not np.allclose(a, b) for a, b in zip(before, gan.generator.get_weights()))


def test_a_killed_run_resumes_where_it_stopped(digits, tmp_path):
    """1 epoch, then a fresh process-like restart to 2 epochs == 2 epochs in one go (same weights, same losses)."""
    images = digits[0][:256]

    def fresh():
        return dcgan.make_dcgan(filters=8, latent_dim=16, seed=3)

    straight = fresh()
    full = train_gan(straight, dcgan.gan_dataset(images, 32, shuffle=False), 2, tmp_path / "straight")

    train_gan(fresh(), dcgan.gan_dataset(images, 32, shuffle=False), 1, tmp_path / "killed")
    resumed = fresh()
    history = train_gan(resumed, dcgan.gan_dataset(images, 32, shuffle=False), 2, tmp_path / "killed")
    np.testing.assert_allclose(history["g_loss"], full["g_loss"], rtol=1e-4)
    for got, want in zip(resumed.generator.get_weights(), straight.generator.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-4)
    # a finished run asked for the same epochs trains no further
    again = train_gan(resumed, dcgan.gan_dataset(images, 32), 2, tmp_path / "killed")
    assert len(again["g_loss"]) == 2


def test_sample_grid_png(tmp_path):
    from PIL import Image

    gan = dcgan.make_dcgan(filters=8, latent_dim=16)
    path = dcgan.save_sample_grid(gan, tmp_path / "grid.png", count=16, columns=4, scale=1)
    picture = np.asarray(Image.open(path))
    assert picture.shape == (4 * 30 + 2, 4 * 30 + 2) and picture.dtype == np.uint8
    np.testing.assert_array_equal(picture[2:30, 2:30], gan.generate(16)[0, ..., 0])  # same seed, same samples


def test_frechet_distance_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 8))
    assert frechet.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # equal covariances, means 2 apart in each of 8 dimensions: d² = 8 * 4
    assert frechet.frechet_distance(a, a + 2.0) == pytest.approx(32.0, rel=1e-6)
    # N(0, I) vs N(0, 4I): per dimension 1 + 4 - 2 * sqrt(1 * 4) = 1, so d² = 8
    assert frechet.frechet_distance(a, 2 * rng.standard_normal((4000, 8))) == pytest.approx(8.0, rel=0.1)
    with pytest.raises(ValueError, match="same D"):
        frechet.frechet_distance(a, a[:, :4])


def test_real_vs_real_floor_is_far_below_an_untrained_generator(digits):
    train_images, train_labels, test_images = digits
    features = frechet.train_feature_model(train_images, train_labels, epochs=1)
    assert features.output_shape == (None, 128)
    floor = frechet.real_floor(features, test_images[:600])
    untrained = dcgan.make_dcgan(filters=8, latent_dim=16).generate(300)
    distance = frechet.image_frechet_distance(features, test_images[:300], untrained)
    assert 0 < floor < distance / 5
