"""The text task's runtime half: `task` (strings in, class probabilities out), `export` (SavedModel taking raw
strings, TFLite taking token ids with MediaPipe metadata, web) and `twin` (the token-id model a .tflite holds).
"""

from dlpipe.models.tasks.text.task import TASK, TextTask

__all__ = ["TASK", "TextTask"]
