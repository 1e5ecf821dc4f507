#!/usr/bin/env python3
"""PyTorch side of the GPU side-by-side: the same ONNX detector, FP16 on cuDNN, batch 8.

Run on the GPU machine, next to `cargo bench -p kernels --features cuda --bench gpu`, so both
figures come from one script run on one device:

    python3 benches/pytorch_peer.py --onnx models/full.onnx --batch 8 \
        --vigil-bench   # also runs the vigil CUDA bench and prints the ratio

Settings, fastest PyTorch offers: FP16 weights and activations, channels_last,
cudnn.benchmark, torch.compile(mode="max-autotune") when it works (CUDA graphs included),
else eager. Timing with CUDA events over `--iters` batches after `--warmup` batches; the
figure is the median GPU time per batch of 8 frames.

The ONNX graph is converted by the small converter below (the op subset vigil supports:
Conv, Relu, Clip, LeakyRelu, Sigmoid, MaxPool, Add, Concat, Resize/Upsample nearest), so no
extra conversion package is needed; `onnx` and `torch` are the only requirements.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys


def build_module(onnx_path):
    import numpy as np
    import onnx
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper

    model = onnx.load(onnx_path)
    g = model.graph
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
    const = {}
    for n in g.node:
        if n.op_type == "Constant":
            const[n.output[0]] = torch.from_numpy(numpy_helper.to_array(n.attribute[0].t).copy())

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterDict()
            for i, (k, v) in enumerate(inits.items()):
                self.params[f"p{i}"] = torch.nn.Parameter(v.float(), requires_grad=False)
            self.names = {k: f"p{i}" for i, k in enumerate(inits)}

        def t(self, env, name):
            if name in env:
                return env[name]
            if name in self.names:
                return self.params[self.names[name]]
            return const[name]

        def forward(self, x):
            env = {g.input[0].name: x}
            for n in g.node:
                op = n.op_type
                ins = [self.t(env, i) if i else None for i in n.input]
                if op == "Constant":
                    continue
                if op == "Conv":
                    pads = attr(n, "pads", [0, 0, 0, 0])
                    y = F.pad(ins[0], (pads[1], pads[3], pads[0], pads[2])) if pads[0] != pads[2] or pads[1] != pads[3] else ins[0]
                    p = (0, 0) if y is not ins[0] else (pads[0], pads[1])
                    out = F.conv2d(y, ins[1].to(y.dtype), ins[2].to(y.dtype) if len(ins) > 2 and ins[2] is not None else None,
                                   stride=attr(n, "strides", [1, 1]), padding=p, groups=attr(n, "group", 1))
                elif op == "Relu":
                    out = F.relu(ins[0])
                elif op == "Clip":
                    lo = ins[1].item() if len(ins) > 1 and ins[1] is not None else attr(n, "min", float("-inf"))
                    hi = ins[2].item() if len(ins) > 2 and ins[2] is not None else attr(n, "max", float("inf"))
                    out = torch.clamp(ins[0], lo, hi)
                elif op == "LeakyRelu":
                    out = F.leaky_relu(ins[0], attr(n, "alpha", 0.01))
                elif op == "Sigmoid":
                    out = torch.sigmoid(ins[0])
                elif op == "MaxPool":
                    pads = attr(n, "pads", [0, 0, 0, 0])
                    y = F.pad(ins[0], (pads[1], pads[3], pads[0], pads[2]), value=float("-inf"))
                    out = F.max_pool2d(y, attr(n, "kernel_shape"), attr(n, "strides", [1, 1]))
                elif op == "Add":
                    out = ins[0] + ins[1]
                elif op == "Concat":
                    out = torch.cat(ins, dim=attr(n, "axis", 1))
                elif op in ("Resize", "Upsample"):
                    scales = [t for t in ins[1:] if t is not None and t.numel() == 4]
                    sf = tuple(float(s) for s in scales[0][2:]) if scales else (2.0, 2.0)
                    out = F.interpolate(ins[0], scale_factor=sf, mode="nearest")
                else:
                    raise SystemExit(f"{onnx_path}: op {op} is outside the supported subset")
                env[n.output[0]] = out
            return tuple(env[o.name] for o in g.output)

    shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    return Net(), shape


def time_pytorch(onnx_path, batch, iters, warmup, compile_mode):
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to PyTorch")
    torch.backends.cudnn.benchmark = True
    net, shape = build_module(onnx_path)
    h, w = shape[2], shape[3]
    net = net.cuda().half().to(memory_format=torch.channels_last).eval()
    x = torch.randn(batch, 3, h, w, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
    run = net
    mode = "eager"
    if compile_mode != "none" and hasattr(torch, "compile"):
        try:
            run = torch.compile(net, mode=compile_mode)
            with torch.inference_mode():
                run(x)
            mode = f"torch.compile({compile_mode})"
        except Exception as e:  # compile is optional; eager is the fallback
            print(f"torch.compile unavailable ({e.__class__.__name__}: {e}); eager", file=sys.stderr)
            run = net
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            run(x)
        torch.cuda.synchronize()
        for _ in range(iters):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            run(x)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    return {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "mode": mode,
        "input": [batch, 3, h, w],
        "median_ms": statistics.median(times),
        "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))],
    }


def time_vigil():
    """Runs the vigil CUDA bench and returns its median time per batch in ms (criterion's output)."""
    cmd = ["cargo", "bench", "-p", "kernels", "--features", "cuda", "--bench", "gpu", "--", "full_plan/cuda"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"time:\s+\[[\d.]+ \w+ ([\d.]+) (\w+)", out)
    if not m:
        raise SystemExit("could not read the vigil bench output:\n" + out)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="FP32 ONNX model (the one vigil compiled)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--compile", default="max-autotune", help="torch.compile mode, or 'none'")
    ap.add_argument("--vigil-bench", action="store_true", help="also run the vigil CUDA bench and print the ratio")
    args = ap.parse_args()
    res = time_pytorch(args.onnx, args.batch, args.iters, args.warmup, args.compile)
    if args.vigil_bench:
        res["vigil_cuda_median_ms"] = time_vigil()
        res["speedup_vs_pytorch"] = res["median_ms"] / res["vigil_cuda_median_ms"]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
