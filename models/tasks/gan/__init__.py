"""The gan task's runtime half: `task` (seeds in, generated images out) and `export` (the generator as .keras,
a SavedModel and TFLite, each taking latent vectors).
"""

from dlpipe.models.tasks.gan.task import TASK, GanPreprocessing, GanTask, latent_vectors, to_pixels

__all__ = ["TASK", "GanPreprocessing", "GanTask", "latent_vectors", "to_pixels"]
