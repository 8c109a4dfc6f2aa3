"""`dlpipe distill TEACHER_RUN --data FILE`: a small text student trained on a finished run's soft labels.

Registered on the `dlpipe` group by `dlpipe.pipelines.cli`; a thin shell over `api.run("distill", ...)`
(pipelines/distill/), so the student is a normal run folder. Imports no TensorFlow itself.
"""

from __future__ import annotations

import click

from dlpipe.pipelines.cli_common import friendly_errors


@click.command("distill")
@click.argument("teacher", metavar="TEACHER_RUN", type=click.Path())
@click.option("--data", "data", metavar="FILE",
              help="Labelled texts (text<TAB>label, or .csv): the training split and the held-out validation split "
                   "(required, except with --resume).")
@click.option("--unlabelled", "unlabelled", metavar="FILE",
              help="Texts without labels that the teacher labels too: one a line (.txt), the text column of a "
                   ".tsv/.csv, or .jsonl with \"text\".")
@click.option("--out", "out", metavar="DIR", help="Output folder of the student run (default: runs/distill-TIMESTAMP).")
@click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="YAML file overriding the distill pipeline's default config (see `dlpipe config distill`).")
@click.option("--set", "sets", metavar="KEY=VALUE", multiple=True,
              help="Override one config value, e.g. --set distill.temperature=2 or --set model.architecture=lstm; repeatable.")
@click.option("--resume", is_flag=True, help="Continue a killed student run in --out from its last checkpoint, with its "
                                            "saved config (the teacher and texts it was started with).")
@click.option("--overwrite", is_flag=True, help="Delete the run already in --out and start again.")
@friendly_errors
def distill_command(teacher: str, data: str, unlabelled: str | None, out: str | None, config_file: str | None,
                    sets: tuple[str, ...], resume: bool, overwrite: bool) -> None:
    """Train a small student (the sentiment pipeline's GRU by default) on TEACHER_RUN's probabilities over the
    training texts of --data and the --unlabelled texts; the validation split stays labelled and never fits.
    The student run exports, evaluates and ships like any sentiment run (labels.txt, preprocessing.json,
    model card, report.html); distill_targets.npz keeps the targets it was fitted to."""
    from pathlib import Path

    from dlpipe.errors import ConfigError
    from dlpipe.pipelines import api
    from dlpipe.pipelines.distill.targets import check_teacher

    check_teacher(teacher)
    if resume:  # the saved config.yaml names the teacher, the data and the unlabelled texts
        result = api.run("distill", out=out, config_file=config_file, sets=sets, resume=True, echo=click.echo)
        click.echo(f"done: student run in {result.out_dir}")
        return
    if not data:
        raise ConfigError("load.path", "no dataset given; pass --data FILE (text<TAB>label per line)")
    given = [f"distill.teacher={Path(teacher).absolute()}"]
    if unlabelled:
        given.append(f"distill.unlabelled={Path(unlabelled).absolute()}")
    result = api.run("distill", data=data, out=out, config_file=config_file, sets=(*given, *sets), resume=resume,
                     overwrite=overwrite, echo=click.echo)
    click.echo(f"done: student run in {result.out_dir}")
