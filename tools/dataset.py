"""Data sets for training and evaluating the detector.

Layout written by `cargo run -p kernels --example export_dataset` (and by
`standin_scene.py` through `write_dataset`):

    DIR/index.jsonl    one JSON object per image:
                       {"image": "000012_c3.npy", "frame": 12, "camera": 3,
                        "width": 640, "height": 384,
                        "objects": [{"class": 0, "bbox": [u0, v0, u1, v1],
                                     "depth": 12.5, "visible_fraction": 0.9}, ...]}
    DIR/<image>.npy    uint8 array, height x width x 3 (RGB)

`class` is the index of `rig::synth::ObjectClass` (car, truck, pedestrian,
cyclist); `depth` is metres along the camera's optical axis.
"""

import json
import os

import numpy as np

CLASSES = ["car", "truck", "pedestrian", "cyclist"]


def load_dataset(path, limit=None):
    """Loads a data set directory into (images uint8 N x H x W x 3, labels list)."""
    images, labels = [], []
    with open(os.path.join(path, "index.jsonl")) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            images.append(np.load(os.path.join(path, rec["image"])))
            labels.append(rec["objects"])
            if limit is not None and len(images) >= limit:
                break
    return np.stack(images), labels


def write_dataset(path, images, labels):
    """Writes images and labels in the layout above (used for the stand-in generator)."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "index.jsonl"), "w") as f:
        for i, (img, objs) in enumerate(zip(images, labels)):
            name = f"{i:06d}_c0.npy"
            np.save(os.path.join(path, name), img)
            rec = dict(image=name, frame=i, camera=0, width=int(img.shape[1]), height=int(img.shape[0]),
                       objects=[dict({"class": o["cls"]}, bbox=o["bbox"], depth=o["depth"],
                                     visible_fraction=o["visible_fraction"]) for o in objs])
            f.write(json.dumps(rec) + "\n")


def standin_dataset(seed, n, width=640, height=384):
    """Renders `n` stand-in frames (see standin_scene.py); labels use the exporter's keys."""
    from standin_scene import render

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        img, objs = render(rng, width, height)
        images.append(img)
        labels.append([{"class": o["cls"], "bbox": o["bbox"], "depth": o["depth"],
                        "visible_fraction": o["visible_fraction"]} for o in objs])
    return np.stack(images), labels
