//! Accuracy measurement: FP32 head decode (the same peak, top-K and encoding rules as the
//! plan's integer decode) and mAP@0.5 per class with the mean distance error.
//!
//! Rules (also in docs/MODEL.md and `tools/detect_eval.py`):
//! * a ground-truth box counts when its `visible_fraction >= 0.3` and it is at least 8 camera
//!   pixels tall; other boxes are *ignored*: a detection matching one (IoU >= 0.5) is neither
//!   a true nor a false positive;
//! * per class, detections in descending score order match the unmatched counted box of
//!   highest IoU; IoU >= 0.5 is a true positive;
//! * AP is the area under the all-point interpolated precision/recall curve; mAP is the mean
//!   over classes with at least one counted box;
//! * the distance error is the mean absolute difference of true positives' depths, metres.

use crate::fp32::Tensor;
use crate::plan::{Detection, Encoding};

/// IoU threshold of a match.
pub const IOU_MATCH: f32 = 0.5;
/// Minimum visible fraction of a counted ground-truth box.
pub const VIS_MIN: f32 = 0.3;
/// Minimum height in camera pixels of a counted ground-truth box.
pub const HEIGHT_MIN: f32 = 8.0;

/// A detection in camera pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Det {
    /// Class index.
    pub class: u16,
    /// Score in `[0, 1]`.
    pub score: f32,
    /// `[u0, v0, u1, v1]`, camera pixels.
    pub bbox: [f32; 4],
    /// Distance along the optical axis, metres.
    pub depth: f32,
}

impl Det {
    /// From a plan [`Detection`] (model-input pixels) and the model-input / camera scale `s`.
    pub fn from_detection(d: &Detection, s: f32) -> Det {
        Det {
            class: d.class,
            score: d.score,
            bbox: [(d.cx - d.w / 2.0) / s, (d.cy - d.h / 2.0) / s, (d.cx + d.w / 2.0) / s, (d.cy + d.h / 2.0) / s],
            depth: d.depth,
        }
    }
}

/// A ground-truth box in one camera image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gt {
    /// Class index.
    pub class: u16,
    /// `[u0, v0, u1, v1]`, camera pixels.
    pub bbox: [f32; 4],
    /// Distance along the optical axis, metres.
    pub depth: f32,
    /// Visible fraction.
    pub visible_fraction: f32,
}

impl Gt {
    /// Whether the box counts (see the module rules).
    pub fn counted(&self) -> bool {
        self.visible_fraction >= VIS_MIN && self.bbox[3] - self.bbox[1] >= HEIGHT_MIN
    }
}

/// Decode parameters of the FP32 path, equal to the plan's [`crate::plan::HeadSpec`] fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloatHeads {
    /// Model-input pixels per heatmap cell.
    pub stride: u32,
    /// Minimum heatmap score of a peak.
    pub score_threshold: f32,
    /// Top-K.
    pub max_candidates: usize,
    /// Size encoding (channels 0, 1 of `box`).
    pub size_enc: Encoding,
    /// Depth encoding (channel 4 of `box`).
    pub depth_enc: Encoding,
    /// Model-input width over camera width.
    pub scale: f32,
}

/// FP32 peaks and boxes from the `heatmap` (`h x w x classes`) and `box` (`h x w x 5`)
/// outputs, in camera pixels. Peak rule: `v >= threshold`, strictly greater than the 3x3
/// neighbours before it in raster order and not smaller than those after it; top-K by score,
/// ties by class, y, x.
pub fn decode_float(heads: &FloatHeads, heatmap: &Tensor, boxes: &Tensor) -> Vec<Det> {
    let (h, w, nc) = (heatmap.shape.h, heatmap.shape.w, heatmap.shape.c);
    let mut peaks: Vec<(f32, usize, usize, usize)> = Vec::new();
    for c in 0..nc {
        for y in 0..h {
            for x in 0..w {
                let v = heatmap.at(y, x, c);
                if v < heads.score_threshold {
                    continue;
                }
                let mut peak = true;
                'n: for dy in -1isize..=1 {
                    for dx in -1isize..=1 {
                        if dy == 0 && dx == 0 {
                            continue;
                        }
                        let (ny, nx) = (y as isize + dy, x as isize + dx);
                        if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                            continue;
                        }
                        let n = heatmap.at(ny as usize, nx as usize, c);
                        let before = dy < 0 || (dy == 0 && dx < 0);
                        if (before && n >= v) || (!before && n > v) {
                            peak = false;
                            break 'n;
                        }
                    }
                }
                if peak {
                    peaks.push((v, c, y, x));
                }
            }
        }
    }
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
    peaks.truncate(heads.max_candidates);
    let stride = heads.stride as f32;
    peaks
        .into_iter()
        .map(|(score, c, y, x)| {
            let d = Detection {
                class: c as u16,
                score,
                cx: (x as f32 + boxes.at(y, x, 2)) * stride,
                cy: (y as f32 + boxes.at(y, x, 3)) * stride,
                w: heads.size_enc.apply(boxes.at(y, x, 0)),
                h: heads.size_enc.apply(boxes.at(y, x, 1)),
                depth: heads.depth_enc.apply(boxes.at(y, x, 4)),
            };
            Det::from_detection(&d, heads.scale)
        })
        .collect()
}

