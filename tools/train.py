"""Trains vigil's CenterNet-style detector on the CPU and exports FP32 ONNX.

    tools/train.sh --seed 7 --minutes 60            # stand-in scenes
    tools/train.sh --data out/ds_train --minutes 60 # rig data (export_dataset)

Everything is seeded; with the same data, seed and step count the result is
the same on the same machine (torch CPU kernels are deterministic here).
The time budget (--minutes) bounds training; --steps fixes the step count.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dataset import load_dataset, standin_dataset  # noqa: E402
import detect_eval  # noqa: E402

N_CLASSES = 4
STRIDE = 4


def cbr(i, o, k=3, s=1, g=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU6())


class DS(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, residual when shapes allow."""

    def __init__(self, i, o, s=1):
        super().__init__()
        self.dw = cbr(i, i, 3, s, g=i)
        self.pw = nn.Sequential(nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o))
        self.res = s == 1 and i == o
        self.act = nn.ReLU6()

    def forward(self, x):
        y = self.pw(self.dw(x))
        return self.act(x + y) if self.res else self.act(y)


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16, 3, 2)  # /2
        self.s4 = nn.Sequential(DS(16, 24, 2), DS(24, 32), DS(32, 32))  # /4
        self.s8 = nn.Sequential(DS(32, 64, 2), DS(64, 64))  # /8
        self.s16 = nn.Sequential(DS(64, 96, 2), DS(96, 96), DS(96, 96))  # /16
        self.s32 = nn.Sequential(DS(96, 128, 2), DS(128, 128))  # /32
        self.l32 = cbr(128, 96, 1)
        self.m16 = DS(96, 96)
        self.l16 = cbr(96, 64, 1)
        self.m8 = DS(64, 64)
        self.l8 = cbr(64, 48, 1)
        self.lat4 = cbr(32, 48, 1)
        self.m4 = DS(48, 48)
        self.hm = nn.Sequential(cbr(48, 48, 3, g=48), cbr(48, 48, 1), nn.Conv2d(48, N_CLASSES, 1))
        self.reg = nn.Sequential(cbr(48, 48, 3, g=48), cbr(48, 48, 1), nn.Conv2d(48, 5, 1))
        nn.init.constant_(self.hm[-1].bias, -2.19)

    def features(self, x):
        x = self.stem(x)
        c4 = self.s4(x)
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        p16 = self.m16(F.interpolate(self.l32(c32), scale_factor=2.0, mode="nearest") + c16)
        p8 = self.m8(F.interpolate(self.l16(p16), scale_factor=2.0, mode="nearest") + c8)
        p4 = self.m4(F.interpolate(self.l8(p8), scale_factor=2.0, mode="nearest") + self.lat4(c4))
        return p4

    def forward(self, x):
        f = self.features(x)
        return torch.sigmoid(self.hm(f)), self.reg(f)

    def forward_logits(self, x):
        f = self.features(x)
        return self.hm(f), self.reg(f)


# --- targets -------------------------------------------------------------------------------

VIS_TRAIN = 0.25
MIN_H_TRAIN = 3.0  # pixels at the network input


def make_targets(objs, scale, ox, oy, in_h, in_w, flip):
    """Heatmap (gaussian splats), ignore map and regression targets for one sample.

    `scale` maps camera pixels to input pixels; (ox, oy) is the crop origin in input pixels.
    An object too occluded, truncated or small to be learnt (the evaluation does not count
    it either) is neither a positive nor a negative: the core of its splat is ignored.
    """
    oh, ow = in_h // STRIDE, in_w // STRIDE
    hm = np.zeros((N_CLASSES, oh, ow), np.float32)
    ign = np.zeros((N_CLASSES, oh, ow), np.float32)
    reg = np.zeros((5, oh, ow), np.float32)
    mask = np.zeros((oh, ow), np.float32)
    ys = np.arange(oh, dtype=np.float32)[:, None]
    xs = np.arange(ow, dtype=np.float32)[None, :]
    for o in objs:
        u0, v0, u1, v1 = [c * scale for c in o["bbox"]]
        u0, u1 = u0 - ox, u1 - ox
        v0, v1 = v0 - oy, v1 - oy
        if flip:
            u0, u1 = in_w - u1, in_w - u0
        u0, v0 = max(u0, 0.0), max(v0, 0.0)
        u1, v1 = min(u1, float(in_w)), min(v1, float(in_h))
        bw, bh = u1 - u0, v1 - v0
        if bw < 1 or bh < 1:
            continue
        cx, cy = (u0 + u1) / 2 / STRIDE, (v0 + v1) / 2 / STRIDE
        ix, iy = min(int(cx), ow - 1), min(int(cy), oh - 1)
        sx = max(0.5, bw / STRIDE / 6)
        sy = max(0.5, bh / STRIDE / 6)
        g = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
        k = o["class"]
        if bh < MIN_H_TRAIN or o["visible_fraction"] < VIS_TRAIN:
            ign[k] = np.maximum(ign[k], (g > 0.3).astype(np.float32))
            continue
        hm[k] = np.maximum(hm[k], g)
        hm[k, iy, ix] = 1.0
        reg[:, iy, ix] = [math.log(bw / STRIDE), math.log(bh / STRIDE), cx - ix, cy - iy,
                          math.log(max(o["depth"], 0.5) / scale)]
        mask[iy, ix] = 1.0
    ign *= (hm == 0)  # a counted object's splat wins over an ignored one's
    return hm, ign, reg, mask


