#!/usr/bin/env bash
# The main job: builds vigil (release) and runs the perception pipeline on the built-in
# synthetic 8-camera rig. Extra arguments go to `vigil run` (see `vigil run --help`), e.g.
#   bash scripts/run-main.sh --duration 20
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin vigil
exec target/release/vigil run "$@"
