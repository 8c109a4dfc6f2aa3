"""dlpipe: folder of images or file of sentences -> fine-tuned, evaluated, exported model.

The source folders `pipelines/`, `models/`, `data/` and `serving/` install as
`dlpipe.pipelines`, `dlpipe.models`, `dlpipe.data` and `dlpipe.serving`. This
package holds only what every one of them may import, none of which imports
TensorFlow: `errors` (one-line user errors), `registry` (named entries with
did-you-mean lookups), `atomic` (writes that a kill cannot tear) and `quiet`
(keeping TensorFlow's C++ logs out of the terminal).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
