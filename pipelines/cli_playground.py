"""`dlpipe playground`: write the local Playground page (TensorFlow.js, no network) and optionally open it.

Registered on the `dlpipe` group by `dlpipe.pipelines.cli`; imports no TensorFlow.
"""

from __future__ import annotations

import click

from dlpipe.pipelines.cli_common import friendly_errors


@click.command("playground")
@click.option("--out", "out_dir", metavar="DIR", type=click.Path(file_okay=False), default="playground",
              show_default=True, help="Folder to write index.html, playground.js and tf.min.js into.")
@click.option("--open", "open_page", is_flag=True,
              help="Serve the folder on 127.0.0.1 (a free port), print its URL, open it in a browser; Ctrl-C stops.")
@friendly_errors
def playground_command(out_dir: str, open_page: bool) -> None:
    """A page like the TensorFlow Playground: circle, XOR, Gaussian and spiral points, features, hidden layers,
    activation, learning rate, L1/L2 and batch size; it trains in the browser and redraws the decision boundary and
    the train/test loss. Settings are URL parameters (e.g. ?dataset=spiral&features=x,y,sinx,siny&layers=8,8&autostart=1).
    "Export as dlpipe config" downloads points.csv and points.yaml for `dlpipe run points`."""
    from dlpipe.pipelines.playground import serve, write_playground

    page = write_playground(out_dir)
    click.echo(f"page: {page}")
    if not open_page:
        return
    import time
    import webbrowser

    server, url = serve(page.parent)
    click.echo(f"serving {page.parent} at {url} (Ctrl-C stops)")
    webbrowser.open(url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
