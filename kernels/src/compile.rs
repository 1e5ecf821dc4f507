//! The compiler driver: ONNX bytes + calibration frames -> one [`Plan`] per variant of the
//! tier matrix, with a per-layer quantisation error report.
//!
//! Variants (see [`standard_variants`]): `full` runs the model at its exported input size,
//! `lite` at half the resolution, `floor` at a quarter; all INT8, all from the same weights
//! (the detector is trained at both the full and the half scale, see docs/MODEL.md).

use crate::backend::Backend;
use crate::cpu_ref::{self, CpuRef};
use crate::eval::FloatHeads;
use crate::fp32::{Interpreter, Tensor};
use crate::onnx::{self, Graph, ImportOptions, OnnxError, Shape};
use crate::plan::{Encoding, Plan, Tier};
use crate::quantize::{self, Calibrator, Method, QuantizeError, VariantSpec};

/// Why compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Import failed.
    #[error("ONNX import: {0}")]
    Onnx(#[from] OnnxError),
    /// Quantisation failed.
    #[error("quantisation: {0}")]
    Quantize(#[from] QuantizeError),
    /// A calibration frame has the wrong size.
    #[error("calibration frame {index} has {len} bytes; a {w}x{h} RGB8 camera frame has {want}")]
    BadFrame {
        /// Frame index.
        index: usize,
        /// Its length.
        len: usize,
        /// Camera width.
        w: u32,
        /// Camera height.
        h: u32,
        /// Expected length.
        want: usize,
    },
    /// The backend refused the plan (a compiler bug).
    #[error("cpu-ref refused the compiled plan: {0}")]
    Backend(#[from] crate::backend::BackendError),
}

/// One variant to build: its spec and the model input size `(h, w)`.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantChoice {
    /// Plan-level spec.
    pub spec: VariantSpec,
    /// Model input `(h, w)`.
    pub input_hw: (usize, usize),
}

/// Default peak threshold (heatmap score).
pub const SCORE_THRESHOLD: f32 = 0.05;
/// Default top-K.
pub const MAX_CANDIDATES: u32 = 100;

/// `full` (model input size), `lite` (half), `floor` (quarter) for a camera of `camera` `(w, h)`.
pub fn standard_variants(model_hw: (usize, usize), camera: (u32, u32)) -> Vec<VariantChoice> {
    let v = |name: &str, tier, div: usize| VariantChoice {
        spec: VariantSpec { name: name.into(), tier, camera, score_threshold: SCORE_THRESHOLD, max_candidates: MAX_CANDIDATES },
        input_hw: (model_hw.0 / div, model_hw.1 / div),
    };
    vec![v("full", Tier::Full, 1), v("lite", Tier::Lite, 2), v("floor", Tier::Floor, 4)]
}

/// The FP32 decode parameters matching a variant (for `vigil eval MODEL.onnx`).
pub fn float_heads(g: &Graph, spec: &VariantSpec) -> Option<FloatHeads> {
    let hm = g.values[g.output_named("heatmap")?].shape;
    let inp = g.values[g.input].shape;
    let stride = (inp.h / hm.h) as u32;
    Some(FloatHeads {
        stride,
        score_threshold: spec.score_threshold,
        max_candidates: spec.max_candidates as usize,
        size_enc: Encoding::Log { unit: stride as f32 },
        depth_enc: Encoding::Log { unit: inp.w as f32 / spec.camera.0 as f32 },
        scale: inp.w as f32 / spec.camera.0 as f32,
    })
}

/// The FP32 network input for a camera frame: the plan's integer bilinear resize, then `/255`.
pub fn float_input(frame: &[u8], camera: (u32, u32), input_hw: (usize, usize)) -> Tensor {
    let (sw, sh) = (camera.0 as usize, camera.1 as usize);
    let (h, w) = input_hw;
    let mut data = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                data.push(f32::from(cpu_ref::resize_pixel(frame, sw, sh, h, w, y, x, c)) / 255.0);
            }
        }
    }
    Tensor { shape: Shape { c: 3, h, w }, data }
}

