//! Post-training INT8 quantisation: an imported FP32 [`Graph`] plus calibration frames
//! become a [`Plan`].
//!
//! Steps:
//! 1. [`fold_batch_norm`]: every `BatchNormalization` after a `Conv` is folded into its weights
//!    and bias (a lone BN becomes a depthwise 1x1 conv).
//! 2. [`Calibrator`]: the FP32 interpreter runs the calibration frames and samples every
//!    value; [`Method`] turns the samples into a range (min/max, percentile, MSE or entropy).
//! 3. [`quantize`]: per-tensor asymmetric int8 activations, per-output-channel symmetric int8
//!    weights, i32 bias in accumulator units, fixed-point requantisation; `Relu` / `Clip` after
//!    a `Conv` or `Add` fused into its clamp; `Sigmoid`, `LeakyRelu` and lone clamps as
//!    256-entry tables; heads wired to the plan's CenterNet decode.
//!
//! Head contract (see docs/MODEL.md): the graph has an output `heatmap` (post-sigmoid class
//! scores) and an output `box` with channels `ln(w / stride)`, `ln(h / stride)`, offset x,
//! offset y, `ln(depth / s)` where `s` is the model-input width over the camera width.

use crate::fp32::{Interpreter, Tensor};
use crate::ir::{ConvGeom, QConv};
use crate::onnx::{FOp, Graph, Node, ValueId};
use crate::plan::{
    AddParams, ChannelRef, Encoding, HeadSpec, Op, Plan, PlanBuilder, PlanError, PlanMeta, Preprocess, Rescale, TensorId, Tier,
};
use crate::quant::Requant;

/// Why a graph cannot be quantised.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// The graph does not follow the head contract or uses an op the plan cannot express.
    #[error("{0}")]
    Graph(String),
    /// No calibration frame was given.
    #[error("calibration needs at least one frame; the calibration source gave none")]
    NoCalibration,
    /// The assembled plan failed validation (a compiler bug).
    #[error("the compiled plan is invalid: {0}")]
    Plan(#[from] PlanError),
}

/// Folds every BN into the conv before it (when the conv's output feeds only that BN) and turns
/// any other BN into a depthwise 1x1 conv. Value ids are preserved: the folded conv writes the
/// BN's output value, so FP32 runs of both graphs are comparable value by value.
pub fn fold_batch_norm(g: &Graph) -> Graph {
    let uses = use_counts(g);
    let mut out = g.clone();
    out.nodes.clear();
    let mut i = 0;
    while i < g.nodes.len() {
        let n = &g.nodes[i];
        if let FOp::BatchNorm { scale, shift } = &n.op {
            let c = scale.len();
            let geom = ConvGeom { in_c: c, out_c: c, kh: 1, kw: 1, stride_h: 1, stride_w: 1, pad: [0; 4], groups: c };
            out.nodes.push(Node { name: n.name.clone(), op: FOp::Conv { geom, weight: scale.clone(), bias: shift.clone() }, inputs: n.inputs.clone(), output: n.output });
            i += 1;
            continue;
        }
        if let (FOp::Conv { geom, weight, bias }, Some(next)) = (&n.op, g.nodes.get(i + 1))
            && let FOp::BatchNorm { scale, shift } = &next.op
            && next.inputs[0] == n.output
            && uses[n.output] == 1
            && !g.outputs.contains(&n.output)
        {
            let per = weight.len() / geom.out_c;
            let weight = weight.iter().enumerate().map(|(k, w)| w * scale[k / per]).collect();
            let bias = bias.iter().zip(scale).zip(shift).map(|((b, s), t)| b * s + t).collect();
            out.nodes.push(Node { name: format!("{}+{}", n.name, next.name), op: FOp::Conv { geom: geom.clone(), weight, bias }, inputs: n.inputs.clone(), output: next.output });
            i += 2;
            continue;
        }
        out.nodes.push(n.clone());
        i += 1;
    }
    out
}

