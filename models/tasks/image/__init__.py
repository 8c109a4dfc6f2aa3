"""The image task's runtime half: `task` (encoded photos in, class probabilities out) and `export` (SavedModel
taking image bytes, TFLite with MediaPipe metadata, web).
"""

from dlpipe.models.tasks.image.task import TASK, ImageTask

__all__ = ["TASK", "ImageTask"]
