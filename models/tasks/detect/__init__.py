"""The detection task's runtime half: `task` (photos in, labelled boxes in the photo's pixels out), `export`,
`metrics` (COCO mAP) and `drawing` (`predict --draw`).
"""

from dlpipe.models.tasks.detect.task import TASK, BoxDrawer, DetectPreprocessing, DetectTask, box_iou, select_detections

__all__ = ["TASK", "BoxDrawer", "DetectPreprocessing", "DetectTask", "box_iou", "select_detections"]
