"""The image task: encoded photos in, class probabilities out.

Every path from a file to the model's input goes through
`dlpipe.data.preprocess`, the code that prepared the training images.

The runtime half of the task, one package: `task` (the Task), `export` (its exporters).
"""

from dlpipe.models.tasks.image.task import TASK, ImageTask

__all__ = ["TASK", "ImageTask"]
