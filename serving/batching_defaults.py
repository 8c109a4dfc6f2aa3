"""The batching defaults of the batch job, the server and the batcher, each value defined once and named.

The batch job and the server differ on purpose: a batch job wants throughput, so it feeds the model 32 inputs
a call; the server wants each request answered soon, and LiteRT on a CPU gains nothing per row from batches
larger than 8 while a request in a batch of 32 waits for all 32 (bench/serving_load.py: p99). The CLI's flags,
`ServerSettings`, `BatchPolicy`, `DynamicBatcher` and `result_rows` take their defaults from here. No TensorFlow
is imported here, so the CLI can read them for its help.
"""

BATCH_JOB_BATCH_SIZE = 32  # dlpipe predict / the batch job: inputs per model call (throughput)
SERVER_MAX_BATCH_SIZE = 8  # dlpipe serve: most inputs per model call (latency: p99 at 32 clients)
SERVER_MAX_WAIT_MS = 0.0  # the server runs a batch as soon as the model is free; >0 waits to fill batches
SERVER_MAX_QUEUE = 256  # submissions allowed to wait for the model; more are refused (HTTP 503)
BATCH_THREADS = 0  # model calls run at once (0: one per core)
