"""Stand-in procedural scene generator for pre-training.

The project's data comes from `rig::synth::SyntheticRig` (exported by
`cargo run -p kernels --example export_dataset`). This module renders a
similar road scene (ground plane, road, lanes, clutter and 3D boxes for the
four classes, seen through a pinhole camera 1.5 m above the ground) so that
training can start before, or without, an exported rig data set. It writes the
same data-set layout as the exporter (see `dataset.py`).
"""

import math

import numpy as np
from PIL import Image, ImageDraw

# Class index -> (length, width, height) ranges, metres.
CLASS_SIZES = {
    0: ((3.8, 5.0), (1.6, 2.0), (1.3, 1.7)),  # car
    1: ((7.0, 12.0), (2.3, 2.6), (2.8, 3.8)),  # truck
    2: ((0.4, 0.7), (0.4, 0.7), (1.5, 1.9)),  # pedestrian
    3: ((1.6, 1.9), (0.5, 0.7), (1.6, 1.9)),  # cyclist
}
CLASS_WEIGHTS = [0.45, 0.15, 0.25, 0.15]


def _box_corners(cx, cz, l, w, h, yaw, cam_h):
    """Corners of a 3D box standing on the ground, camera frame (x right, y down, z forward)."""
    c, s = math.cos(yaw), math.sin(yaw)
    pts = []
    for dx in (-l / 2, l / 2):
        for dz in (-w / 2, w / 2):
            for y in (cam_h, cam_h - h):
                x = cx + c * dx - s * dz
                z = cz + s * dx + c * dz
                pts.append((x, y, z))
    return np.array(pts)


def _faces():
    # Corner index = ix*4 + iz*2 + iy (iy 0 = bottom, 1 = top).
    return [
        (0, 1, 3, 2), (4, 5, 7, 6),  # -l / +l
        (0, 1, 5, 4), (2, 3, 7, 6),  # -w / +w
        (1, 3, 7, 5),  # top
    ]


