"""The `web` export: a folder a static web server can serve, running the .tflite in the browser with MediaPipe Tasks.

    web/
      index.html            the page: MediaPipe's classifier on the model, inputs from the user (or ?inputs=)
      model.tflite          the float32 export, standard metadata included (labels, tokenizer)
      mediapipe/            MediaPipe Tasks' web files: the ES module bundle and its wasm/ folder
      labels.txt, preprocessing.json, artifacts.json, vocabulary  (the usual side files)

MediaPipe's web files come from npm (`@mediapipe/tasks-vision`, `@mediapipe/tasks-text`), fetched once
by scripts/setup.sh into .web-vendor/ (or $DLPIPE_WEB_VENDOR); nothing is fetched at export or at page
load, so the folder works offline. With `?inputs=URL,URL` (images) or `?inputs=URL` (a JSON list of
texts) and `&report=1` the page classifies those and POSTs the JSON rows to `result` (what the tests do).
The task's exporter says which package and which input to use (`WebPage`); nothing here knows a modality.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dlpipe.errors import DlpipeError

ROOT = Path(__file__).resolve().parents[2]
WEB_MODEL = "model.tflite"
VENDOR_DIR = "mediapipe"


@dataclass(frozen=True)
class WebPage:
    """What differs between tasks: the npm package, its classifier, how the page reads one input."""

    package: str  # "tasks-vision"
    bundle: str  # "vision_bundle.mjs"
    resolver: str  # "forVisionTasks"
    classifier: str  # "ImageClassifier"
    title: str
    input_html: str  # the control the user gives inputs with
    read_inputs_js: str  # async JS: `inputs` from the ?inputs= value `given`
    read_user_js: str  # async JS: `inputs` from the user's control
    prepare_js: str  # async JS: `value` (what classify takes) from one `item`
    helpers_js: str = ""  # module-level JS the other snippets call


def vendor_root() -> Path:
    return Path(os.environ.get("DLPIPE_WEB_VENDOR", ROOT / ".web-vendor")) / "node_modules" / "@mediapipe"


def write_web_folder(target: Path, page: WebPage) -> None:
    """index.html and MediaPipe's web files into `target` (the exporter has written model.tflite there)."""
    copy_mediapipe_files(target, page.package, page.bundle)
    (target / "index.html").write_text(_page(page), encoding="utf-8")


def copy_mediapipe_files(target: Path, package: str, bundle_name: str) -> None:
    """MediaPipe's ES module bundle and its wasm/ folder into `target`/mediapipe (pages of other tasks use it too)."""
    source = vendor_root() / package
    bundle = source / bundle_name
    if not bundle.is_file():
        raise DlpipeError(f"export: web needs MediaPipe's web files ({bundle} is missing); run scripts/setup.sh "
                          f"(npm install --prefix .web-vendor @mediapipe/{package})")
    vendor = target / VENDOR_DIR
    (vendor / "wasm").mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle, vendor / bundle_name)
    for wasm in sorted((source / "wasm").iterdir()):
        if "_module_" not in wasm.name:  # the loader picks the SIMD or no-SIMD build; the module build is unused
            shutil.copy(wasm, vendor / "wasm" / wasm.name)


def _page(page: WebPage) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{page.title}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }} pre {{ background: #f4f4f4; padding: 1em; }}</style></head>
<body>
<h1>{page.title}</h1>
<p>Runs <code>{WEB_MODEL}</code> in this browser with MediaPipe Tasks (<code>@mediapipe/{page.package}</code>);
nothing leaves the page.</p>
{page.input_html}
<pre id="result">loading the model...</pre>
<script type="module">
import {{ FilesetResolver, {page.classifier} }} from "./{VENDOR_DIR}/{page.bundle}";
const out = document.getElementById("result");
const query = new URLSearchParams(location.search);
{page.helpers_js}
async function report(body) {{
  if (query.get("report")) await fetch("result", {{method: "POST", body: JSON.stringify(body)}});
}}
async function classifyAll(classifier, inputs) {{
  const rows = [];
  for (const item of inputs) {{
    {page.prepare_js}
    const head = classifier.classify(value).classifications[0];
    rows.push({{input: typeof item === "string" ? item : item.name, categories: head.categories.map(
      c => ({{index: c.index, score: c.score, category_name: c.categoryName}}))}});
  }}
  return rows;
}}
try {{
  const files = await FilesetResolver.{page.resolver}("./{VENDOR_DIR}/wasm");
  const classifier = await {page.classifier}.createFromOptions(files, {{
    baseOptions: {{modelAssetPath: "{WEB_MODEL}", delegate: "CPU"}}, maxResults: -1}});
  out.textContent = "ready";
  const given = query.get("inputs");
  if (given) {{
    let inputs;
    {page.read_inputs_js}
    const rows = await classifyAll(classifier, inputs);
    out.textContent = JSON.stringify(rows, null, 1);
    await report(rows);
  }}
  document.getElementById("go").addEventListener("click", async () => {{
    let inputs;
    {page.read_user_js}
    out.textContent = JSON.stringify(await classifyAll(classifier, inputs), null, 1);
  }});
}} catch (error) {{
  out.textContent = "error: " + error;
  await report({{error: String(error)}});
}}
</script>
</body></html>
"""
