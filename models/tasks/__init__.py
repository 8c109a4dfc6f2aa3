"""Task objects: everything that differs between modalities (images, text, ...) lives in one task module.

A task turns raw inputs (image bytes or paths, strings) into model inputs,
names its preprocessing spec, feeds each artifact format, describes outputs
and scores predictions. The CLI, the batch job, the server, evaluation and
export ask `get_task(name)` instead of branching on a modality string. A new
task is one module that subclasses `Task` and registers itself here with
`TASKS.add`, plus its exporters in `dlpipe.models.export`.
"""

from __future__ import annotations

from dlpipe.models.tasks.base import ClassificationTask, InputSet, LabelledData, OutputWriter, PreparedBatch, Task
from dlpipe.models.tasks.detect import DetectTask
from dlpipe.models.tasks.image import ImageTask
from dlpipe.models.tasks.segment import SegmentTask
from dlpipe.models.tasks.text import TextTask
from dlpipe.registry import Registry

TASKS: Registry[Task] = Registry("task")
TASKS.add(ImageTask.name, ImageTask())
TASKS.add(TextTask.name, TextTask())
TASKS.add(DetectTask.name, DetectTask())
TASKS.add(SegmentTask.name, SegmentTask())


def get_task(name: str) -> Task:
    """The registered task called `name` (e.g. the "task" field of an artifact's preprocessing.json)."""
    return TASKS.get(name, key="task")


__all__ = ["TASKS", "ClassificationTask", "InputSet", "LabelledData", "OutputWriter", "PreparedBatch", "Task", "get_task"]
