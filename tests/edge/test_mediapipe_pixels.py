"""MediaPipe resizes a photo to exactly the pixels of dlpipe's `preprocess.sampling=mediapipe`, read back from it.

An identity .tflite whose scores are its input pixels / 256 (image-classifier metadata, mean 0, std 1) runs in the
real MediaPipe ImageClassifier with every category returned: each score is one value of what MediaPipe feeds a
model. Noise photos (the hardest case for rounding) are PNGs, so MediaPipe and dlpipe decode the same pixels.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from PIL import Image

from dlpipe.data.numpy_preprocess import resize_array
from dlpipe.data.preprocess import resize_image
from edge.mediapipe_env import require_mediapipe, run_mediapipe

SIZE = 40


def identity_classifier(path) -> None:
    import keras

    from dlpipe.models.tflite_metadata.image_classifier import image_classifier_metadata

    photo = keras.Input((SIZE, SIZE, 3), batch_size=1)
    scores = keras.layers.Reshape((SIZE * SIZE * 3,))(keras.layers.Rescaling(1 / 256)(photo))
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(keras.Model(photo, scores)).convert()
    path.write_bytes(image_classifier_metadata(flatbuffer, [str(i) for i in range(SIZE * SIZE * 3)]))


def test_mediapipe_resizes_a_photo_to_exactly_dlpipes_pixels(tmp_path):
    require_mediapipe()
    model = tmp_path / "identity.tflite"
    identity_classifier(model)
    rng = np.random.default_rng(0)
    photos = {}
    for height, width in ((37, 53), (90, 70), (320, 320)):  # up and down, odd ratios, the fashion scenes' size
        path = tmp_path / f"{height}x{width}.png"
        photos[path] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(photos[path]).save(path)
    answer = run_mediapipe({"image": [{"model": str(model), "images": [str(path) for path in photos]}]})
    for (path, pixels), categories in zip(photos.items(), answer["image"][0]):
        theirs = np.zeros(SIZE * SIZE * 3)
        for category in categories:
            theirs[category["index"]] = category["score"]
        theirs = np.round(theirs.reshape(SIZE, SIZE, 3) * 256)
        graph = resize_image(tf.constant(pixels), SIZE, "stretch", sampling="mediapipe").numpy()
        numpy = resize_array(pixels, SIZE, "stretch", sampling="mediapipe")
        np.testing.assert_array_equal(graph, theirs, err_msg=path.name)
        np.testing.assert_array_equal(numpy, theirs, err_msg=path.name)
