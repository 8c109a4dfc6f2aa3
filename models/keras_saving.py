"""Make Keras' own cache of its saving skip sets work: every save and load of weights gets cheaper.

Keras 3 saves and loads a model by walking every attribute of each layer, optimizer and metric, minus a per-type
set of attributes that a plain reference object has (`saving_lib.get_attr_skipset`). It means to compute each set
once, but files it under `saving_attr_skipset_<type>` and looks it up under `saving_attr_skiplist_<type>` (Keras
3.15.1), so every `save_weights`, `load_weights` and `.keras` save builds throwaway reference Layers and an
Optimizer again: about 40% of a small model's `save_weights`, which the per-epoch backup calls every epoch.
`cache_skipsets()` files each set under the key Keras reads. The sets are the ones Keras computes, so what is
saved does not change; on a Keras that reads its cache correctly this only fills it early.
"""

from __future__ import annotations

# the object types whose sets Keras' saving walk asks for (saving_lib.get_attr_skipset's branches that need no
# feature-space layer)
SAVEABLE_TYPES = ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss")
LOOKUP_KEY = "saving_attr_skiplist_{}"  # the key get_attr_skipset reads


def cache_skipsets() -> None:
    """File each type's skip set where Keras' saving looks for it (again after `keras.backend.clear_session()`,
    which empties Keras' global state). Does nothing where Keras' saving internals differ from these."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving import saving_lib
    except ImportError:
        return
    if not hasattr(saving_lib, "get_attr_skipset"):
        return
    for obj_type in SAVEABLE_TYPES:
        key = LOOKUP_KEY.format(obj_type)
        if global_state.get_global_attribute(key, None) is None:
            global_state.set_global_attribute(key, saving_lib.get_attr_skipset(obj_type))
