"""`dlpipe check-device --web`: each .tflite in MediaPipe Tasks Web, in headless Chromium, on the user's own inputs.

The page is the one `dlpipe export --format web` writes (models/export/web.py; a detector's, models/tasks/detect/
web.py), served from a temporary folder on 127.0.0.1 with the file under test as its model.tflite, the file's
preprocessing.json (so a crop-trained image model gets its centre crop, as from the exported page) and the raw
inputs beside it; with `?inputs=...&report=1` it classifies them (finds their boxes) and POSTs its rows back.
Needs chromium and MediaPipe's web files (scripts/setup.sh).
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dlpipe.errors import DlpipeError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    """The headless browser's path, or a one-line error saying how to install one."""
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if not found:
        raise DlpipeError("--web needs chromium on PATH; install it (Debian: apt-get install chromium; "
                          "scripts/setup.sh does as root), or leave out --web")
    return found


def web_answers(task: str, tflites: list[Path], inputs: list[str], timeout: float | None = None,
                score_threshold: float | None = None) -> list[dict]:
    """Per file, {"answers": [...]} in the worker's shape (models/mediapipe_worker.py) or {"error": ...};
    `score_threshold`: a detector page's lowest score (its min_score)."""
    from dlpipe.models.export.web import WEB_MODEL

    chromium = browser()
    timeout = timeout or 120 + 1.0 * len(inputs)
    results = []
    with tempfile.TemporaryDirectory(prefix="dlpipe-web-check-") as folder:
        site = Path(folder) / "site"
        site.mkdir()
        try:
            _write_page(task, site)
        except DlpipeError as error:
            raise DlpipeError(f"--web: {str(error).removeprefix('export: web needs ')}") from None
        query = _stage_inputs(task, inputs, site)
        if score_threshold is not None:
            query += f"&min_score={score_threshold}"
        for tflite in tflites:
            shutil.copy(tflite, site / WEB_MODEL)
            _copy_preprocessing(tflite, site)
            rows = browser_rows(chromium, site, query, timeout)
            if isinstance(rows, dict):  # {"error": ...}: the page could not load the model
                results.append({"error": str(rows.get("error"))})
            else:
                results.append({"answers": [{"boxes": row["detections"]} if task == "detect" else _top(row)
                                            for row in rows]})
    return results


def _write_page(task: str, site: Path) -> None:
    """The task's page and MediaPipe's web files into `site`, as its web exporter writes them."""
    from dlpipe.models.export.web import write_web_folder

    if task == "detect":
        from dlpipe.models.tasks.detect.web import write_detect_page

        write_detect_page(site)
        return
    if task == "image":
        from dlpipe.models.tasks.image.export import WEB_PAGE
    else:
        from dlpipe.models.tasks.text.export import WEB_PAGE
    write_web_folder(site, WEB_PAGE)


def _copy_preprocessing(tflite: Path, site: Path) -> None:
    """The file's preprocessing.json beside the page, as `--format web` puts it: the image page draws a crop- or
    letterbox-trained model's region itself (models/tasks/image/export.py); without one it hands the photo over."""
    side = tflite.parent / "preprocessing.json"
    target = site / "preprocessing.json"
    if side.is_file():
        shutil.copy(side, target)
    else:
        target.unlink(missing_ok=True)


def _stage_inputs(task: str, inputs: list[str], site: Path) -> str:
    """The inputs where the page can fetch them, and the ?inputs= value naming them."""
    if task == "text":
        (site / "texts.json").write_text(json.dumps(inputs), encoding="utf-8")
        return "inputs=texts.json"
    (site / "inputs").mkdir()
    names = []
    for index, photo in enumerate(inputs):
        name = f"inputs/{index:06d}{Path(photo).suffix.lower()}"  # the user's names may hold commas or spaces
        shutil.copy(photo, site / name)
        names.append(name)
    return "inputs=" + ",".join(names)


def _top(row: dict[str, Any]) -> dict[str, Any]:
    if not row.get("categories"):
        return {"error": "the page returned no category"}
    best = max(row["categories"], key=lambda category: category["score"])
    return {"index": int(best["index"]), "label": best.get("category_name"), "score": float(best["score"])}


def browser_rows(chromium: str, site: Path, query: str, timeout: float) -> list | dict:
    """Serve `site` on 127.0.0.1, open index.html?QUERY&report=1 headless, return what the page POSTs."""
    posted: dict[str, bytes] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_POST(self) -> None:  # the page reports its rows here
            posted["body"] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/index.html?{query}&report=1"
    profile = tempfile.mkdtemp(prefix="dlpipe-chromium-")
    process = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                f"--user-data-dir={profile}", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        while "body" not in posted and time.monotonic() - started < timeout and process.poll() is None:
            time.sleep(0.2)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    if "body" not in posted:
        raise DlpipeError(f"--web: the page in {chromium} answered nothing within {timeout:.0f} s")
    answer: list | dict = json.loads(posted["body"])
    return answer
