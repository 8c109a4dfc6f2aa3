"""The detect task's `web` export: a page that finds objects in the user's photos with MediaPipe Tasks Web.

    web/
      index.html     the page: MediaPipe's ObjectDetector on model.tflite, each photo drawn with its boxes
      model.tflite   the task's float32 .tflite (MediaPipe ObjectDetector's four outputs and metadata)
      mediapipe/     @mediapipe/tasks-vision's ES module bundle and wasm/ (copied by models/export/web.py)

Any detector whose .tflite the detect exporters write runs here: the page reads labels from the file's
metadata and nothing about the model. MediaPipe applies the score threshold and merges the classes found at one
box into one detection (the page lists each as its own box, as dlpipe's rows do); the page then applies the
same greedy class-wise NMS and box limit as `dlpipe predict` (the file holds no NMS), so it shows the boxes
a row of `dlpipe predict` lists. `?inputs=URL,URL&report=1` detects those at load and POSTs the rows
(boxes in each photo's own pixels) to `result` (what `dlpipe check-device --web` and the tests do);
`&min_score=`, `&nms_iou=`, `&max_boxes=` override the defaults written into the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlpipe.models.export import ExportRequest, register
from dlpipe.models.export.web import VENDOR_DIR, WEB_MODEL, copy_mediapipe_files

TASK = "detect"
PACKAGE, BUNDLE = "tasks-vision", "vision_bundle.mjs"
TITLE = "dlpipe object detector"


@register(TASK, "web")
def export_web(model: Any, target: Path, request: ExportRequest, fmt: str) -> None:
    """A folder with the float32 .tflite the detect task exports, the detection page and MediaPipe's web files."""
    from dlpipe.models.tasks.detect.export import export_tflite

    target.mkdir(parents=True, exist_ok=True)
    export_tflite(model, target / WEB_MODEL, request, "tflite")
    write_detect_page(target)


def write_detect_page(target: Path, min_score: float | None = None, nms_iou: float | None = None,
                      max_boxes: int | None = None) -> None:
    """index.html and MediaPipe's vision files into `target` (model.tflite is written beside them);
    the thresholds default to the detect task's (those of `dlpipe predict`)."""
    from dlpipe.models.tasks.detect.task import DetectTask

    defaults = DetectTask()
    copy_mediapipe_files(target, PACKAGE, BUNDLE)
    page = _page(defaults.min_score if min_score is None else min_score,
                 defaults.nms_iou if nms_iou is None else nms_iou,
                 defaults.max_boxes if max_boxes is None else max_boxes)
    (target / "index.html").write_text(page, encoding="utf-8")


# Greedy class-wise NMS as dlpipe.models.tasks.detect.task.select_detections: best first, a box is dropped when its
# IoU with a kept box of the same class is above nms_iou (1 keeps all), at most max_boxes.
_NMS_JS = """
function iou(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]), h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = Math.max(w, 0) * Math.max(h, 0);
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}
function select(found, nmsIou, maxBoxes) {
  const sorted = found.map((d, i) => [d, i]).sort((p, q) => q[0].score - p[0].score || p[1] - q[1]).map(p => p[0]);
  const kept = [];
  for (const d of sorted) {
    if (kept.length >= maxBoxes) break;
    if (nmsIou < 1 && kept.some(k => k.label === d.label && iou(k.box, d.box) > nmsIou)) continue;
    kept.push(d);
  }
  return kept;
}
"""

_DRAW_JS = """
function draw(image, boxes, name) {
  const figure = document.createElement("figure");
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const line = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 300));
  ctx.lineWidth = line; ctx.font = `${6 * line + 6}px sans-serif`; ctx.textBaseline = "top";
  boxes.forEach((d, i) => {
    const colour = `hsl(${[...d.label].reduce((h, c) => h * 31 + c.charCodeAt(0), 7) % 360}, 90%, 45%)`;
    const [x1, y1, x2, y2] = d.box, text = `${d.label} ${d.score.toFixed(2)}`;
    ctx.strokeStyle = colour; ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const width = ctx.measureText(text).width + 2 * line, height = 6 * line + 6 + 2 * line;
    const top = y1 >= height ? y1 - height : y1;
    ctx.fillStyle = colour; ctx.fillRect(x1, top, width, height);
    ctx.fillStyle = "white"; ctx.fillText(text, x1 + line, top + line);
  });
  const caption = document.createElement("figcaption");
  caption.textContent = `${name}: ${boxes.length} object${boxes.length === 1 ? "" : "s"}`;
  figure.append(canvas, caption);
  document.getElementById("photos").append(figure);
}
"""


