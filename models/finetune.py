"""Choose which backbone layers train during fine-tuning.

"Unfreeze the top N blocks" needs a notion of block; each backbone row names
its blocks with a regex over layer names, and everything after the last block
(the head convolution) counts as part of the top.
"""

from __future__ import annotations

import re

import keras


def block_names(backbone: keras.Model, block_pattern: str) -> list[str]:
    """Block names in network order (e.g. ['block1a', 'block2a', ...])."""
    seen: list[str] = []
    for layer in backbone.layers:
        match = re.match(block_pattern, layer.name)
        if match and match.group(1) not in seen:
            seen.append(match.group(1))
    return seen


def unfreeze_top_blocks(backbone: keras.Model, block_pattern: str, count: int, batch_norm: bool = False) -> int:
    """Make the last `count` blocks and the layers after them trainable; -1 means all.

    Batch-norm layers stay frozen unless `batch_norm`: their statistics were learnt on ImageNet and the
    classifier calls the backbone in inference mode anyway (so even with `batch_norm` only their scales and
    offsets train, never the statistics). Returns the number of trainable weights afterwards.
    """
    backbone.trainable = True
    if not isinstance(backbone, keras.Model):
        return len(backbone.trainable_weights)  # one layer (a pretrained embedding): no blocks, all of it trains
    layers = backbone.layers
    chosen: set[str] | None = None
    if count >= 0:
        names = block_names(backbone, block_pattern)
        chosen = set(names[len(names) - count:]) if count else set()
    block_positions = [i for i, layer in enumerate(layers) if re.match(block_pattern, layer.name)]
    if not block_positions and count:
        chosen = None  # no blocks to count (e.g. a TF-Hub module is one layer): unfreeze all of it
    last_block = block_positions[-1] if block_positions else len(layers)
    for position, layer in enumerate(layers):
        match = re.match(block_pattern, layer.name)
        if chosen is None:
            trainable = True
        elif match:
            trainable = match.group(1) in chosen
        else:  # stem layers stay frozen; the head after the last block trains with any block
            trainable = position > last_block and bool(chosen)
        if isinstance(layer, keras.layers.BatchNormalization) and not batch_norm:
            trainable = False
        layer.trainable = trainable
    return len(backbone.trainable_weights)