/// Intersection over union of two boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = a[2].min(b[2]) - a[0].max(b[0]);
    let ih = a[3].min(b[3]) - a[1].max(b[1]);
    if iw <= 0.0 || ih <= 0.0 {
        return 0.0;
    }
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Accumulates detections and ground truth over images.
#[derive(Clone, Debug, Default)]
pub struct Evaluator {
    classes: usize,
    /// Per class: (score, true positive).
    records: Vec<Vec<(f32, bool)>>,
    counted: Vec<usize>,
    depth_err: Vec<f64>,
    depth_rel: Vec<f64>,
    images: usize,
}

/// mAP figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// AP@0.5 per class (`None`: no counted box of that class).
    pub ap: Vec<Option<f64>>,
    /// Mean over classes with counted boxes.
    pub map: f64,
    /// Mean absolute depth error of true positives, metres (NaN without any).
    pub depth_mae: f64,
    /// Mean relative depth error of true positives.
    pub depth_rel: f64,
    /// True positives over all classes.
    pub true_positives: usize,
    /// Counted ground-truth boxes.
    pub counted: usize,
    /// Images evaluated.
    pub images: usize,
}

impl Evaluator {
    /// An evaluator over `classes` classes.
    pub fn new(classes: usize) -> Evaluator {
        Evaluator { classes, records: vec![Vec::new(); classes], counted: vec![0; classes], ..Evaluator::default() }
    }

    /// Adds one image.
    pub fn add(&mut self, dets: &[Det], gts: &[Gt]) {
        self.images += 1;
        for k in 0..self.classes {
            let g: Vec<&Gt> = gts.iter().filter(|o| usize::from(o.class) == k).collect();
            let counted: Vec<bool> = g.iter().map(|o| o.counted()).collect();
            self.counted[k] += counted.iter().filter(|&&c| c).count();
            let mut used = vec![false; g.len()];
            let mut d: Vec<&Det> = dets.iter().filter(|d| usize::from(d.class) == k).collect();
            d.sort_by(|a, b| b.score.total_cmp(&a.score));
            for det in d {
                let mut best = (0.0f32, usize::MAX);
                for (j, o) in g.iter().enumerate() {
                    if counted[j] && !used[j] {
                        let v = iou(&det.bbox, &o.bbox);
                        if v > best.0 {
                            best = (v, j);
                        }
                    }
                }
                if best.0 >= IOU_MATCH {
                    used[best.1] = true;
                    self.records[k].push((det.score, true));
                    let gd = g[best.1].depth;
                    self.depth_err.push(f64::from((det.depth - gd).abs()));
                    self.depth_rel.push(f64::from((det.depth - gd).abs() / gd.max(1e-3)));
                    continue;
                }
                if g.iter().enumerate().any(|(j, o)| !counted[j] && iou(&det.bbox, &o.bbox) >= IOU_MATCH) {
                    continue;
                }
                self.records[k].push((det.score, false));
            }
        }
    }

    /// The figures so far.
    pub fn report(&self) -> Report {
        let ap: Vec<Option<f64>> = (0..self.classes)
            .map(|k| {
                if self.counted[k] == 0 {
                    return None;
                }
                let mut r = self.records[k].clone();
                r.sort_by(|a, b| b.0.total_cmp(&a.0));
                let (mut tp, mut fp) = (0f64, 0f64);
                let mut recall = Vec::with_capacity(r.len());
                let mut precision = Vec::with_capacity(r.len());
                for (_, t) in r {
                    if t {
                        tp += 1.0;
                    } else {
                        fp += 1.0;
                    }
                    recall.push(tp / self.counted[k] as f64);
                    precision.push(tp / (tp + fp));
                }
                Some(average_precision(&recall, &precision))
            })
            .collect();
        let valid: Vec<f64> = ap.iter().flatten().copied().collect();
        let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        Report {
            map: if valid.is_empty() { 0.0 } else { mean(&valid) },
            ap,
            depth_mae: mean(&self.depth_err),
            depth_rel: mean(&self.depth_rel),
            true_positives: self.depth_err.len(),
            counted: self.counted.iter().sum(),
            images: self.images,
        }
    }
}

/// All-point interpolated average precision.
pub fn average_precision(recall: &[f64], precision: &[f64]) -> f64 {
    let mut r = vec![0.0];
    r.extend_from_slice(recall);
    r.push(1.0);
    let mut p = vec![0.0];
    p.extend_from_slice(precision);
    p.push(0.0);
    for i in (0..p.len() - 1).rev() {
        p[i] = p[i].max(p[i + 1]);
    }
    (1..r.len()).filter(|&i| r[i] != r[i - 1]).map(|i| (r[i] - r[i - 1]) * p[i]).sum()
}

