"""TF-Hub feature-vector modules (TF2 SavedModels) as Keras 3 backbones.

`tensorflow_hub.KerasLayer` is built on Keras 2 (tf-keras) and cannot sit in a
Keras 3 model, so the module is loaded with `keras.layers.TFSMLayer`, which
wraps any SavedModel endpoint as a (trainable) Keras 3 layer. Handles resolve
through TF-Hub's own cache ($TFHUB_CACHE_DIR), so a module downloaded once
works offline; a local folder works directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from dlpipe.errors import ConfigError, WeightsUnavailableError

PREFIX = "tfhub:"
# endpoints tried in order: Keras 3 `model.export` ('serve'), signatures ('serving_default'), TF2 hub modules ('__call__')
ENDPOINTS = ("serve", "serving_default", "__call__")


def resolve_module(handle: str) -> Path:
    """A local SavedModel folder for `handle` (a path, or a hub URL found in TF-Hub's cache)."""
    local = Path(handle).expanduser()
    if local.exists():
        if not (local / "saved_model.pb").is_file():
            raise ConfigError("model.backbone", f"'{handle}' is not a SavedModel folder (no saved_model.pb inside)")
        return local
    if "://" not in handle:
        raise ConfigError("model.backbone", f"TF-Hub module '{handle}' is neither a folder nor a URL")
    import tensorflow_hub as hub

    try:
        return Path(hub.resolve(handle))
    except Exception as error:  # tensorflow_hub raises several kinds for a failed download
        cache = os.environ.get("TFHUB_CACHE_DIR", "the TF-Hub cache (set TFHUB_CACHE_DIR)")
        raise WeightsUnavailableError(
            f"{PREFIX}{handle}",
            f"cannot download it ({type(error).__name__}) and it is not in {cache}; download and unpack the module "
            f"on a connected machine, then pass --set model.backbone=tfhub:/path/to/module",
        ) from None


def tfhub_feature_extractor(handle: str, input_shape: tuple[int, int, int], name: str = "hub_module") -> keras.Model:
    """A functional model: pixels in [0, 1] -> the module's feature vector (pooled if it returns a map)."""
    path = resolve_module(handle)
    layer = _load_endpoint(path, name)
    inputs = keras.Input(shape=input_shape, name="pixels")
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise ConfigError("model.backbone", f"TF-Hub module '{handle}' returns several outputs {sorted(outputs)}; "
                              "give a feature-vector module with one output")
        outputs = next(iter(outputs.values()))
    if len(outputs.shape) == 4:
        outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(outputs)
    if len(outputs.shape) != 2:
        raise ConfigError("model.backbone", f"TF-Hub module '{handle}' returns shape {outputs.shape}, not a feature vector")
    return keras.Model(inputs, outputs, name="tfhub_backbone")


@keras.saving.register_keras_serializable(package="dlpipe")
class HubModuleLayer(keras.layers.TFSMLayer):
    """A TFSMLayer whose Keras weights *are* the module's variables, so fine-tuning changes the module.

    Keras 3.15's TFSMLayer tracks fresh copies of the SavedModel's variables
    while its call still reads the originals: training would update weights
    that the forward pass never uses. Sharing the variables fixes that (and
    drops the ':0' that makes optimizer slot names invalid).
    """

    def _add_existing_weight(self, weight) -> None:
        variable = keras.Variable(
            initializer=weight,
            trainable=weight.trainable,
            dtype=weight.dtype,
            shape=weight.shape,
            name=weight.name.replace("/", "_").replace(":", "_"),
        )
        variable._value = weight  # read and write the module's own variable
        self._track_variable(variable)


def _load_endpoint(path: Path, name: str) -> keras.layers.Layer:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    for endpoint in ENDPOINTS:
        if hasattr(loaded, endpoint) or endpoint in getattr(loaded, "signatures", {}):
            return HubModuleLayer(str(path), call_endpoint=endpoint, trainable=True, name=name)
    raise ConfigError("model.backbone", f"SavedModel '{path}' has none of the endpoints {list(ENDPOINTS)}")
