"""Running artifacts for users (installed as `dlpipe.serving`); never trains.

- `batch_job`: resumable `dlpipe predict --out` (rows streamed to JSONL/CSV), `ray_engine` (the same
  on Ray Data actors);
- `server` (FastAPI, TF Serving's REST API), `batcher` (dynamic batching), `repository` (models and
  versions on disk, hot reload). Every model is loaded through `dlpipe.models.runtimes.load_runtime`.
- `batching_defaults`: the batch sizes, waits and queue bounds of all of these (and of the CLI's flags), each once.
"""
