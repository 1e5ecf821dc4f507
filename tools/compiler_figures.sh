#!/usr/bin/env bash
# Figures for docs/perf/compiler.md: compile the committed model and evaluate FP32 vs every
# INT8 variant on held-out stand-in frames (seed 1007: the training run's validation seed).
#
#   tools/compiler_figures.sh [FRAMES]        (default 24)
set -euo pipefail
cd "$(dirname "$0")/.."
frames="${1:-24}"
vigil="${VIGIL:-${CARGO_TARGET_DIR:-target}/debug/vigil}"
val=tools/data/val_standin
if [ ! -f "$val/index.jsonl" ] || [ "$(wc -l < "$val/index.jsonl")" != "$frames" ]; then
    tools/.venv/bin/python -c "
import sys; sys.path.insert(0, 'tools')
from dataset import standin_dataset, write_dataset
i, l = standin_dataset(1007, $frames)
write_dataset('$val', i, [[dict(cls=o['class'], bbox=o['bbox'], depth=o['depth'], visible_fraction=o['visible_fraction']) for o in x] for x in l])
"
fi
"$vigil" compile models/vigil_det.onnx --dataset models/heldout --out out/plans --time-frames 3
for v in full lite floor; do
    "$vigil" eval models/vigil_det.onnx --dataset "$val" --variant "$v"
    "$vigil" eval "out/plans/$v.vplan" --dataset "$val"
done
