"""Head decode and mAP@0.5, the same rules as `kernels::eval` (see docs/MODEL.md).

Outputs of the network for one image (stride 4):
  heatmap [4, H/4, W/4]  sigmoid class scores
  box     [5, H/4, W/4]  ln(w/4), ln(h/4), offset x, offset y, ln(depth / s)
where s = network input width / camera width (1 for `full`, 0.5 for `lite`).
"""

import numpy as np

STRIDE = 4
SCORE_MIN = 0.05
TOP_K = 100
IOU_MATCH = 0.5
VIS_MIN = 0.3
HEIGHT_MIN = 8.0  # camera pixels


def decode(heatmap, box, scale):
    """Peaks (3x3 maximum, score >= SCORE_MIN), top-K; boxes in camera pixels.

    Returns a list of (class, score, [u0, v0, u1, v1], depth).
    """
    c, h, w = heatmap.shape
    pad = np.full((c, h + 2, w + 2), -np.inf, dtype=np.float32)
    pad[:, 1:-1, 1:-1] = heatmap
    neigh = np.max(np.stack([pad[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]), axis=0)
    peaks = (heatmap >= neigh) & (heatmap >= SCORE_MIN)
    cls, ys, xs = np.nonzero(peaks)
    scores = heatmap[cls, ys, xs]
    # Highest score first; ties by (class, y, x) order, which np.nonzero already gives.
    order = np.argsort(-scores, kind="stable")[:TOP_K]
    dets = []
    for i in order:
        k, y, x = int(cls[i]), int(ys[i]), int(xs[i])
        bw = np.exp(box[0, y, x]) * STRIDE
        bh = np.exp(box[1, y, x]) * STRIDE
        cx = (x + box[2, y, x]) * STRIDE
        cy = (y + box[3, y, x]) * STRIDE
        depth = float(np.exp(box[4, y, x]) * scale)
        b = [(cx - bw / 2) / scale, (cy - bh / 2) / scale, (cx + bw / 2) / scale, (cy + bh / 2) / scale]
        dets.append((k, float(scores[i]), [float(v) for v in b], depth))
    return dets


def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def is_valid(obj):
    return obj["visible_fraction"] >= VIS_MIN and obj["bbox"][3] - obj["bbox"][1] >= HEIGHT_MIN


def evaluate(all_dets, all_gts, n_classes=4):
    """mAP@0.5 per class and overall, and the mean absolute depth error of true positives."""
    per_class = []
    depth_err = []
    for k in range(n_classes):
        recs = []  # (score, tp)
        n_valid = 0
        for dets, gts in zip(all_dets, all_gts):
            g = [o for o in gts if o["class"] == k]
            valid = [is_valid(o) for o in g]
            n_valid += sum(valid)
            used = [False] * len(g)
            for d in sorted([d for d in dets if d[0] == k], key=lambda d: -d[1]):
                best, bi = 0.0, -1
                for j, o in enumerate(g):
                    if valid[j] and not used[j]:
                        v = iou(d[2], o["bbox"])
                        if v > best:
                            best, bi = v, j
                if best >= IOU_MATCH:
                    used[bi] = True
                    recs.append((d[1], 1))
                    depth_err.append(abs(d[3] - g[bi]["depth"]))
                    continue
                if any(not valid[j] and iou(d[2], o["bbox"]) >= IOU_MATCH for j, o in enumerate(g)):
                    continue  # matches an ignored object: neither true nor false positive
                recs.append((d[1], 0))
        if n_valid == 0:
            per_class.append(None)
            continue
        recs.sort(key=lambda r: -r[0])
        tp = np.cumsum([r[1] for r in recs]) if recs else np.zeros(0)
        fp = np.cumsum([1 - r[1] for r in recs]) if recs else np.zeros(0)
        recall = tp / n_valid
        precision = tp / np.maximum(tp + fp, 1e-9)
        per_class.append(average_precision(recall, precision))
    valid_aps = [a for a in per_class if a is not None]
    m = float(np.mean(valid_aps)) if valid_aps else 0.0
    return dict(per_class=per_class, map=m, depth_mae=float(np.mean(depth_err)) if depth_err else float("nan"),
                n_tp=len(depth_err))


def average_precision(recall, precision):
    """All-point interpolated AP (area under the monotone precision envelope)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))
