"""The lifecycle config -> stages -> artifacts (installed as `dlpipe.pipelines`), and the CLI.

- `defaults/*.yaml`: one file per pipeline (its task, stage roles and default config);
- `catalog` reads them, `config` merges and checks configs, `stage` holds the stage contract, the
  stage registry and the run context, `stages/` the stages (one module each), `engine` runs them,
  `api` is the Python entry point behind `dlpipe run`;
- `exporting` (export stage and `dlpipe export`), `evaluation` (`dlpipe evaluate`), `training` and
  `plots` (helpers of the train and evaluate stages), `cli` (the `dlpipe` command).
"""
