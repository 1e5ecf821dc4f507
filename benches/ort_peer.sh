#!/usr/bin/env bash
# vigil `cpu` backend vs ONNX Runtime static INT8 (QDQ) on the CPU, side by side, one script.
#
#   bash benches/ort_peer.sh [ort_peer.py options]     e.g. --threads 1,2 --rounds 5 --vigil-isa best,avx2
#
# Installs the pinned peer (benches/requirements-ort.txt) into target/ort-venv, builds the
# vigil bench binary, exports rig frames (seed 9001, never used for training or calibration
# of the committed plans) and runs benches/ort_peer.py, which prints the ratio.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/target/ort-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnxruntime, onnx, numpy" 2>/dev/null; then
    echo "==> installing ONNX Runtime (pinned) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -r "$root/benches/requirements-ort.txt"
fi
echo "==> building plan_bench and export_dataset (release)"
cargo build --quiet --release -p kernels --example plan_bench --example export_dataset
frames="$root/target/ort-peer/frames"
if [ ! -s "$frames/index.jsonl" ]; then
    echo "==> exporting rig frames to $frames"
    target/release/examples/export_dataset --seed 9001 --frames 12 --every 1 --cameras 0,1,2,3 --out "$frames"
fi
exec "$venv/bin/python" "$root/benches/ort_peer.py" --data "$frames" "$@"
