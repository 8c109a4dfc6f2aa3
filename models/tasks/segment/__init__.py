"""The segmentation task's runtime half: `task` (photos in, a class per pixel out, mask PNGs and overlays),
`export` and `metrics` (IoU with bootstrap intervals).
"""

from dlpipe.models.tasks.segment.task import PALETTE, TASK, SegmentPreprocessing, SegmentTask, mask_of, overlay, palette_png

__all__ = ["PALETTE", "TASK", "SegmentPreprocessing", "SegmentTask", "mask_of", "overlay", "palette_png"]
