"""`dlpipe runs DIR...`: compare run folders on the console and in a self-contained HTML page.

Registered on the `dlpipe` group by `dlpipe.pipelines.cli`; reads the folders' JSON and YAML only (no TensorFlow).
"""

from __future__ import annotations

import click

from dlpipe.pipelines.cli_common import friendly_errors


@click.command("runs")
@click.argument("places", metavar="DIR...", nargs=-1, required=True)
@click.option("--out", "out_file", metavar="FILE", type=click.Path(dir_okay=False), default=None,
              help="Also write the comparison as one self-contained HTML page (no network), e.g. runs.html.")
@friendly_errors
def runs_command(places: tuple[str, ...], out_file: str | None) -> None:
    """Compare runs: each DIR is a run folder or a folder of runs (e.g. runs/). One line per run: task, data, main
    metric with its 95% interval, training time, artifact sizes; then the config keys whose values differ. A folder
    with missing files is listed with the reason."""
    from dlpipe.pipelines.runs_table import console_report, find_runs, label_runs, read_run

    folders, unusable = find_runs(places)
    rows = label_runs([read_run(folder) for folder in folders])
    click.echo(console_report(rows, unusable))
    if out_file:
        from dlpipe.pipelines.runs_page import write_runs_page

        click.echo(f"page: {write_runs_page(out_file, rows, unusable)}")
