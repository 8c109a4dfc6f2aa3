"""`dlpipe playground`: the TensorFlow Playground's idea in a local page that trains with TensorFlow.js.

The page (page.html + playground.js, beside this file) and TensorFlow.js's browser bundle (`@tensorflow/tfjs`'s
dist/tf.min.js, fetched once by scripts/setup.sh into .web-vendor/, or $DLPIPE_WEB_VENDOR, where MediaPipe's web
files live too) are copied into one folder, so the page opens from disk with no network. Its "Export as dlpipe
config" button writes points.csv and points.yaml for `dlpipe run points` (pipelines/points).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dlpipe.errors import DlpipeError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TFJS_VERSION = "4.22.0"  # scripts/setup.sh installs this version
PAGE_FILES = ("page.html", "playground.js")


def tfjs_bundle() -> Path:
    """Where scripts/setup.sh puts TensorFlow.js's browser bundle."""
    vendor = Path(os.environ.get("DLPIPE_WEB_VENDOR", ROOT / ".web-vendor"))
    return vendor / "node_modules" / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"


def write_playground(out_dir: str | Path) -> Path:
    """index.html, playground.js and tf.min.js into `out_dir`; returns the page's path."""
    from dlpipe import atomic

    bundle = tfjs_bundle()
    if not bundle.is_file():
        raise DlpipeError(f"playground: TensorFlow.js is missing ({bundle}); run scripts/setup.sh "
                          f"(npm install --prefix .web-vendor @tensorflow/tfjs@{TFJS_VERSION})")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DlpipeError(f"playground: --out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    with atomic.replacing_file(out / "tf.min.js") as tmp:
        shutil.copyfile(bundle, tmp)
    atomic.write_text(out / "playground.js", (HERE / "playground.js").read_text(encoding="utf-8"))
    atomic.write_text(out / "index.html", (HERE / "page.html").read_text(encoding="utf-8"))
    return out / "index.html"


def serve(folder: Path, port: int = 0) -> tuple[object, str]:
    """A static server for `folder` on 127.0.0.1 (a free port by default), started in a thread; (server, URL)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/index.html"
