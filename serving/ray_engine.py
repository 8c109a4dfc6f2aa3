"""Scale-out for batch prediction: the same job on a Ray cluster with Ray Data.

Each actor loads the artifact once (`map_batches` with a callable class)
through `load_runtime`, like every other consumer, and returns the same
rows as the in-process engine, as JSON strings so optional fields survive
Arrow. Order is preserved, so the resumable writer and its "skip what is
done" logic work unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Sequence

from dlpipe.models.tasks import InputSet


class _Worker:
    """One runtime per actor; turns a batch of inputs into result rows."""

    def __init__(self, model_source: str, artifact: str, top_k: int):
        from dlpipe.models.runtimes import load_runtime

        self.top_k = top_k
        self.runtime = load_runtime(model_source, artifact)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        from dlpipe.serving.batch_job import result_rows

        inputs = InputSet()
        for key, payload, error in zip(batch["input"], batch["payload"], batch["error"]):
            inputs.add(str(key), str(payload), str(error) or None)  # "" is no error (Arrow makes None a NaN)
        rows = [row for chunk in result_rows(self.runtime, inputs, self.top_k, max(len(inputs.ids), 1)) for row in chunk]
        by_key = {row["input"]: row for row in rows}
        return {"row": [json.dumps(by_key[key]) for key in inputs.ids]}


def ray_classifier(model_source: str, artifact: str, inputs: InputSet, address: str | None, top_k: int,
                   batch_size: int, actors: int = 1) -> Callable[[Sequence[str]], Iterator[list[dict[str, Any]]]]:
    """A `classify(todo)` for `run_batch_job` that runs on Ray (a local instance when address is None)."""

    def classify(todo: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        import ray

        if not todo:
            return
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        items = [{"input": key, "payload": inputs.payloads.get(key, ""), "error": inputs.errors.get(key, "")} for key in todo]
        rows = ray.data.from_items(items).map_batches(
            _Worker, fn_constructor_args=(model_source, artifact, top_k), batch_size=batch_size, concurrency=actors,
            batch_format="numpy",
        )
        for batch in rows.iter_batches(batch_size=batch_size, batch_format="numpy"):
            yield [json.loads(row) for row in batch["row"]]

    return classify