def sample_batch(rng, images, labels, bs, in_h, in_w, lite_frac=0.5):
    """Random samples: the frame downscaled by 2 (the `lite` view) with probability `lite_frac`,
    full-scale crops otherwise."""
    n, h, w, _ = images.shape
    xb = np.zeros((bs, 3, in_h, in_w), np.float32)
    hms, igns, regs, masks = [], [], [], []
    for b in range(bs):
        i = rng.integers(n)
        img = images[i]
        flip = bool(rng.integers(2))
        if rng.random() < lite_frac:
            scale = 0.5
            small = img[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, 3).astype(np.float32).mean((1, 3))
            oy = int(rng.integers(0, h // 2 - in_h + 1))
            ox = int(rng.integers(0, w // 2 - in_w + 1))
            crop = small[oy:oy + in_h, ox:ox + in_w]
        else:
            scale = 1.0
            oy = int(rng.integers(0, h - in_h + 1))
            ox = int(rng.integers(0, w - in_w + 1))
            crop = img[oy:oy + in_h, ox:ox + in_w].astype(np.float32)
        if flip:
            crop = crop[:, ::-1]
        crop = crop * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
        xb[b] = np.clip(crop, 0, 255).transpose(2, 0, 1) / 255.0
        hm, ign, reg, mask = make_targets(labels[i], scale, ox, oy, in_h, in_w, flip)
        hms.append(hm)
        igns.append(ign)
        regs.append(reg)
        masks.append(mask)
    return (torch.from_numpy(xb), torch.from_numpy(np.stack(hms)), torch.from_numpy(np.stack(igns)),
            torch.from_numpy(np.stack(regs)), torch.from_numpy(np.stack(masks)))


def focal_loss(logits, gt, ign):
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    neg = (1 - pos) * (1 - ign)
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p ** 2 * (1 - gt) ** 4 * neg
    n_pos = pos.sum().clamp(min=1)
    return -(pos_loss.sum() + neg_loss.sum()) / n_pos


def reg_loss(pred, gt, mask):
    m = mask.unsqueeze(1)
    n = mask.sum().clamp(min=1)
    l1 = F.smooth_l1_loss(pred * m, gt * m, reduction="none", beta=0.1)
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0]).view(1, 5, 1, 1)
    return (l1 * w).sum() / n


# --- export and evaluation -------------------------------------------------------------------


def export_onnx(model, path, in_h=384, in_w=640):
    import onnx

    model.eval()
    dummy = torch.zeros(1, 3, in_h, in_w)
    tmp = path + ".tmp"
    kwargs = dict(input_names=["image"], output_names=["heatmap", "box"], opset_version=13,
                  do_constant_folding=True)
    try:
        torch.onnx.export(model, dummy, tmp, dynamo=False, training=torch.onnx.TrainingMode.PRESERVE, **kwargs)
    except TypeError:
        torch.onnx.export(model, dummy, tmp, training=torch.onnx.TrainingMode.PRESERVE, **kwargs)
    m = onnx.load(tmp)
    m.ir_version = 9  # ONNX Runtime refuses newer IR versions (NOTES.md)
    m.producer_name = "vigil-tools-train"
    onnx.checker.check_model(m)
    onnx.save(m, path)
    os.remove(tmp)


def run_ort(path, images, scale):
    """Runs an ONNX model with ONNX Runtime over uint8 HxWx3 frames, resized by `scale`."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    in_h, in_w = shape[2], shape[3]
    outs = []
    for img in images:
        x = img.astype(np.float32)
        if scale == 0.5:
            x = x[: 2 * in_h, : 2 * in_w].reshape(in_h, 2, in_w, 2, 3).mean((1, 3))
        x = (x / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
        hm, box = sess.run(None, {"image": x})
        outs.append((hm[0], box[0]))
    return outs


def ort_version():
    import onnxruntime as ort

    return ort.__version__


def evaluate_onnx(path, images, labels, scale=1.0):
    outs = run_ort(path, images, scale)
    dets = [detect_eval.decode(hm, box, scale) for hm, box in outs]
    return detect_eval.evaluate(dets, labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", action="append", default=[], help="data set directory (export_dataset); repeatable")
    ap.add_argument("--standin", type=int, default=0, help="render this many stand-in frames for training")
    ap.add_argument("--val", default=None, help="held-out data set directory for the final mAP")
    ap.add_argument("--val-standin", type=int, default=0, help="held-out stand-in frames (seed + 1000)")
    ap.add_argument("--minutes", type=float, default=60.0, help="training time budget")
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (overrides --minutes)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, nargs=2, default=[192, 320], metavar=("H", "W"), help="training crop")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="checkpoint to start from (fine-tuning)")
    ap.add_argument("--ckpt", default="tools/runs/last.pt")
    ap.add_argument("--out", default="models/vigil_det.onnx")
    ap.add_argument("--export-every", type=float, default=10.0, help="minutes between checkpoint exports")
    ap.add_argument("--lite-frac", type=float, default=0.5, help="share of samples in the downscaled lite view")
    ap.add_argument("--watch", type=int, default=48,
                    help="held-out frames evaluated (ONNX Runtime) at every checkpoint export; 0: none")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()

    imgs, labels = [], []
    for d in args.data:
        i, l = load_dataset(d)
        imgs.append(i)
        labels += l
    if args.standin:
        i, l = standin_dataset(args.seed, args.standin)
        imgs.append(i)
        labels += l
    images = np.concatenate(imgs)
    print(f"train: {len(images)} frames {images.shape[1:]} loaded in {time.time() - t0:.0f}s", flush=True)
    counts = np.zeros((2, N_CLASSES), int)
    for objs in labels:
        for o in objs:
            counts[int(detect_eval.is_valid(o)), o["class"]] += 1
    print(f"objects per class (car, truck, pedestrian, cyclist): counted {counts[1].tolist()}, "
          f"not counted {counts[0].tolist()}", flush=True)
    vi = vl = None
    if args.val:
        vi, vl = load_dataset(args.val)
    elif args.val_standin:
        vi, vl = standin_dataset(args.seed + 1000, args.val_standin)

    model = Detector()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params}", flush=True)
    if args.init:
        model.load_state_dict(torch.load(args.init))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    os.makedirs(os.path.dirname(args.ckpt) or ".", exist_ok=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)

    budget = args.minutes * 60
    t_train = time.time()
    last_export = t_train
    step = 0
    ema = None
    while True:
        elapsed = time.time() - t_train
        frac = step / args.steps if args.steps else elapsed / budget
        if frac >= 1.0:
            break
        lr = args.lr * (min(1.0, step / 100) if not args.init else 1.0) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        x, hm, ign, reg, mask = sample_batch(rng, images, labels, args.batch, args.crop[0], args.crop[1],
                                             args.lite_frac)
        hm_logits, reg_pred = model.forward_logits(x)
        loss_hm = focal_loss(hm_logits, hm, ign)
        loss_reg = reg_loss(reg_pred, reg, mask)
        loss = loss_hm + loss_reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        step += 1
        if step % 50 == 0:
            print(f"step {step} t={elapsed / 60:.1f}min lr={lr:.2e} loss={ema:.3f} "
                  f"(hm {loss_hm.item():.3f} reg {loss_reg.item():.3f})", flush=True)
        if time.time() - last_export > args.export_every * 60:
            torch.save(model.state_dict(), args.ckpt)
            export_onnx(model, args.out)
            print(f"checkpoint + export at step {step}", flush=True)
            if vi is not None and args.watch:
                r = evaluate_onnx(args.out, vi[:args.watch], vl[:args.watch])
                print(f"  held-out ({min(args.watch, len(vi))} frames, full, ONNX Runtime): mAP@0.5 {r['map']:.4f} "
                      f"per class {[None if a is None else round(a, 3) for a in r['per_class']]} "
                      f"depth MAE {r['depth_mae']:.2f} m", flush=True)
            last_export = time.time()

    torch.save(model.state_dict(), args.ckpt)
    export_onnx(model, args.out)
    print(f"training loop done: {step} steps", flush=True)
    meta = dict(command="tools/train.sh " + " ".join(sys.argv[1:]), seed=args.seed, steps=step,
                minutes=round((time.time() - t_train) / 60, 1), params=n_params, data=args.data,
                standin=args.standin, init=args.init, input=[1, 3, 384, 640], batch=args.batch,
                crop=args.crop, lr=args.lr, lite_frac=args.lite_frac, torch=torch.__version__)
    if vi is not None:
        # ONNX Runtime runs the exported (full-size) graph; `vigil eval --variant lite` covers lite.
        for scale, name in ((1.0, "full"),):
            r = evaluate_onnx(args.out, vi, vl, scale)
            print(f"held-out ({name}, ONNX Runtime): mAP@0.5 {r['map']:.4f} per class {r['per_class']} "
                  f"depth MAE {r['depth_mae']:.2f} m", flush=True)
            meta[f"val_{name}"] = dict(r, frames=len(vi), data=args.val, runtime="ONNX Runtime " + ort_version())
    with open(os.path.splitext(args.out)[0] + ".train.json", "w") as f:
        json.dump(meta, f, indent=1)
    print(f"done: {step} steps, wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
