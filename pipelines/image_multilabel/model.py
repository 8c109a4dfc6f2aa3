"""Stage `model` (image-multilabel): the image classifier's backbones and head, with one sigmoid per label."""

from __future__ import annotations

from dlpipe.pipelines.image_classify.model import ModelStage


class MultiLabelModelStage(ModelStage):
    """Build the multi-label classifier: normalisation, backbone (frozen when pretrained), one sigmoid per label.

    Any set of labels can be on at once; each label's decision threshold is chosen later (evaluate) and folded
    into the exported graph.
    """

    head_activation = "sigmoid"
