"""Training on several devices or machines (`train.distribute`): the strategy, who the chief is, where each writes.

`mirrored` is TensorFlow's MirroredStrategy over this machine's GPUs (on a
machine without one it runs on the CPU as a single replica); `multi_worker` is
MultiWorkerMirroredStrategy over the cluster that `TF_CONFIG` names (each worker
runs the same `dlpipe run`); `auto` picks `multi_worker` when `TF_CONFIG` names
more than one worker, `mirrored` when more than one GPU is visible, else none.
The engine builds, compiles and fits the model inside the strategy's scope and
hands the later stages a plain copy of the trained model.

Only the chief (worker 0) writes the run folder. Another worker runs in a
temporary folder (`worker_folder`) seeded with the chief's config and
checkpoints, so on `--resume` every worker restores the same backup: the
chief's. `train.batch_size` is the global batch (each of R replicas takes
batch_size / R per step); `train.distribute_scaling: linear` makes it per
replica instead, multiplying the batch and the learning rate by R.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlpipe.errors import ConfigError

DISTRIBUTE = ("none", "auto", "mirrored", "multi_worker")
RESUME_STATE = ("config.yaml", "report.json", "lr_find.json", "checkpoints", "features")
_STRATEGIES: dict[str, Any] = {}  # a process may configure collective ops once: one multi-worker strategy per process


@dataclass(frozen=True)
class Cluster:
    """This process's place in the cluster TF_CONFIG describes."""

    workers: int
    index: int
    chief: bool


def cluster_from_env() -> Cluster | None:
    """The cluster in TF_CONFIG, or None when it is unset or names a single task."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError("TF_CONFIG", f"is not a cluster spec ({error}); expected "
                          '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": N}}') from None
    if workers <= 1:
        return None
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return Cluster(workers=workers, index=index, chief=chief)


def distribute_of(config: Any) -> str:
    """The run's `train.distribute` (none for a pipeline without a train section or without the option)."""
    train = config.sections.get("train") if "train" in config.stages else None
    return getattr(train, "distribute", "none")


def resolve(name: str) -> str:
    """`auto` made concrete: multi_worker with a TF_CONFIG cluster, mirrored with several GPUs, else none."""
    if name != "auto":
        return name
    if cluster_from_env() is not None:
        return "multi_worker"
    import tensorflow as tf

    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"


def make_strategy(name: str) -> Any | None:
    """The tf.distribute strategy for `train.distribute` (None: Keras' default, one device)."""
    name = resolve(name)
    if name == "none":
        return None
    if name in _STRATEGIES:
        return _STRATEGIES[name]
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()  # cheap, and a fresh one per run keeps runs apart
    if cluster_from_env() is None:
        raise ConfigError("train.distribute", "multi_worker needs TF_CONFIG naming at least two workers (set it for "
                          "each worker, or use `dlpipe run ... --engine ray --workers N`, which sets it)")
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    strategy = _patch_keras_reduce(tf.distribute.MultiWorkerMirroredStrategy(communication_options=options))
    _STRATEGIES[name] = strategy
    return strategy


def _patch_keras_reduce(strategy: Any) -> Any:
    """Work around Keras 3's multi-worker reductions (tensorflow/tensorflow#72388), on this strategy object only.

    Keras 3 calls `strategy.reduce` on a whole (x, y) batch to build the model, and with
    `axis=0` on each step's scalar metrics; MultiWorkerMirroredStrategy accepts neither and
    fit fails at once. Reducing each tensor on its own, scalars over no axis, is what Keras means.
    """
    import tensorflow as tf

    original = strategy.reduce

    def reduce(reduce_op: Any, value: Any, axis: int | None = None) -> Any:
        def one(tensor: Any) -> Any:
            rank = getattr(getattr(tensor, "shape", None), "rank", None)
            return original(reduce_op, tensor, axis=None if rank == 0 else axis)

        return tf.nest.map_structure(one, value)

    strategy.reduce = reduce
    return strategy


def replicas() -> int:
    """Replicas training in sync under the current strategy scope (1 outside any)."""
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def scale(cfg: Any) -> int:
    """The factor of the batch and learning rate: the replica count with distribute_scaling=linear, else 1."""
    return replicas() if getattr(cfg, "distribute_scaling", "none") == "linear" else 1


def plain_model(model: Any) -> Any:
    """The trained model without its strategy, for evaluation and export on the chief alone.

    Under a multi-worker strategy every predict would wait for the other workers; a
    model cloned outside the scope, holding the trained weights, answers locally. A model
    Keras cannot clone keeps its (mirrored) variables and only forgets the strategy:
    reading them needs no other worker.
    """
    import keras

    if getattr(model, "_distribute_strategy", None) is None:
        return model
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except (TypeError, ValueError, NotImplementedError):
        model._distribute_strategy = None
        return model
    return copy


def worker_folder(out_dir: Path, resume: bool) -> Path:
    """Where this non-chief worker writes: a temporary folder holding the chief's config and checkpoints."""
    folder = Path(tempfile.mkdtemp(prefix="dlpipe-worker-"))
    if not resume:
        return folder
    for name in RESUME_STATE:  # what decides what a resumed run skips; a worker that skipped less would wait forever
        source = out_dir / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        elif source.is_file():
            shutil.copy2(source, folder / name)
    # the histories seed each phase's best-so-far: a worker without them saved a "best" checkpoint the chief did not,
    # and the collective reads of that save put the workers out of step (whether depended on the epochs' values)
    for history in out_dir.glob("history_*.csv"):
        shutil.copy2(history, folder / history.name)
    return folder


def writes_outputs(strategy: Any | None) -> bool:
    """Whether this process evaluates and exports after training: always, except a non-chief worker of a cluster."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    cluster = cluster_from_env()
    return cluster is None or cluster.chief


def steps_per_execution(steps: int) -> int:
    """Keras' `steps_per_execution` for `steps` batches per call: 1 under a multi-worker strategy, whose collective
    ops fail inside Keras' multi-step loop ("You must feed a value for placeholder tensor"), else `steps`."""
    import tensorflow as tf

    return 1 if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy) else steps


def sharded(dataset: Any) -> Any:
    """Each worker keeps its share of every batch (tf.data auto-shard by DATA): the datasets read files inside a
    map, which sharding by FILE cannot split, and TensorFlow would warn before falling back to DATA anyway."""
    import tensorflow as tf

    if replicas() <= 1:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
