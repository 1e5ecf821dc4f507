#!/usr/bin/env bash
# Creates tools/.venv (pinned CPU PyTorch, numpy, onnx, onnxruntime) and trains the detector.
#
#   tools/train.sh [train.py options]       e.g. tools/train.sh --seed 7 --standin 2500 --minutes 60
#
# The committed models/vigil_det.onnx was produced by the command recorded in docs/MODEL.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, onnx, onnxruntime, PIL" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    # The CPU wheel index keeps the install small; PyPI's torch (with CUDA libraries) is the fallback.
    if ! "$venv/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu \
            "torch==$(grep '^torch==' "$here/requirements.txt" | cut -d= -f3)" 2>/dev/null; then
        echo "CPU wheel index unreachable; installing torch from PyPI" >&2
    fi
    "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi
cd "$root"
exec nice -n 19 "$venv/bin/python" "$here/train.py" "$@"