def _page(min_score: float, nms_iou: float, max_boxes: int) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{TITLE}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }} pre {{ background: #f4f4f4; padding: 1em; }}
canvas {{ max-width: 100%; height: auto; }} figure {{ margin: 1em 0; }}</style></head>
<body>
<h1>{TITLE}</h1>
<p>Runs <code>{WEB_MODEL}</code> in this browser with MediaPipe Tasks' ObjectDetector
(<code>@mediapipe/{PACKAGE}</code>); nothing leaves the page. Boxes scoring at least <span id="min"></span> are
drawn, after class-wise NMS at IoU <span id="nms"></span>, at most <span id="max"></span> a photo.</p>
<p><input type="file" id="files" accept="image/*" multiple> <button id="go">Detect</button></p>
<div id="photos"></div>
<pre id="result">loading the model...</pre>
<script type="module">
import {{ FilesetResolver, ObjectDetector }} from "./{VENDOR_DIR}/{BUNDLE}";
const out = document.getElementById("result");
const query = new URLSearchParams(location.search);
const minScore = Number(query.get("min_score") ?? {min_score!r});
const nmsIou = Number(query.get("nms_iou") ?? {nms_iou!r});
const maxBoxes = Number(query.get("max_boxes") ?? {max_boxes!r});
document.getElementById("min").textContent = minScore;
document.getElementById("nms").textContent = nmsIou;
document.getElementById("max").textContent = maxBoxes;
async function report(body) {{
  if (query.get("report")) await fetch("result", {{method: "POST", body: JSON.stringify(body)}});
}}
{_NMS_JS}
{_DRAW_JS}
async function detectAll(detector, inputs) {{
  document.getElementById("photos").replaceChildren();
  const rows = [];
  for (const item of inputs) {{
    const name = typeof item === "string" ? item : item.name;
    const image = new Image();
    image.src = typeof item === "string" ? item : URL.createObjectURL(item);
    await image.decode();
    // one row per category: MediaPipe merges the classes found at the same box into one detection
    // (category.index is -1 in the web API: classes go by label)
    const found = detector.detect(image).detections.flatMap(d => d.categories.map(c => ({{
      label: c.categoryName, score: c.score,
      box: [d.boundingBox.originX, d.boundingBox.originY, d.boundingBox.originX + d.boundingBox.width,
            d.boundingBox.originY + d.boundingBox.height]}})));
    const boxes = select(found, nmsIou, maxBoxes);
    draw(image, boxes, name);
    rows.push({{input: name, width: image.naturalWidth, height: image.naturalHeight, detections: boxes}});
  }}
  return rows;
}}
try {{
  const files = await FilesetResolver.forVisionTasks("./{VENDOR_DIR}/wasm");
  const detector = await ObjectDetector.createFromOptions(files, {{
    baseOptions: {{modelAssetPath: "{WEB_MODEL}", delegate: "CPU"}}, runningMode: "IMAGE",
    scoreThreshold: minScore, maxResults: -1}});
  out.textContent = "ready";
  const given = query.get("inputs");
  if (given) {{
    const rows = await detectAll(detector, given.split(","));
    out.textContent = JSON.stringify(rows, null, 1);
    await report(rows);
  }}
  document.getElementById("go").addEventListener("click", async () => {{
    const rows = await detectAll(detector, Array.from(document.getElementById("files").files));
    out.textContent = JSON.stringify(rows, null, 1);
  }});
}} catch (error) {{
  out.textContent = "error: " + error;
  await report({{error: String(error)}});
}}
</script>
</body></html>
"""
