"""The detection task: encoded photos in, labelled boxes in the photo's own pixels out.

A model batch is {"pixels": float32 [N, S, S, 3] in [0, 255] (the photo
stretched to S x S, the same decode/resize code as classification), "sizes":
int32 [N, 2] (each photo's height, width)}. Every artifact returns
[N, K, 6] rows of x1, y1, x2, y2 as fractions of the image, score, class
index; `finish` scales them to the photo's pixels, so the batch job, the
server and the parity check see boxes in original pixels whatever the
format. Thresholds, class-wise NMS and the box limit are applied when a row
is described (`with_options` sets them: `dlpipe predict --min-score
--nms-iou --max-boxes`).

The runtime half of the task, one package: `task` (the Task), `export` (its exporters), `metrics`, `drawing`.
"""

from dlpipe.models.tasks.detect.task import TASK, BoxDrawer, DetectPreprocessing, DetectTask, box_iou, select_detections

__all__ = ["TASK", "BoxDrawer", "DetectPreprocessing", "DetectTask", "box_iou", "select_detections"]