fn use_counts(g: &Graph) -> Vec<usize> {
    let mut uses = vec![0usize; g.values.len()];
    for n in &g.nodes {
        for &v in &n.inputs {
            uses[v] += 1;
        }
    }
    for &o in &g.outputs {
        uses[o] += 1;
    }
    uses
}

/// How calibration turns observed values into a quantisation range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    /// The observed minimum and maximum.
    #[default]
    MinMax,
    /// The 0.01 % and 99.99 % quantiles (clips rare outliers).
    Percentile,
    /// The clipping range that minimises the mean squared quantisation error of the samples.
    Mse,
    /// The clipping range that minimises the KL divergence between the sample histogram and
    /// its 255-level quantisation (TensorRT's entropy calibration, on the asymmetric range).
    Entropy,
}

impl Method {
    /// Parses `minmax`, `percentile`, `mse` or `entropy`.
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "minmax" => Some(Method::MinMax),
            "percentile" => Some(Method::Percentile),
            "mse" => Some(Method::Mse),
            "entropy" => Some(Method::Entropy),
            _ => None,
        }
    }

    /// The name [`Method::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile => "percentile",
            Method::Mse => "mse",
            Method::Entropy => "entropy",
        }
    }
}

/// Samples kept per value per frame (a deterministic stride over the tensor).
const SAMPLES_PER_FRAME: usize = 8192;

/// Observes FP32 values over calibration frames.
#[derive(Debug)]
pub struct Calibrator<'g> {
    interp: Interpreter<'g>,
    min: Vec<f32>,
    max: Vec<f32>,
    samples: Vec<Vec<f32>>,
    frames: usize,
}

impl<'g> Calibrator<'g> {
    /// A calibrator for `graph` (normally the BN-folded graph).
    pub fn new(graph: &'g Graph) -> Calibrator<'g> {
        let n = graph.values.len();
        Calibrator { interp: Interpreter::new(graph), min: vec![f32::INFINITY; n], max: vec![f32::NEG_INFINITY; n], samples: vec![Vec::new(); n], frames: 0 }
    }

    /// Runs one frame (already at the model's input size, values `v / 255`) and records it.
    pub fn observe(&mut self, input: Tensor) {
        let all = self.interp.run_all(input);
        for (v, t) in all.iter().enumerate() {
            for &x in &t.data {
                self.min[v] = self.min[v].min(x);
                self.max[v] = self.max[v].max(x);
            }
            let step = (t.data.len() / SAMPLES_PER_FRAME).max(1);
            self.samples[v].extend(t.data.iter().step_by(step).copied());
        }
        self.frames += 1;
    }

    /// Frames observed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The calibrated range of every value (`None` for values never observed).
    pub fn ranges(&self, method: Method) -> Vec<Option<(f32, f32)>> {
        (0..self.min.len())
            .map(|v| {
                if !self.min[v].is_finite() || !self.max[v].is_finite() {
                    return None;
                }
                let (lo, hi) = (self.min[v].min(0.0), self.max[v].max(0.0));
                Some(match method {
                    Method::MinMax => (lo, hi),
                    Method::Percentile => percentile_range(&self.samples[v], lo, hi),
                    Method::Mse => mse_range(&self.samples[v], lo, hi),
                    Method::Entropy => entropy_range(&self.samples[v], lo, hi),
                })
            })
            .collect()
    }
}

fn percentile_range(s: &[f32], lo: f32, hi: f32) -> (f32, f32) {
    if s.is_empty() {
        return (lo, hi);
    }
    let mut v = s.to_vec();
    v.sort_by(f32::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.0001).min(0.0), q(0.9999).max(0.0))
}

/// Quantise-dequantise error of samples under range `(lo, hi)`.
fn qdq_mse(s: &[f32], lo: f32, hi: f32) -> f64 {
    let (scale, zp) = qparams(lo, hi);
    s.iter()
        .map(|&x| {
            let q = ((x / scale).round() + zp as f32).clamp(-128.0, 127.0);
            let d = (q - zp as f32) * scale - x;
            f64::from(d * d)
        })
        .sum::<f64>()
        / s.len().max(1) as f64
}

