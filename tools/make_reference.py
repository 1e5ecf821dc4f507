"""Writes the test fixtures derived from the trained model.

    tools/.venv/bin/python tools/make_reference.py [--model models/vigil_det.onnx] [--heldout 6]

* models/vigil_det.ref.json: ONNX Runtime outputs of the model on an input defined by a
  formula (pixel (x, y), channel c = (7x + 13y + 29c + (x*y mod 11)) mod 256), every
  `stride`-th element of the NCHW outputs. `kernels/tests/compile_onnx.rs` runs vigil's FP32
  interpreter on the same input and compares.
* models/heldout/ (unless --heldout 0): a few held-out stand-in frames with ground truth
  (seed 9000, never used in training). The committed held-out set is rig frames instead
  (`cargo run -p kernels --example export_dataset -- --seed 9000 --frames 1 --out
  models/heldout`, docs/MODEL.md), read by `kernels/tests/compile_accuracy.rs`.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dataset import standin_dataset, write_dataset  # noqa: E402


def formula_input(h, w):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 29 + (x * y) % 11) % 256).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/vigil_det.onnx")
    ap.add_argument("--heldout", type=int, default=6)
    ap.add_argument("--stride", type=int, default=7)
    args = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    _, _, h, w = sess.get_inputs()[0].shape
    img = formula_input(h, w)
    x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    hm, box = sess.run(["heatmap", "box"], {"image": x})
    ref = dict(input_hw=[h, w], stride=args.stride, tolerance=2e-3,
               heatmap=[round(float(v), 6) for v in hm.reshape(-1)[:: args.stride]],
               box=[round(float(v), 6) for v in box.reshape(-1)[:: args.stride]])
    out = os.path.splitext(args.model)[0] + ".ref.json"
    with open(out, "w") as f:
        json.dump(ref, f)
    print(f"wrote {out}")
    if args.heldout:
        images, labels = standin_dataset(9000, args.heldout)
        d = os.path.join(os.path.dirname(args.model), "heldout")
        write_dataset(d, images, [[dict(cls=o["class"], bbox=o["bbox"], depth=o["depth"],
                                        visible_fraction=o["visible_fraction"]) for o in l] for l in labels])
        print(f"wrote {len(images)} held-out frames to {d}")


if __name__ == "__main__":
    main()
