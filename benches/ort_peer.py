#!/usr/bin/env python3
"""vigil's fast CPU backend against ONNX Runtime's CPU execution provider, side by side.

The same detector (`models/vigil_det.onnx`, compiled by `vigil compile` into
`models/full.vplan`), the same camera frame, the same number of threads, in one script run:

* ONNX Runtime: the ONNX model quantised with ONNX Runtime's own static INT8 quantisation
  (`quantize_static`, QDQ format, per-channel weights, calibrated on rig frames), run by the
  CPU execution provider with all graph optimisations. Two activation types are tried
  (uint8 and int8 activations, int8 weights) and the faster one is the peer figure, so the
  peer gets its best configuration. The FP32 model is timed too, for context.
* vigil: `kernels/examples/plan_bench` on the `.vplan` (a separate process, so neither runtime's
  thread pool disturbs the other).

ONNX Runtime times the network only, on an input that is already resized and normalised;
the vigil figure is a whole frame (resize and quantise the camera frame, the network, and
peak decoding). The comparison is therefore conservative for vigil.

Rounds alternate the two runtimes (ORT t=1, vigil t=1, ORT t=2, vigil t=2, ...) so that
a change of machine load hits both; the figure per runtime is the median over rounds of the
per-round medians. The ratio printed is ORT time / vigil time: above 1.0 vigil is faster.

Run it through `benches/ort_peer.sh`, which installs ONNX Runtime (pinned, from the Python
package index, into `target/ort-venv`) and exports the rig frames.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def load_frames(data_dir, limit):
    import numpy as np

    rows = [json.loads(l) for l in open(os.path.join(data_dir, "index.jsonl")) if l.strip()]
    out = []
    for r in rows[:limit]:
        path = os.path.join(data_dir, r["image"])
        out.append((path, np.load(path)))
    if not out:
        sys.exit(f"{data_dir}: no frames in index.jsonl")
    return out


def to_input(rgb, h, w):
    """Bilinear resize (pixel centres, as vigil's preprocessing) and /255, NCHW float32."""
    import numpy as np

    sh, sw, _ = rgb.shape
    ys = (np.arange(h) + 0.5) * sh / h - 0.5
    xs = (np.arange(w) + 0.5) * sw / w - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, sh - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, sw - 1)
    y1 = np.clip(y0 + 1, 0, sh - 1)
    x1 = np.clip(x0 + 1, 0, sw - 1)
    fy = np.clip(ys - np.floor(ys), 0, 1)[:, None, None]
    fx = np.clip(xs - np.floor(xs), 0, 1)[None, :, None]
    f = rgb.astype(np.float32)
    top = f[y0][:, x0] * (1 - fx) + f[y0][:, x1] * fx
    bot = f[y1][:, x0] * (1 - fx) + f[y1][:, x1] * fx
    img = (top * (1 - fy) + bot * fy) / 255.0
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None].astype(np.float32))


def quantise(onnx_path, work, inputs, act):
    import onnxruntime.quantization as q

    pre = os.path.join(work, "pre.onnx")
    if not os.path.exists(pre):
        q.shape_inference.quant_pre_process(onnx_path, pre, skip_symbolic_shape=True)
    out = os.path.join(work, f"qdq_{act}.onnx")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"image": x} for x in inputs])

        def get_next(self):
            return next(self.it, None)

    qt = {"u8": q.QuantType.QUInt8, "s8": q.QuantType.QInt8}[act]
    q.quantize_static(
        pre,
        out,
        Reader(),
        quant_format=q.QuantFormat.QDQ,
        activation_type=qt,
        weight_type=q.QuantType.QInt8,
        per_channel=True,
        calibrate_method=q.CalibrationMethod.MinMax,
    )
    return out


def ort_session(path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_ort(sess, x, iters, warmup):
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms)


