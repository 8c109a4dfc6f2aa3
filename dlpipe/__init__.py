"""dlpipe: folder of images or file of sentences -> fine-tuned, evaluated, exported Keras model.

The source folders `pipelines/`, `models/`, `data/` and `serving/` install as
`dlpipe.pipelines`, `dlpipe.models`, `dlpipe.data` and `dlpipe.serving`. This
package holds only what every one of them may import: errors, the registry and
atomic file writing, none of which imports TensorFlow.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
