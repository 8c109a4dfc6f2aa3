"""The lifecycle config -> stages -> artifacts (installed as `dlpipe.pipelines`), and the CLI.

- one package per task's training half: `image_classify/`, `sentiment/`, `segment/`, `gan/` (its config
  dataclasses, the one home of its defaults, its stages, its `PIPELINE`), registered by one line in `catalog`;
- `training/`: the training core every trainable task shares (phases, refit, lr finder, cross-validation, tune);
- `stages/`: the stages several tasks share (the classifier's `evaluate`, `export`);
- `config` merges and checks configs, `stage` holds the stage contract and the run context, `engine` runs the
  stages, `api` is the Python entry point behind `dlpipe run`;
- `exporting` (export stage and `dlpipe export`), `evaluation` (`dlpipe evaluate`), `plots`, `cli` (the `dlpipe` command).
"""