fn mse_range(s: &[f32], lo: f32, hi: f32) -> (f32, f32) {
    if s.is_empty() {
        return (lo, hi);
    }
    let mut best = (qdq_mse(s, lo, hi), lo, hi);
    // Shrink both ends by the same fraction of their extent.
    for k in 1..60 {
        let f = 1.0 - k as f32 / 64.0;
        let (l, h) = (lo * f, hi * f);
        let e = qdq_mse(s, l, h);
        if e < best.0 {
            best = (e, l, h);
        }
    }
    (best.1, best.2)
}

fn entropy_range(s: &[f32], lo: f32, hi: f32) -> (f32, f32) {
    const BINS: usize = 2048;
    if s.is_empty() || hi - lo <= 0.0 {
        return (lo, hi);
    }
    let width = (hi - lo) / BINS as f32;
    let mut hist = vec![0f64; BINS];
    for &x in s {
        let b = (((x - lo) / width) as usize).min(BINS - 1);
        hist[b] += 1.0;
    }
    // Candidate windows keep the bin holding zero and grow symmetrically in bins around it.
    let zero_bin = ((-lo / width) as usize).min(BINS - 1);
    let mut best = (f64::INFINITY, lo, hi);
    let steps = 32;
    for k in 0..=steps {
        let f = 0.35 + 0.65 * k as f64 / steps as f64;
        let a = zero_bin - ((zero_bin as f64) * f).round() as usize;
        let b = zero_bin + (((BINS - zero_bin) as f64) * f).round() as usize;
        let b = b.clamp(a + 1, BINS);
        let window = b - a;
        if window < 256 {
            continue;
        }
        // Reference: window with outliers folded into the edge bins.
        let mut p: Vec<f64> = hist[a..b].to_vec();
        p[0] += hist[..a].iter().sum::<f64>();
        p[window - 1] += hist[b..].iter().sum::<f64>();
        // Candidate: 255 levels, each level's mass spread uniformly over its non-empty bins.
        let mut qd = vec![0f64; window];
        let levels = 255;
        for l in 0..levels {
            let s0 = l * window / levels;
            let s1 = ((l + 1) * window / levels).max(s0 + 1);
            let mass: f64 = hist[a + s0..a + s1].iter().sum();
            let nz = hist[a + s0..a + s1].iter().filter(|&&c| c > 0.0).count();
            for j in s0..s1 {
                if hist[a + j] > 0.0 {
                    qd[j] = mass / nz as f64;
                }
            }
        }
        let ps: f64 = p.iter().sum();
        let qs: f64 = qd.iter().sum();
        if ps <= 0.0 || qs <= 0.0 {
            continue;
        }
        let kl: f64 = p
            .iter()
            .zip(&qd)
            .filter(|(pp, _)| **pp > 0.0)
            .map(|(pp, qq)| {
                let pn = pp / ps;
                let qn = (qq / qs).max(1e-12);
                pn * (pn / qn).ln()
            })
            .sum();
        if kl < best.0 {
            best = (kl, lo + a as f32 * width, lo + b as f32 * width);
        }
    }
    (best.1.min(0.0), best.2.max(0.0))
}

/// Scale and zero point of the asymmetric int8 grid covering `[lo, hi]` (which contains 0).
pub fn qparams(lo: f32, hi: f32) -> (f32, i32) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

fn quantize_value(x: f32, scale: f32, zp: i32) -> i8 {
    ((x / scale).round() + zp as f32).clamp(-128.0, 127.0) as i8
}

