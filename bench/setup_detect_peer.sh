#!/usr/bin/env bash
# The bench-only environment of the detection peer (bench/detect_peer_yolo.py): Ultralytics YOLO on a CPU-only
# PyTorch, in its own venv ($DETECT_PEER_VENV, else .venv-bench-yolo at the repository root; git ignores it) so
# that dlpipe's .venv never sees torch. PyPI's torch wheel for Linux pulls the CUDA libraries (nvidia-*, several
# GB); this machine's image carries the CPU build (torch-*+cpu, 183 MB wheel) in $PIP_FIND_LINKS (/opt/wheels),
# which is used when present, with the torchvision release made for it (pinned so that pip cannot swap the CPU torch
# for the CUDA one). PyPI's torchvision is itself a CUDA build: its C++ ops (nms) cannot load beside a CPU torch,
# so bench/detect_peer_yolo.py then stands in ultralytics' own pure-torch NMS for it (the script checks which).
# Without the CPU wheel, PyPI's torch is installed as is (with CUDA, several GB) and the script says so.
# Measured here: 26 s, 1.6 GB venv (torch 754 MB, opencv 288 MB, polars 170 MB). Already set up: says so, exits.
#   bash bench/setup_detect_peer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${DETECT_PEER_VENV:-$PWD/.venv-bench-yolo}"
ultralytics_version="${ULTRALYTICS_VERSION:-8.4.190}"
versions='import importlib.metadata as m; print("ultralytics", m.version("ultralytics"), "torch", m.version("torch"))'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$versions" >/dev/null 2>&1; then
  echo "detect peer: already set up in $venv ($("$venv/bin/python" -c "$versions"))"
  exit 0
fi
start=$(date +%s)
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --progress-bar off)
cpu_wheel=$(ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-*+cpu-cp3*-manylinux*_x86_64.whl 2>/dev/null | sort -V | tail -n 1 || true)
constraints="$venv/bench-constraints.txt"
if [ -n "$cpu_wheel" ]; then
  torch_version=$(basename "$cpu_wheel" | cut -d- -f2)          # e.g. 2.13.0+cpu
  base=${torch_version%%+*}; minor=$(echo "$base" | cut -d. -f2)
  vision="0.$((minor + 15)).*"                                   # torch 2.N pairs with torchvision 0.(N+15)
  echo "detect peer: installing the CPU torch $torch_version from $cpu_wheel ($(du -h "$cpu_wheel" | cut -f1))"
  printf 'torch==%s\ntorchvision==%s\n' "$torch_version" "$vision" >"$constraints"
  "${pip[@]}" "$cpu_wheel"
else
  echo "detect peer: no CPU torch wheel in ${PIP_FIND_LINKS:-/opt/wheels}; installing PyPI's torch (pulls CUDA, GBs)"
  : >"$constraints"
fi
echo "detect peer: installing ultralytics==$ultralytics_version and torchvision (constraints: $(tr '\n' ' ' <"$constraints"))"
"${pip[@]}" -c "$constraints" "ultralytics==$ultralytics_version" torchvision
"$venv/bin/python" -m pip list --format freeze | grep -i -E '^(torch|torchvision|ultralytics|numpy|opencv[^=]*|polars)=' || true
if "$venv/bin/python" -c "import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)" \
    >/dev/null 2>&1; then
  echo "detect peer: torchvision's ops load"
else
  echo "detect peer: torchvision's C++ ops do not load beside this torch; the benchmark uses ultralytics' TorchNMS"
fi
echo "detect peer: ready in $venv ($(du -sh "$venv" | cut -f1), $(( $(date +%s) - start )) s)"
