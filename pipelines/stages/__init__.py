"""The stages, one module each; importing this package registers them all (none imports TensorFlow at import).

image-classify: load_images, build_model, preprocess_images, augment_images; sentiment: load_text,
preprocess_text, build_text_model; gan: gan (load, model, train, export); segment: segment (load, model,
preprocess, evaluate); every task: train, evaluate, export.
"""

from dlpipe.pipelines.stages import (  # noqa: F401
    augment_images,
    build_model,
    build_text_model,
    evaluate,
    export,
    gan,
    load_images,
    load_text,
    preprocess_images,
    preprocess_text,
    segment,
    train,
)