/// Per-channel symmetric int8 weights of a conv (OHWI), their scales.
pub fn quantize_weights(weight: &[f32], out_c: usize) -> (Vec<i8>, Vec<f32>) {
    let per = weight.len() / out_c.max(1);
    let mut q = vec![0i8; weight.len()];
    let mut scales = vec![0f32; out_c];
    for oc in 0..out_c {
        let w = &weight[oc * per..(oc + 1) * per];
        let m = w.iter().fold(0f32, |a, &b| a.max(b.abs()));
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        scales[oc] = s;
        for (d, &x) in q[oc * per..(oc + 1) * per].iter_mut().zip(w) {
            *d = (x / s).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, scales)
}

/// A fused conv's int8 form given its input and output quantisation and its real clamp.
pub fn quantize_conv(geom: &ConvGeom, weight: &[f32], bias: &[f32], input: (f32, i32), output: (f32, i32), clamp: (f32, f32)) -> QConv {
    let (w, ws) = quantize_weights(weight, geom.out_c);
    let bias_q = bias
        .iter()
        .zip(&ws)
        .map(|(&b, &s)| (f64::from(b) / (f64::from(input.0) * f64::from(s))).round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
        .collect();
    let requant = ws.iter().map(|&s| Requant::from_real(f64::from(input.0) * f64::from(s) / f64::from(output.0))).collect();
    let (act_min, act_max) = clamp_q(clamp, output);
    QConv { geom: geom.clone(), weights: w, bias: bias_q, requant, input_zp: input.1, output_zp: output.1, act_min, act_max }
}

fn clamp_q(clamp: (f32, f32), q: (f32, i32)) -> (i8, i8) {
    let lo = if clamp.0.is_finite() { quantize_value(clamp.0, q.0, q.1) } else { -128 };
    let hi = if clamp.1.is_finite() { quantize_value(clamp.1, q.0, q.1) } else { 127 };
    (lo, hi)
}

fn lut(f: impl Fn(f32) -> f32, input: (f32, i32), output: (f32, i32)) -> [i8; 256] {
    let mut t = [0i8; 256];
    for (i, e) in t.iter_mut().enumerate() {
        let q = i as i32 - 128;
        *e = quantize_value(f(input.0 * (q - input.1) as f32), output.0, output.1);
    }
    t
}

/// What to build.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantSpec {
    /// Variant name (`full`, `lite`, `floor`).
    pub name: String,
    /// Tier.
    pub tier: Tier,
    /// Camera frame size fed to preprocessing, `(w, h)`.
    pub camera: (u32, u32),
    /// Peak threshold on the heatmap score (real units).
    pub score_threshold: f32,
    /// Top-K capacity.
    pub max_candidates: u32,
}

/// The result of quantisation: the plan and, per plan tensor, the graph value it holds.
#[derive(Debug)]
pub struct Quantized {
    /// The compiled plan.
    pub plan: Plan,
    /// `value_of[tensor] = graph value` for every plan tensor.
    pub value_of: Vec<ValueId>,
}

/// Quantises a BN-folded graph with calibrated ranges (`ranges[value]`).
pub fn quantize(g: &Graph, ranges: &[Option<(f32, f32)>], spec: &VariantSpec) -> Result<Quantized, QuantizeError> {
    let err = |s: String| QuantizeError::Graph(s);
    let hm_v = g.output_named("heatmap").ok_or_else(|| err("the model has no output named `heatmap` (see docs/MODEL.md)".into()))?;
    let box_v = g.output_named("box").ok_or_else(|| err("the model has no output named `box` (see docs/MODEL.md)".into()))?;
    let uses = use_counts(g);
    let range_of = |v: ValueId| -> Result<(f32, f32), QuantizeError> {
        ranges.get(v).copied().flatten().ok_or_else(|| err(format!("value `{}` was not calibrated", g.values[v].name)))
    };

    let mut b = PlanBuilder::new();
    let mut tensor: Vec<Option<TensorId>> = vec![None; g.values.len()];
    let mut value_of: Vec<ValueId> = Vec::new();
    let inp = g.values[g.input].shape;
    if inp.c != 3 {
        return Err(err(format!("input has {} channels; the preprocessing stage writes RGB (3)", inp.c)));
    }
    let in_q = (1.0f32 / 255.0, -128);
    let input_t = b.tensor(g.values[g.input].name.clone(), inp.h as u32, inp.w as u32, 3, in_q.0, in_q.1);
    tensor[g.input] = Some(input_t);
    value_of.push(g.input);

    let mut skip = vec![false; g.nodes.len()];
    for (ni, n) in g.nodes.iter().enumerate() {
        if skip[ni] {
            continue;
        }
        let ins: Vec<TensorId> = n
            .inputs
            .iter()
            .map(|&v| tensor[v].ok_or_else(|| err(format!("node `{}`: input `{}` has no tensor", n.name, g.values[v].name))))
            .collect::<Result<_, _>>()?;
        let t_in = |k: usize| -> Result<TensorId, QuantizeError> { Ok(ins[k]) };
        // A Relu/Clip that is the only reader of this node's output folds into its clamp.
        let fusable_act = |out: ValueId| -> Option<(usize, (f32, f32))> {
            if uses[out] != 1 || g.outputs.contains(&out) {
                return None;
            }
            let (j, next) = g.nodes.iter().enumerate().skip(ni + 1).find(|(_, m)| m.inputs.contains(&out))?;
            match next.op {
                FOp::Relu => Some((j, (0.0, f32::INFINITY))),
                FOp::Clip { min, max } => Some((j, (min, max))),
                _ => None,
            }
        };
        let mut alias = None;
        let mut new_tensor = |b: &mut PlanBuilder, v: ValueId, q: (f32, i32)| {
            let sh = g.values[v].shape;
            let id = b.tensor(g.values[v].name.clone(), sh.h as u32, sh.w as u32, sh.c as u32, q.0, q.1);
            tensor[v] = Some(id);
            value_of.push(v);
            id
        };
        match &n.op {
            FOp::Conv { .. } | FOp::Add => {
                let (out_v, clamp) = match fusable_act(n.output) {
                    Some((j, c)) => {
                        skip[j] = true;
                        (g.nodes[j].output, c)
                    }
                    None => (n.output, (f32::NEG_INFINITY, f32::INFINITY)),
                };
                let (lo, hi) = range_of(out_v)?;
                let oq = qparams(lo.max(clamp.0), hi.min(clamp.1));
                if let FOp::Conv { geom, weight, bias } = &n.op {
                    let x = t_in(0)?;
                    let xd = b.desc(x);
                    let iq = (xd.scale, xd.zero_point);
                    let y = new_tensor(&mut b, out_v, oq);
                    let q = quantize_conv(geom, weight, bias, iq, oq, clamp);
                    b.conv(x, y, &q);
                } else {
                    let (a, c) = (t_in(0)?, t_in(1)?);
                    let (sa, sc) = (b.desc(a).scale, b.desc(c).scale);
                    let y = new_tensor(&mut b, out_v, oq);
                    let (act_min, act_max) = clamp_q(clamp, oq);
                    b.op(Op::Add { a, b: c, output: y, params: AddParams::new(sa, sc, oq.0, act_min, act_max) });
                }
            }
            FOp::BatchNorm { .. } => return Err(err(format!("node `{}`: batch norm must be folded before quantisation", n.name))),
            FOp::Identity => {
                alias = Some(t_in(0)?);
            }
            FOp::MaxPool { k, stride, pad } => {
                let x = t_in(0)?;
                let d = b.desc(x);
                let q = (d.scale, d.zero_point);
                let y = new_tensor(&mut b, n.output, q);
                let pad = pad.map(|p| p as u32);
                b.op(Op::MaxPool { input: x, output: y, kh: k[0] as u32, kw: k[1] as u32, stride_h: stride[0] as u32, stride_w: stride[1] as u32, pad });
            }
            FOp::ResizeNearest { .. } => {
                let x = t_in(0)?;
                let d = b.desc(x);
                let q = (d.scale, d.zero_point);
                let y = new_tensor(&mut b, n.output, q);
                b.op(Op::ResizeNearest { input: x, output: y });
            }
            FOp::Concat => {
                let (lo, hi) = range_of(n.output)?;
                let oq = qparams(lo, hi);
                let ins = ins.clone();
                let rescale = ins.iter().map(|&t| {
                    let d = b.desc(t);
                    Rescale::new(d.scale, d.zero_point, oq.0)
                }).collect();
                let y = new_tensor(&mut b, n.output, oq);
                b.op(Op::Concat { inputs: ins, rescale, output: y });
            }
            FOp::Sigmoid | FOp::LeakyRelu { .. } | FOp::Relu | FOp::Clip { .. } => {
                let x = t_in(0)?;
                let d = b.desc(x);
                let iq = (d.scale, d.zero_point);
                let oq = if matches!(n.op, FOp::Sigmoid) {
                    (1.0 / 255.0, -128)
                } else {
                    let (lo, hi) = range_of(n.output)?;
                    qparams(lo, hi)
                };
                let table = match &n.op {
                    FOp::Sigmoid => lut(|v| 1.0 / (1.0 + (-v).exp()), iq, oq),
                    FOp::LeakyRelu { alpha } => lut(|v| if v >= 0.0 { v } else { alpha * v }, iq, oq),
                    FOp::Relu => lut(|v| v.max(0.0), iq, oq),
                    FOp::Clip { min, max } => lut(|v| v.clamp(*min, *max), iq, oq),
                    _ => unreachable_op(&n.name)?,
                };
                let y = new_tensor(&mut b, n.output, oq);
                b.lut(x, y, &table);
            }
        }
        if let Some(t) = alias {
            tensor[n.output] = Some(t);
        }
    }

    let hm_t = tensor[hm_v].ok_or_else(|| err("`heatmap` has no tensor".into()))?;
    let box_t = tensor[box_v].ok_or_else(|| err("`box` has no tensor".into()))?;
    let (hd, bd) = (b.desc(hm_t).clone(), b.desc(box_t).clone());
    if bd.c != 5 || (bd.h, bd.w) != (hd.h, hd.w) {
        return Err(err(format!("`box` is {}x{}x{}; expected 5 channels at the heatmap's {}x{}", bd.h, bd.w, bd.c, hd.h, hd.w)));
    }
    if !(inp.h as u32).is_multiple_of(hd.h) || inp.w as u32 / hd.w != inp.h as u32 / hd.h {
        return Err(err(format!("heatmap {}x{} is not an integer stride of the input {}x{}", hd.h, hd.w, inp.h, inp.w)));
    }
    let stride = inp.h as u32 / hd.h;
    let s = inp.w as f32 / spec.camera.0 as f32;
    let threshold = ((spec.score_threshold / hd.scale).ceil() as i32 + hd.zero_point).clamp(-128, 127) as i8;
    let chan = |c: u32| ChannelRef { tensor: box_t, channel: c };
    let heads = HeadSpec {
        heatmap: hm_t,
        heatmap_channel: 0,
        num_classes: hd.c,
        offset: [chan(2), chan(3)],
        size: [chan(0), chan(1)],
        depth: chan(4),
        stride,
        threshold,
        max_candidates: spec.max_candidates,
        score_enc: Encoding::Linear { unit: 1.0 },
        offset_enc: Encoding::Linear { unit: 1.0 },
        size_enc: Encoding::Log { unit: stride as f32 },
        depth_enc: Encoding::Log { unit: s },
    };
    let preprocess = Preprocess::normalise(spec.camera.0, spec.camera.1, [0.0; 3], [1.0; 3], in_q.0, in_q.1);
    let meta = PlanMeta { variant: spec.name.clone(), tier: spec.tier, model_version: 0, ops_per_frame: g.ops_per_frame(), latency_us: 0, energy_mj: 0.0 };
    let plan = b.finish(meta, input_t, preprocess, heads)?;
    Ok(Quantized { plan, value_of })
}

fn unreachable_op<T>(node: &str) -> Result<T, QuantizeError> {
    Err(QuantizeError::Graph(format!("node `{node}`: internal op dispatch error")))
}

/// Signal-to-quantisation-noise ratio in dB of `q` (dequantised) against `reference`.
pub fn sqnr_db(reference: &[f32], q: &[i8], scale: f32, zp: i32) -> f64 {
    let mut sig = 0f64;
    let mut noise = 0f64;
    for (&r, &v) in reference.iter().zip(q) {
        let d = scale * (i32::from(v) - zp) as f32;
        sig += f64::from(r) * f64::from(r);
        noise += f64::from(d - r) * f64::from(d - r);
    }
    if noise == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (sig / noise).log10()
}
