"""The segment task: photos in, one class per pixel out (mask PNGs and overlays at the photo's own size).

Inputs are read and decoded exactly as the image task reads them (`dlpipe.data.preprocess`), but
stretched to the model's size (no crop, so every output pixel maps back onto the whole photo). A
model's output is (N, H, W, C) class probabilities, or (N, H, W, 1) for a binary model whose one
channel is the foreground probability (MediaPipe's selfie segmenter); `class_probabilities` turns
both into (H, W, C). A batch job with `--out FOLDER` writes per input a class-index mask PNG
(palette PNG: viewers show colours, readers get the indices) resized to the photo's size, and an
overlay JPEG; rows go to FOLDER/masks.jsonl. Those masks are exactly what `dlpipe run segment`
reads as training targets.

The runtime half of the task, one package: `task` (the Task), `export` (its exporters), `metrics`.
"""

from dlpipe.models.tasks.segment.task import PALETTE, TASK, SegmentPreprocessing, SegmentTask, mask_of, overlay, palette_png

__all__ = ["PALETTE", "TASK", "SegmentPreprocessing", "SegmentTask", "mask_of", "overlay", "palette_png"]
