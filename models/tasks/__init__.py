"""Task objects: everything that differs between modalities (images, text, ...) lives in one task module.

A task turns raw inputs (image bytes or paths, strings) into model inputs,
names its preprocessing spec, feeds each artifact format, describes outputs
and scores predictions. The CLI, the batch job, the server, evaluation and
export ask `get_task(name)` instead of branching on a modality string. A new
task is one module (or package) that subclasses `Task`, names the class
`TASK` and registers its exporters, listed by one line in `TASK_MODULES`.
"""

from __future__ import annotations

import importlib

from dlpipe.models.tasks.base import ClassificationTask, InputSet, LabelledData, OutputWriter, PreparedBatch, Task
from dlpipe.registry import Registry

# One line per task: the module that defines its runtime Task class as `TASK`.
TASK_MODULES = (
    "dlpipe.models.tasks.image",
    "dlpipe.models.tasks.text",
    "dlpipe.models.tasks.detect",
    "dlpipe.models.tasks.segment",
    "dlpipe.models.tasks.multilabel",
    "dlpipe.models.tasks.gan",
    "dlpipe.models.tasks.points",
)

TASKS: Registry[Task] = Registry("task")
for _module in TASK_MODULES:
    _task = importlib.import_module(_module).TASK()
    TASKS.add(_task.name, _task)


def get_task(name: str) -> Task:
    """The registered task called `name` (e.g. the "task" field of an artifact's preprocessing.json)."""
    return TASKS.get(name, key="task")


__all__ = ["TASKS", "ClassificationTask", "InputSet", "LabelledData", "OutputWriter", "PreparedBatch", "Task", "get_task"]