/// One image of a data set directory with its ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledImage {
    /// Packed RGB8.
    pub rgb: Vec<u8>,
    /// `(w, h)`.
    pub size: (u32, u32),
    /// Ground truth.
    pub gts: Vec<Gt>,
}

/// Parses a `.npy` holding a `uint8` `H x W x 3` array (C order).
pub fn parse_npy_rgb(bytes: &[u8]) -> Result<(Vec<u8>, u32, u32), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!(".npy version {v} is not supported")),
    };
    let header = bytes.get(start..start + hlen).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| ".npy header is not text")?;
    if !header.contains("'|u1'") || header.contains("'fortran_order': True") {
        return Err(format!(".npy must be uint8 in C order, header is {header:?}"));
    }
    let shape = header.split("'shape':").nth(1).and_then(|s| s.split(')').next()).ok_or("no shape in .npy header")?;
    let dims: Vec<u32> = shape.trim().trim_start_matches('(').split(',').filter(|d| !d.trim().is_empty()).map(|d| d.trim().parse::<u32>()).collect::<Result<_, _>>().map_err(|e| format!("bad .npy shape {shape:?}: {e}"))?;
    if dims.len() != 3 || dims[2] != 3 {
        return Err(format!(".npy shape {dims:?} is not H x W x 3"));
    }
    let n = dims[0] as usize * dims[1] as usize * 3;
    let data = bytes.get(start + hlen..start + hlen + n).ok_or_else(|| format!(".npy data is shorter than {n} bytes"))?;
    Ok((data.to_vec(), dims[0], dims[1]))
}

/// Loads a data set directory (`index.jsonl` + `.npy` images; the layout of
/// `tools/dataset.py` and the `export_dataset` example). Errors name the file and line.
pub fn load_dataset(dir: &std::path::Path, limit: Option<usize>) -> Result<Vec<LabelledImage>, String> {
    let index = dir.join("index.jsonl");
    let text = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let at = |what: String| format!("{}:{}: {what}", index.display(), ln + 1);
        let rec: serde_json::Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let name = rec["image"].as_str().ok_or_else(|| at("no `image` field".into()))?;
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (rgb, h, w) = parse_npy_rgb(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut gts = Vec::new();
        for o in rec["objects"].as_array().ok_or_else(|| at("no `objects` array".into()))? {
            let f = |k: &str| o[k].as_f64().map(|v| v as f32).ok_or_else(|| at(format!("object field `{k}` missing")));
            let b = o["bbox"].as_array().filter(|b| b.len() == 4).ok_or_else(|| at("object `bbox` is not 4 numbers".into()))?;
            let mut bbox = [0f32; 4];
            for (d, v) in bbox.iter_mut().zip(b) {
                *d = v.as_f64().ok_or_else(|| at("object `bbox` is not 4 numbers".into()))? as f32;
            }
            gts.push(Gt { class: o["class"].as_u64().ok_or_else(|| at("object `class` missing".into()))? as u16, bbox, depth: f("depth")?, visible_fraction: f("visible_fraction")? });
        }
        out.push(LabelledImage { rgb, size: (w, h), gts });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(class: u16, b: [f32; 4]) -> Gt {
        Gt { class, bbox: b, depth: 10.0, visible_fraction: 1.0 }
    }

    #[test]
    fn perfect_detections_score_one_and_misses_lower_recall() {
        let g = [gt(0, [0.0, 0.0, 20.0, 20.0]), gt(0, [50.0, 50.0, 80.0, 90.0]), gt(1, [100.0, 10.0, 140.0, 40.0])];
        let perfect: Vec<Det> = g.iter().map(|o| Det { class: o.class, score: 0.9, bbox: o.bbox, depth: 11.0 }).collect();
        let mut e = Evaluator::new(4);
        e.add(&perfect, &g);
        let r = e.report();
        assert_eq!(r.ap, vec![Some(1.0), Some(1.0), None, None]);
        assert!((r.depth_mae - 1.0).abs() < 1e-6);
        // Only one of the two class-0 boxes found, plus a false positive ranked above it.
        let mut e = Evaluator::new(4);
        let dets = [Det { class: 0, score: 0.95, bbox: [200.0, 200.0, 220.0, 220.0], depth: 5.0 }, perfect[0]];
        e.add(&dets, &g[..2]);
        let r = e.report();
        assert!((r.ap[0].unwrap() - 0.25).abs() < 1e-9, "{:?}", r.ap);
    }

    #[test]
    fn ignored_boxes_neither_help_nor_hurt() {
        let mut small = gt(2, [0.0, 0.0, 4.0, 5.0]);
        small.visible_fraction = 1.0;
        assert!(!small.counted());
        let counted = gt(2, [30.0, 30.0, 40.0, 60.0]);
        let dets = [Det { class: 2, score: 0.99, bbox: small.bbox, depth: 1.0 }, Det { class: 2, score: 0.5, bbox: counted.bbox, depth: 10.0 }];
        let mut e = Evaluator::new(4);
        e.add(&dets, &[small, counted]);
        assert_eq!(e.report().ap[2], Some(1.0));
    }
}