/// Quantisation error of one plan tensor against FP32 on the first calibration frame.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerError {
    /// Tensor (ONNX value) name.
    pub name: String,
    /// Kind of the op that writes it (`input` for the image).
    pub op: &'static str,
    /// `h x w x c`.
    pub shape: [u32; 3],
    /// Scale and zero point.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
    /// SQNR of the int8 tensor against the FP32 value, dB.
    pub sqnr_db: f64,
}

/// A compiled variant.
#[derive(Debug)]
pub struct Compiled {
    /// What was built.
    pub choice: VariantChoice,
    /// The plan.
    pub plan: Plan,
    /// Per-layer error report.
    pub layers: Vec<LayerError>,
    /// Parameters of the model.
    pub params: usize,
}

/// Imports and BN-folds a model at a given input size.
pub fn load_graph(onnx_bytes: &[u8], input_hw: Option<(usize, usize)>) -> Result<Graph, OnnxError> {
    let g = onnx::import(onnx_bytes, ImportOptions { input_hw })?;
    Ok(quantize::fold_batch_norm(&g))
}

/// Compiles one variant: import at the variant's input size, fold BN, calibrate on `frames`
/// (camera RGB8), quantise, and measure the per-layer error. `progress(done, total)` is called
/// after each calibration frame.
pub fn compile_variant(
    onnx_bytes: &[u8],
    choice: &VariantChoice,
    frames: &[Vec<u8>],
    method: Method,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Compiled, CompileError> {
    if frames.is_empty() {
        return Err(QuantizeError::NoCalibration.into());
    }
    let cam = choice.spec.camera;
    let want = cam.0 as usize * cam.1 as usize * 3;
    if let Some((index, f)) = frames.iter().enumerate().find(|(_, f)| f.len() != want) {
        return Err(CompileError::BadFrame { index, len: f.len(), w: cam.0, h: cam.1, want });
    }
    let g = load_graph(onnx_bytes, Some(choice.input_hw))?;
    let mut cal = Calibrator::new(&g);
    for (i, f) in frames.iter().enumerate() {
        cal.observe(float_input(f, cam, choice.input_hw));
        progress(i + 1, frames.len());
    }
    let ranges = cal.ranges(method);
    let q = quantize::quantize(&g, &ranges, &choice.spec)?;
    let layers = layer_errors(&g, &q, &frames[0])?;
    Ok(Compiled { choice: choice.clone(), plan: q.plan, layers, params: g.parameter_count() })
}

fn layer_errors(g: &Graph, q: &quantize::Quantized, frame: &[u8]) -> Result<Vec<LayerError>, CompileError> {
    let plan = &q.plan;
    CpuRef.check(plan)?;
    // Run op by op and keep each output: the arena reuses the space of dead tensors.
    let mut arena = vec![0i8; plan.arena_bytes as usize];
    let mut scratch = vec![0i8; plan.tensors.iter().map(|t| t.len()).max().unwrap_or(0)];
    let mut int8: Vec<Vec<i8>> = vec![Vec::new(); plan.tensors.len()];
    let it = plan.tensor(plan.input);
    cpu_ref::preprocess(&plan.preprocess, frame, it.h as usize, it.w as usize, &mut arena[it.range()]);
    int8[plan.input.index()] = arena[it.range()].to_vec();
    for op in &plan.ops {
        cpu_ref::run_op(plan, op, &mut arena, &mut scratch);
        let o = plan.tensor(op.output());
        int8[op.output().index()] = arena[o.range()].to_vec();
    }
    let inp = plan.tensor(plan.input);
    let fp = Interpreter::new(g).run_all(float_input(frame, (plan.preprocess.src_w, plan.preprocess.src_h), (inp.h as usize, inp.w as usize)));
    let mut writer: Vec<&'static str> = vec!["input"; plan.tensors.len()];
    for op in &plan.ops {
        writer[op.output().index()] = op.kind();
    }
    Ok(plan
        .tensors
        .iter()
        .enumerate()
        .map(|(t, d)| LayerError {
            name: d.name.clone(),
            op: writer[t],
            shape: [d.h, d.w, d.c],
            scale: d.scale,
            zero_point: d.zero_point,
            sqnr_db: quantize::sqnr_db(&fp[q.value_of[t]].data, &int8[t], d.scale, d.zero_point),
        })
        .collect())
}
