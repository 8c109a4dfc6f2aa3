"""Scale-out for batch prediction: the same job on a Ray cluster with Ray Data.

Each actor loads the model once (`map_batches` with a callable class) and
returns the same rows as the in-process engine, as JSON strings so optional
fields survive Arrow. Order is preserved, so the resumable writer and its
"skip what is done" logic work unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Sequence


class _Worker:
    """One model per actor; turns a batch of inputs into result rows."""

    def __init__(self, model_source: str, kind: str, top_k: int):
        from dlpipe.serving.predictor import ImagePredictor, TextPredictor

        self.kind = kind
        self.top_k = top_k
        self.predictor = TextPredictor.load(model_source) if kind == "text" else ImagePredictor.load(model_source)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        ids = [str(item) for item in batch["input"]]
        if self.kind == "text":
            for key, text, error in zip(ids, batch["text"], batch["error"]):
                self.predictor.texts[key] = (text, error)
        rows = self.predictor.predict_files(ids, self.top_k, max(len(ids), 1))
        return {"row": [json.dumps(row) for row in rows]}


def ray_classifier(model_source: str, kind: str, address: str | None, top_k: int, batch_size: int,
                   texts: dict[str, tuple[str | None, str | None]] | None = None,
                   actors: int = 1) -> Callable[[Sequence[str]], Iterator[list[dict[str, Any]]]]:
    """A `classify(todo)` for `run_batch_job` that runs on Ray (a local instance when address is None)."""

    def classify(todo: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        import ray

        if not todo:
            return
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        if kind == "text":
            items = [{"input": key, "text": texts[key][0], "error": texts[key][1]} for key in todo]
        else:
            items = [{"input": path} for path in todo]
        rows = ray.data.from_items(items).map_batches(
            _Worker, fn_constructor_args=(model_source, kind, top_k), batch_size=batch_size, concurrency=actors,
            batch_format="numpy",
        )
        for batch in rows.iter_batches(batch_size=batch_size, batch_format="numpy"):
            yield [json.loads(row) for row in batch["row"]]

    return classify
