"""The multi-label task's runtime half: `task` (a photo in, the set of labels it shows out), `layers` (the per-label
thresholds folded into the model) and `export` (the image task's formats, 0.5 in the TFLite metadata).
"""

from dlpipe.models.tasks.multilabel.task import DECISION_THRESHOLD, TASK, MultiLabelTask, summary_lines

__all__ = ["DECISION_THRESHOLD", "TASK", "MultiLabelTask", "summary_lines"]