def render(rng, width=640, height=384, fx=400.0, fy=400.0, cx=None, cy=None, cam_h=1.5):
    """Renders one frame. Returns (RGB uint8 HxWx3, list of object dicts)."""
    cx = width / 2 if cx is None else cx
    cy = height / 2 if cy is None else cy
    sky = np.array(rng.uniform(120, 220, 3))
    ground = np.array(rng.uniform(60, 130, 3))
    img = Image.new("RGB", (width, height))
    px = np.zeros((height, width, 3), np.float32)
    v = np.arange(height, dtype=np.float32)[:, None]
    horizon = cy + rng.uniform(-10, 10)
    t = np.clip((v - horizon) / (height - horizon), 0, 1)
    sky_rows = (v < horizon)[:, 0]
    px[sky_rows] = (sky * (0.85 + 0.15 * v[sky_rows] / max(horizon, 1.0)))[:, None, :]
    px[~sky_rows] = (ground * (0.7 + 0.3 * t[~sky_rows]))[:, None, :]
    img = Image.fromarray(px.astype(np.uint8))
    draw = ImageDraw.Draw(img)

    def proj(p):
        return (fx * p[0] / p[2] + cx, fy * p[1] / p[2] + horizon)

    # Road and lanes.
    road_half = rng.uniform(5, 9)
    road_off = rng.uniform(-3, 3)
    road_col = tuple(int(c) for c in rng.uniform(40, 90, 3))
    zn, zf = 1.0, 200.0
    poly = [proj((road_off - road_half, cam_h, zn)), proj((road_off + road_half, cam_h, zn)),
            proj((road_off + road_half, cam_h, zf)), proj((road_off - road_half, cam_h, zf))]
    draw.polygon(poly, fill=road_col)
    for lane in np.arange(-road_half + 3.5, road_half - 1, 3.5):
        for z0 in np.arange(2.0 + rng.uniform(0, 3), 120, 9.0):
            x = road_off + lane
            q = [proj((x - 0.08, cam_h, z0)), proj((x + 0.08, cam_h, z0)),
                 proj((x + 0.08, cam_h, z0 + 3)), proj((x - 0.08, cam_h, z0 + 3))]
            draw.polygon(q, fill=(220, 220, 210))

    # Objects (labelled) and clutter (unlabelled), drawn far to near.
    items = []
    for _ in range(rng.integers(8, 20)):  # clutter: buildings, poles, bushes beside the road
        side = rng.choice([-1, 1])
        x = road_off + side * (road_half + rng.uniform(1, 15))
        z = rng.uniform(5, 90)
        kind = rng.integers(0, 3)
        if kind == 0:
            dims = (rng.uniform(4, 15), rng.uniform(4, 10), rng.uniform(3, 12))
        elif kind == 1:
            dims = (0.2, 0.2, rng.uniform(3, 7))
        else:
            dims = (rng.uniform(0.8, 3), rng.uniform(0.8, 3), rng.uniform(0.6, 2))
        items.append(dict(cls=None, x=x, z=z, dims=dims, yaw=0.0,
                          col=rng.uniform(30, 230, 3)))
    n_obj = rng.integers(2, 14)
    for _ in range(n_obj):
        cls = int(rng.choice(4, p=CLASS_WEIGHTS))
        (l0, l1), (w0, w1), (h0, h1) = CLASS_SIZES[cls]
        dims = (rng.uniform(l0, l1), rng.uniform(w0, w1), rng.uniform(h0, h1))
        z = float(np.exp(rng.uniform(math.log(7.0), math.log(60.0))))
        if cls in (0, 1):
            x = road_off + rng.uniform(-road_half + 1, road_half - 1)
            yaw = rng.choice([0.0, math.pi]) + rng.normal(0, 0.15) + math.pi / 2
        else:
            x = road_off + rng.choice([-1, 1]) * rng.uniform(road_half - 1.5, road_half + 4)
            yaw = rng.uniform(0, 2 * math.pi)
        x += rng.normal(0, 0.5)
        items.append(dict(cls=cls, x=x, z=z, dims=dims, yaw=yaw, col=rng.uniform(20, 240, 3)))
    items.sort(key=lambda it: -it["z"])

    ids = Image.new("I", (width, height), 0)
    idraw = ImageDraw.Draw(ids)
    objects = []
    for k, it in enumerate(items):
        l, w, h = it["dims"]
        corners = _box_corners(it["x"], it["z"], l, w, h, it["yaw"], cam_h)
        if (corners[:, 2] < 0.5).any():
            continue
        uv = np.array([(fx * p[0] / p[2] + cx, fy * p[1] / p[2] + horizon) for p in corners])
        centre = corners.mean(0)
        # Painter order inside the box: faces by distance of their centre, far first.
        faces = sorted(_faces(), key=lambda f: -np.linalg.norm(corners[list(f)].mean(0)))
        base = it["col"]
        for fi, f in enumerate(faces):
            shade = 0.55 + 0.45 * (fi + 1) / len(faces)
            col = tuple(int(c) for c in np.clip(base * shade, 0, 255))
            draw.polygon([tuple(uv[i]) for i in f], fill=col)
        cls = it["cls"]
        u0, v0 = uv.min(0)
        u1, v1 = uv.max(0)
        hull = [tuple(uv[i]) for i in _hull_order(uv)]
        if cls is not None:
            # Class cues: windows on cars/trucks, legs on pedestrians, wheels on cyclists.
            bh = v1 - v0
            if cls in (0, 1):
                band = (u0 + 0.15 * (u1 - u0), v0 + 0.1 * bh, u1 - 0.15 * (u1 - u0), v0 + 0.35 * bh)
                draw.rectangle(band, fill=(30, 40, 60))
                for wx in (u0 + 0.1 * (u1 - u0), u1 - 0.25 * (u1 - u0)):
                    r = max(1.0, 0.12 * bh)
                    draw.ellipse((wx, v1 - r, wx + 1.5 * r, v1 + 0.3 * r), fill=(15, 15, 15))
            elif cls == 2:
                draw.rectangle((u0, v0 + 0.5 * bh, u1, v1), fill=tuple(int(c) for c in base * 0.4))
                draw.ellipse((u0, v0 - 0.12 * bh, u1, v0 + 0.12 * bh), fill=(200, 160, 130))
            else:
                r = 0.22 * bh
                for wx in (u0, u1 - 2 * r):
                    draw.ellipse((wx, v1 - 2 * r, wx + 2 * r, v1), outline=(10, 10, 10), width=max(1, int(r / 4)))
        idraw.polygon(hull, fill=k + 1)
        if cls is None:
            continue
        area = 0.5 * abs(sum(hull[i][0] * hull[i - 1][1] - hull[i - 1][0] * hull[i][1] for i in range(len(hull))))
        objects.append(dict(k=k + 1, cls=cls, bbox_full=(u0, v0, u1, v1), area=area, depth=float(centre[2])))

    id_np = np.asarray(ids)
    out = []
    for o in objects:
        u0, v0, u1, v1 = o["bbox_full"]
        full = max(1.0, o["area"])
        mask = id_np == o["k"]
        vis_px = float(mask.sum())
        if vis_px < 4:
            continue
        bbox = [max(0.0, u0), max(0.0, v0), min(float(width), u1), min(float(height), v1)]
        if bbox[2] - bbox[0] < 2 or bbox[3] - bbox[1] < 2:
            continue
        out.append(dict(cls=o["cls"], bbox=bbox, depth=o["depth"],
                        visible_fraction=min(1.0, vis_px / full)))
    arr = np.asarray(img, dtype=np.float32)
    arr += rng.normal(0, rng.uniform(1, 6), arr.shape)
    arr *= rng.uniform(0.7, 1.2)
    return np.clip(arr, 0, 255).astype(np.uint8), out


def _hull_order(pts):
    """Indices of the convex hull of 2D points, counter-clockwise (monotone chain)."""
    idx = sorted(range(len(pts)), key=lambda i: (pts[i][0], pts[i][1]))

    def cross(o, a, b):
        return (pts[a][0] - pts[o][0]) * (pts[b][1] - pts[o][1]) - (pts[a][1] - pts[o][1]) * (pts[b][0] - pts[o][0])

    lower, upper = [], []
    for i in idx:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], i) <= 0:
            lower.pop()
        lower.append(i)
    for i in reversed(idx):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], i) <= 0:
            upper.pop()
        upper.append(i)
    return lower[:-1] + upper[:-1]