def time_vigil(binary, plan, frame, threads, iters, warmup, isa):
    cmd = [binary, plan, "--threads", str(threads), "--iters", str(iters), "--warmup", str(warmup), "--frame", frame, "--isa", isa]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default="models/vigil_det.onnx")
    ap.add_argument("--plan", default="models/full.vplan")
    ap.add_argument("--data", required=True, help="export_dataset output (index.jsonl + .npy frames)")
    ap.add_argument("--vigil-bin", default="target/release/examples/plan_bench")
    ap.add_argument("--work", default="target/ort-peer")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--calib", type=int, default=32, help="calibration frames for ORT's quantiser")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vigil-isa", default="best",
                    help="comma list of vigil instruction-set levels to time (best, avx512, avx2, portable); "
                         "the first gives the ratio, e.g. best,avx2 also shows the AVX2-only path")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()

    import numpy as np
    import onnx
    import onnxruntime as ort

    os.makedirs(a.work, exist_ok=True)
    m = onnx.load(a.onnx)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    h, w = dims[2], dims[3]
    frames = load_frames(a.data, max(a.calib, 1))
    inputs = [to_input(f, h, w) for _, f in frames]
    print(f"ONNX Runtime {ort.__version__}, numpy {np.__version__}, model {a.onnx} input {h}x{w}, "
          f"{len(inputs)} calibration frames, timing frame {frames[0][0]}", flush=True)
    models = {"fp32": a.onnx}
    for act in ("u8", "s8"):
        t = time.time()
        models[f"qdq_{act}"] = quantise(a.onnx, a.work, inputs, act)
        print(f"quantised ({act} activations, s8 per-channel weights, QDQ) in {time.time() - t:.1f} s", flush=True)
    x = inputs[0]
    threads = [int(t) for t in a.threads.split(",")]
    isas = [i.strip() for i in a.vigil_isa.split(",") if i.strip()]
    vkeys = ["vigil"] + [f"vigil_{i}" for i in isas[1:]]
    res = {t: {k: [] for k in list(models) + vkeys} for t in threads}
    vig_meta = {}
    for rnd in range(a.rounds):
        for t in threads:
            for k, path in models.items():
                res[t][k].append(time_ort(ort_session(path, t), x, a.iters, a.warmup))
            for key, isa in zip(vkeys, isas):
                v = time_vigil(a.vigil_bin, a.plan, frames[0][0], t, a.iters, a.warmup, isa)
                vig_meta.setdefault(key, v)
                res[t][key].append(v["median_ms"])
            print(f"round {rnd + 1}/{a.rounds}, {t} thread(s): " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in res[t].items()), flush=True)
    print()
    isa_used = vig_meta["vigil"].get("isa", isas[0])
    extra_h = "".join(f" | vigil {vig_meta[k].get('isa', k)} path | ratio" for k in vkeys[1:])
    print(f"| threads | ORT FP32 | ORT INT8 QDQ u8 act | ORT INT8 QDQ s8 act | vigil cpu `{os.path.basename(a.plan)}` ({isa_used}, whole frame) | ratio ORT INT8 best / vigil{extra_h} |")
    print("|---|---|---|---|---|---|" + "---|---|" * (len(vkeys) - 1))
    summary = {"ort_version": ort.__version__, "model": a.onnx, "plan": a.plan, "gops": vig_meta["vigil"].get("gops"),
               "vigil_isa": {k: m.get("isa") for k, m in vig_meta.items()}, "rows": []}
    for t in threads:
        med = {k: statistics.median(v) for k, v in res[t].items()}
        best = min(med["qdq_u8"], med["qdq_s8"])
        ratio = best / med["vigil"]
        extra = "".join(f" | {med[k]:.2f} ms | {best / med[k]:.2f}" for k in vkeys[1:])
        print(f"| {t} | {med['fp32']:.2f} ms | {med['qdq_u8']:.2f} ms | {med['qdq_s8']:.2f} ms | {med['vigil']:.2f} ms | **{ratio:.2f}**{extra} |")
        summary["rows"].append({"threads": t, **{f"{k}_ms": v for k, v in med.items()}, "ratio": ratio,
                                **{f"ratio_{k}": best / med[k] for k in vkeys[1:]}})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    worst = min(r["ratio"] for r in summary["rows"])
    print(f"\nratio (ONNX Runtime INT8 time / vigil time), worst over thread counts: {worst:.2f} "
          f"({'vigil at least as fast' if worst >= 1.0 else 'vigil slower'})")


if __name__ == "__main__":
    main()
