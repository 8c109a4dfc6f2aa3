"""One worker of a multi-worker test run, in its own process: `api.run` with TF_CONFIG from the environment.

argv[1] is a JSON job, or a list of jobs run one after another in this process (one cluster, one strategy, one
start of TensorFlow): pipeline, data, out, sets, resume; `epochs_file` gets the number of each epoch this
process begins (what a resumed run really trained); `kill_at` [epoch, batch] SIGKILLs this process after that
training batch, as a machine lost mid-epoch would be.
"""

import json
import os
import signal
import sys

import keras

from dlpipe.pipelines import api


class Watch(keras.callbacks.Callback):
    def __init__(self, epochs_file: str | None, kill_at: list[int] | None):
        super().__init__()
        self.epochs_file, self.kill_at, self.epoch = epochs_file, kill_at, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.epochs_file:
            with open(self.epochs_file, "a", encoding="utf-8") as handle:
                handle.write(f"{epoch}\n")

    def on_train_batch_end(self, batch, logs=None):
        if self.kill_at and [self.epoch, batch] == list(self.kill_at):
            os.kill(os.getpid(), signal.SIGKILL)


jobs = json.loads(sys.argv[1])
for job in jobs if isinstance(jobs, list) else [jobs]:
    watch = [Watch(job.get("epochs_file"), job.get("kill_at"))]
    if job["resume"]:
        api.run(job["pipeline"], out=job["out"], resume=True, echo=lambda _: None, callbacks=watch)
    else:
        api.run(job["pipeline"], data=job["data"], out=job["out"], sets=job["sets"], echo=lambda _: None,
                callbacks=watch)
