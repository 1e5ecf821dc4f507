//! ONNX import: a static-shape FP32 graph of the op subset CenterNet-style detectors use.
//!
//! Supported ops (default domain): `Conv` (incl. grouped and depthwise, no dilation),
//! `BatchNormalization` (inference form), `Relu`, `Clip`, `LeakyRelu`, `Sigmoid`, `Add` (two
//! tensors of the same shape), `Concat` (channel axis), `MaxPool`, `Resize` / `Upsample`
//! (nearest, integer factors), `Identity`, `Reshape` (only when it keeps the shape), and
//! `Constant` (folded into the initializers). Tensors are `1 x C x H x W` with every dimension
//! static; the importer may override the input's `H x W` (the `lite` variant runs the same
//! weights at a lower resolution) and re-derives every shape.
//!
//! Anything else is an [`OnnxError`] naming the node, its op and what is wrong; the importer
//! never panics on malformed input.

use std::collections::HashMap;

use prost::Message;

use crate::ir::ConvGeom;
use crate::onnx_proto as pb;

/// Why a model cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not a protobuf `ModelProto`.
    #[error("not an ONNX model (protobuf decode failed: {0})")]
    Decode(#[from] prost::DecodeError),
    /// The model has no graph, or the graph no node.
    #[error("ONNX model has no graph or the graph is empty")]
    NoGraph,
    /// An op outside the supported subset.
    #[error("node {index} `{node}`: unsupported op `{op}` (supported: {SUPPORTED})")]
    UnsupportedOp {
        /// Node index in the graph.
        index: usize,
        /// Node name.
        node: String,
        /// Op type (with its domain when not the default one).
        op: String,
    },
    /// A dimension that is not a fixed positive number.
    #[error("{what} `{name}`: dimension {dim} is {value}; only static shapes are supported (export with a fixed input size)")]
    DynamicShape {
        /// Graph input, output or initializer.
        what: &'static str,
        /// Tensor name.
        name: String,
        /// Axis.
        dim: usize,
        /// What the dimension is (a symbol or a number).
        value: String,
    },
    /// A node whose attributes, inputs or shapes vigil cannot run.
    #[error("node {index} `{node}` ({op}): {reason}")]
    BadNode {
        /// Node index.
        index: usize,
        /// Node name.
        node: String,
        /// Op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// A graph-level problem (inputs, outputs, initializers).
    #[error("graph: {0}")]
    BadGraph(String),
}

const SUPPORTED: &str = "Conv, BatchNormalization, Relu, Clip, LeakyRelu, Sigmoid, Add, Concat, MaxPool, Resize/Upsample (nearest), Identity, Reshape (shape-preserving), Constant";

/// Largest accepted channel count, height or width of any tensor, kernel, stride or pad.
pub const MAX_SIDE: usize = 1 << 15;

/// Index of a value (tensor) in [`Graph::values`].
pub type ValueId = usize;

/// A value's static per-frame shape (`N = 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Shape {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// True when the shape has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named value of the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// ONNX name.
    pub name: String,
    /// Shape.
    pub shape: Shape,
}

/// A floating-point op. Weights are stored OHWI (`[out_c][kh][kw][in_c / groups]`).
#[derive(Clone, Debug, PartialEq)]
pub enum FOp {
    /// Convolution with bias (zero when the model has none).
    Conv {
        /// Geometry.
        geom: ConvGeom,
        /// OHWI weights.
        weight: Vec<f32>,
        /// Bias per output channel.
        bias: Vec<f32>,
    },
    /// Inference batch norm as a per-channel affine map `y = x * scale + shift`.
    BatchNorm {
        /// `gamma / sqrt(var + eps)`.
        scale: Vec<f32>,
        /// `beta - mean * scale`.
        shift: Vec<f32>,
    },
    /// `max(x, 0)`.
    Relu,
    /// `clamp(x, min, max)`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `x` when positive, else `alpha * x`.
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// Elementwise sum of two same-shaped values.
    Add,
    /// Channel concatenation.
    Concat,
    /// Max pooling (padding never selected).
    MaxPool {
        /// Window height, width.
        k: [usize; 2],
        /// Strides.
        stride: [usize; 2],
        /// `[top, left, bottom, right]`.
        pad: [usize; 4],
    },
    /// Nearest upsampling by integer factors.
    ResizeNearest {
        /// Height factor.
        fh: usize,
        /// Width factor.
        fw: usize,
    },
    /// Copy.
    Identity,
}

impl FOp {
    /// Short op name.
    pub fn kind(&self) -> &'static str {
        match self {
            FOp::Conv { .. } => "Conv",
            FOp::BatchNorm { .. } => "BatchNormalization",
            FOp::Relu => "Relu",
            FOp::Clip { .. } => "Clip",
            FOp::LeakyRelu { .. } => "LeakyRelu",
            FOp::Sigmoid => "Sigmoid",
            FOp::Add => "Add",
            FOp::Concat => "Concat",
            FOp::MaxPool { .. } => "MaxPool",
            FOp::ResizeNearest { .. } => "Resize",
            FOp::Identity => "Identity",
        }
    }
}

/// One node: an op, its input values and its single output value.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Node name (or `op_index` when the model has none).
    pub name: String,
    /// Op.
    pub op: FOp,
    /// Inputs.
    pub inputs: Vec<ValueId>,
    /// Output.
    pub output: ValueId,
}

/// An imported graph in execution order with static shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// All values; `values[input]` is the image.
    pub values: Vec<Value>,
    /// The single graph input (`1 x 3 x H x W`).
    pub input: ValueId,
    /// Nodes in topological (execution) order.
    pub nodes: Vec<Node>,
    /// Graph outputs in ONNX order.
    pub outputs: Vec<ValueId>,
    /// Opset of the default domain.
    pub opset: i64,
}

impl Graph {
    /// Looks up an output by name.
    pub fn output_named(&self, name: &str) -> Option<ValueId> {
        self.outputs.iter().copied().find(|&v| self.values[v].name == name)
    }

    /// Number of weight and bias parameters (BN counted as its folded scale and shift).
    pub fn parameter_count(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| match &n.op {
                FOp::Conv { weight, bias, .. } => weight.len() + bias.len(),
                FOp::BatchNorm { scale, shift } => scale.len() + shift.len(),
                _ => 0,
            })
            .sum()
    }

    /// Multiply-accumulates of the convolutions per frame, times two (ops).
    pub fn ops_per_frame(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.op {
                FOp::Conv { geom, .. } => {
                    let o = self.values[n.output].shape;
                    2 * (o.len() * geom.kh * geom.kw * (geom.in_c / geom.groups)) as u64
                }
                _ => 0,
            })
            .sum()
    }
}

/// A constant: dims and data as f32 (and the original integers for shape-like inputs).
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<i64>,
    f: Vec<f32>,
    i: Vec<i64>,
}

/// Decodes little-endian `raw` bytes as `n` values of `W` bytes each.
fn raw_values<const W: usize, T>(t: &pb::TensorProto, n: usize, what: &str, f: impl Fn([u8; W]) -> T) -> Result<Vec<T>, String> {
    if Some(t.raw_data.len()) != n.checked_mul(W) {
        return Err(format!("initializer `{}`: {} raw bytes for {n} {what}", t.name, t.raw_data.len()));
    }
    Ok(t.raw_data.chunks_exact(W).map(|b| f(b.try_into().unwrap_or([0; W]))).collect())
}

fn tensor_const(t: &pb::TensorProto) -> Result<Const, String> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        return Err(format!("initializer `{}` uses external data, which vigil does not load", t.name));
    }
    if t.dims.iter().any(|&d| d < 0) {
        return Err(format!("initializer `{}` has a negative dimension {:?}", t.name, t.dims));
    }
    let n = t
        .dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?))
        .filter(|&n| n <= 1 << 28)
        .ok_or_else(|| format!("initializer `{}` with dims {:?} is too large", t.name, t.dims))?;
    let raw = !t.raw_data.is_empty();
    let (f, i): (Vec<f32>, Vec<i64>) = match t.data_type {
        pb::data_type::FLOAT => {
            let f = if raw { raw_values(t, n, "floats", f32::from_le_bytes)? } else { t.float_data.clone() };
            let i = f.iter().map(|&v| v as i64).collect();
            (f, i)
        }
        pb::data_type::DOUBLE => {
            let d = if raw { raw_values(t, n, "doubles", f64::from_le_bytes)? } else { t.double_data.clone() };
            (d.iter().map(|&v| v as f32).collect(), d.iter().map(|&v| v as i64).collect())
        }
        pb::data_type::INT64 => {
            let i = if raw { raw_values(t, n, "int64", i64::from_le_bytes)? } else { t.int64_data.clone() };
            (i.iter().map(|&v| v as f32).collect(), i)
        }
        pb::data_type::INT32 => {
            let i: Vec<i64> = if raw {
                raw_values(t, n, "int32", |b| i64::from(i32::from_le_bytes(b)))?
            } else {
                t.int32_data.iter().map(|&v| i64::from(v)).collect()
            };
            (i.iter().map(|&v| v as f32).collect(), i)
        }
        other => return Err(format!("initializer `{}` has data type {other}; vigil reads float, double, int32 and int64", t.name)),
    };
    if f.len() != n {
        return Err(format!("initializer `{}` holds {} values, its dims {:?} need {n}", t.name, f.len(), t.dims));
    }
    Ok(Const { dims: t.dims.clone(), f, i })
}

/// Options of [`import`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Replace the input's `H x W` (both multiples of the network's total stride).
    pub input_hw: Option<(usize, usize)>,
}

/// Imports an ONNX model from bytes.
pub fn import(bytes: &[u8], opts: ImportOptions) -> Result<Graph, OnnxError> {
    let model = pb::ModelProto::decode(bytes)?;
    let graph = model.graph.as_ref().ok_or(OnnxError::NoGraph)?;
    if graph.node.is_empty() {
        return Err(OnnxError::NoGraph);
    }
    let opset = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
    if opset != 0 && !(7..=22).contains(&opset) {
        return Err(OnnxError::BadGraph(format!("default-domain opset {opset} is outside the supported 7..=22")));
    }
    Importer::new(graph, opset, opts)?.run(graph)
}

struct Importer {
    consts: HashMap<String, Const>,
    ids: HashMap<String, ValueId>,
    values: Vec<Value>,
    nodes: Vec<Node>,
    input: ValueId,
    opset: i64,
}

fn static_dims(what: &'static str, vi: &pb::ValueInfoProto) -> Result<Vec<usize>, OnnxError> {
    let tt = vi
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| OnnxError::BadGraph(format!("{what} `{}` is not a tensor", vi.name)))?;
    let shape = tt.shape.as_ref().ok_or_else(|| OnnxError::DynamicShape { what, name: vi.name.clone(), dim: 0, value: "an unknown rank".into() })?;
    let mut dims = Vec::new();
    for (i, d) in shape.dim.iter().enumerate() {
        match &d.value {
            Some(pb::DimValue::DimValue(v)) if *v > 0 => dims.push(*v as usize),
            Some(pb::DimValue::DimValue(v)) => return Err(OnnxError::DynamicShape { what, name: vi.name.clone(), dim: i, value: v.to_string() }),
            Some(pb::DimValue::DimParam(p)) => return Err(OnnxError::DynamicShape { what, name: vi.name.clone(), dim: i, value: format!("the symbol `{p}`") }),
            None => return Err(OnnxError::DynamicShape { what, name: vi.name.clone(), dim: i, value: "unset".into() }),
        }
    }
    Ok(dims)
}

impl Importer {
    fn new(graph: &pb::GraphProto, opset: i64, opts: ImportOptions) -> Result<Importer, OnnxError> {
        let mut consts = HashMap::new();
        for t in &graph.initializer {
            let c = tensor_const(t).map_err(OnnxError::BadGraph)?;
            consts.insert(t.name.clone(), c);
        }
        let real_inputs: Vec<&pb::ValueInfoProto> = graph.input.iter().filter(|i| !consts.contains_key(&i.name)).collect();
        if real_inputs.len() != 1 {
            let names: Vec<&str> = real_inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(OnnxError::BadGraph(format!("expected exactly one image input, found {} ({names:?})", real_inputs.len())));
        }
        let vi = real_inputs[0];
        let dims = static_dims("graph input", vi)?;
        if dims.len() != 4 || dims[0] != 1 {
            return Err(OnnxError::BadGraph(format!("input `{}` has shape {dims:?}; expected [1, C, H, W]", vi.name)));
        }
        let (h, w) = opts.input_hw.unwrap_or((dims[2], dims[3]));
        if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE || dims[1] > MAX_SIDE {
            return Err(OnnxError::BadGraph(format!("input `{}` of {} x {h} x {w} is empty or larger than {MAX_SIDE} per side", vi.name, dims[1])));
        }
        let mut ids = HashMap::new();
        ids.insert(vi.name.clone(), 0);
        let values = vec![Value { name: vi.name.clone(), shape: Shape { c: dims[1], h, w } }];
        Ok(Importer { consts, ids, values, nodes: Vec::new(), input: 0, opset })
    }

    fn run(mut self, graph: &pb::GraphProto) -> Result<Graph, OnnxError> {
        for (index, node) in graph.node.iter().enumerate() {
            self.node(index, node)?;
        }
        let mut outputs = Vec::new();
        for o in &graph.output {
            let id = *self.ids.get(&o.name).ok_or_else(|| OnnxError::BadGraph(format!("graph output `{}` is not produced by any supported node", o.name)))?;
            outputs.push(id);
        }
        if outputs.is_empty() {
            return Err(OnnxError::BadGraph("the graph has no output".into()));
        }
        Ok(Graph { values: self.values, input: self.input, nodes: self.nodes, outputs, opset: self.opset })
    }

    fn node(&mut self, index: usize, node: &pb::NodeProto) -> Result<(), OnnxError> {
        let name = if node.name.is_empty() { format!("{}_{index}", node.op_type) } else { node.name.clone() };
        let bad = |reason: String| OnnxError::BadNode { index, node: name.clone(), op: node.op_type.clone(), reason };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(OnnxError::UnsupportedOp { index, node: name, op: format!("{}::{}", node.domain, node.op_type) });
        }
        let attr = |n: &str| node.attribute.iter().find(|a| a.name == n);
        let attr_i = |n: &str, d: i64| attr(n).map_or(d, |a| a.i);
        let attr_f = |n: &str, d: f32| attr(n).map_or(d, |a| a.f);
        let attr_ints = |n: &str| attr(n).map(|a| a.ints.clone());
        let attr_s = |n: &str, d: &str| attr(n).map_or(d.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned());

        if node.op_type == "Constant" {
            let out = node.output.first().ok_or_else(|| bad("no output".into()))?;
            let t = attr("value").and_then(|a| a.t.as_ref()).ok_or_else(|| bad("only the `value` tensor form is supported".into()))?;
            let c = tensor_const(t).map_err(&bad)?;
            self.consts.insert(out.clone(), c);
            return Ok(());
        }
        // An Identity of a constant (exporters wrap parameters so) is that constant.
        if node.op_type == "Identity"
            && let (Some(i), Some(o)) = (node.input.first(), node.output.first())
            && let Some(c) = self.consts.get(i).cloned()
        {
            self.consts.insert(o.clone(), c);
            return Ok(());
        }
        const KNOWN: [&str; 13] =
            ["Conv", "BatchNormalization", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Add", "Concat", "MaxPool", "Resize", "Upsample", "Identity", "Reshape"];
        if !KNOWN.contains(&node.op_type.as_str()) {
            return Err(OnnxError::UnsupportedOp { index, node: name, op: node.op_type.clone() });
        }
        if node.output.first().is_none_or(|o| o.is_empty()) || node.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(bad(format!("{} outputs {:?}; vigil supports nodes with one used output", node.output.len(), node.output)));
        }
        let out_name = node.output.first().cloned().unwrap_or_default();
        // Tensor (non-constant) inputs.
        let value = |i: usize| -> Result<ValueId, OnnxError> {
            let n = node.input.get(i).ok_or_else(|| bad(format!("missing input {i}")))?;
            self.ids.get(n).copied().ok_or_else(|| {
                if self.consts.contains_key(n) {
                    bad(format!("input {i} `{n}` is a constant; vigil expects a tensor computed from the image here"))
                } else {
                    bad(format!("input {i} `{n}` is not produced by an earlier node (graph not topologically sorted?)"))
                }
            })
        };
        let konst = |i: usize| -> Result<Option<&Const>, OnnxError> {
            match node.input.get(i) {
                None => Ok(None),
                Some(n) if n.is_empty() => Ok(None),
                Some(n) => self.consts.get(n).map(Some).ok_or_else(|| bad(format!("input {i} `{n}` must be a constant initializer"))),
            }
        };
        let shape_of = |v: ValueId| self.values[v].shape;

        let (op, inputs, shape): (FOp, Vec<ValueId>, Shape) = match node.op_type.as_str() {
            "Conv" => {
                let x = value(0)?;
                let xs = shape_of(x);
                let wc = konst(1)?.ok_or_else(|| bad("weights must be an initializer".into()))?;
                if wc.dims.len() != 4 {
                    return Err(bad(format!("weights have shape {:?}; only 2D convolution is supported", wc.dims)));
                }
                let (oc, icg, kh, kw) = (wc.dims[0] as usize, wc.dims[1] as usize, wc.dims[2] as usize, wc.dims[3] as usize);
                if [oc, icg, kh, kw].iter().any(|&d| d == 0 || d > MAX_SIDE) {
                    return Err(bad(format!("weights have shape {:?}", wc.dims)));
                }
                let groups = attr_i("group", 1);
                if groups < 1 || xs.c % groups as usize != 0 || oc % groups as usize != 0 {
                    return Err(bad(format!("group {groups} does not divide {} input / {oc} output channels", xs.c)));
                }
                let groups = groups as usize;
                if icg * groups != xs.c {
                    return Err(bad(format!("weights expect {} input channels, input `{}` has {}", icg * groups, self.values[x].name, xs.c)));
                }
                if let Some(k) = attr_ints("kernel_shape")
                    && k != [kh as i64, kw as i64]
                {
                    return Err(bad(format!("kernel_shape {k:?} disagrees with weights {:?}", wc.dims)));
                }
                if let Some(d) = attr_ints("dilations")
                    && d.iter().any(|&v| v != 1)
                {
                    return Err(bad(format!("dilations {d:?} are not supported")));
                }
                let stride = attr_ints("strides").unwrap_or_else(|| vec![1, 1]);
                if stride.len() != 2 || stride.iter().any(|&s| s < 1 || s > MAX_SIDE as i64) {
                    return Err(bad(format!("strides {stride:?} invalid")));
                }
                let pad = pads(&attr_s("auto_pad", "NOTSET"), attr_ints("pads"), [kh, kw], [stride[0] as usize, stride[1] as usize], [xs.h, xs.w]).map_err(&bad)?;
                let geom = ConvGeom { in_c: xs.c, out_c: oc, kh, kw, stride_h: stride[0] as usize, stride_w: stride[1] as usize, pad, groups };
                if xs.h + pad[0] + pad[2] < kh || xs.w + pad[1] + pad[3] < kw {
                    return Err(bad(format!("kernel {kh}x{kw} larger than the padded input {}x{}", xs.h, xs.w)));
                }
                let (oh, ow) = geom.out_hw(xs.h, xs.w);
                // OIHW -> OHWI.
                let mut weight = vec![0f32; wc.f.len()];
                for o in 0..oc {
                    for i in 0..icg {
                        for y in 0..kh {
                            for x2 in 0..kw {
                                weight[((o * kh + y) * kw + x2) * icg + i] = wc.f[((o * icg + i) * kh + y) * kw + x2];
                            }
                        }
                    }
                }
                let bias = match konst(2)? {
                    Some(b) if b.f.len() == oc => b.f.clone(),
                    Some(b) => return Err(bad(format!("bias has {} values for {oc} output channels", b.f.len()))),
                    None => vec![0.0; oc],
                };
                (FOp::Conv { geom, weight, bias }, vec![x], Shape { c: oc, h: oh, w: ow })
            }
            "BatchNormalization" => {
                let x = value(0)?;
                let xs = shape_of(x);
                if attr_i("training_mode", 0) != 0 {
                    return Err(bad("training_mode=1 is not an inference graph".into()));
                }
                let eps = attr_f("epsilon", 1e-5);
                let get = |i: usize, what: &str| -> Result<Vec<f32>, OnnxError> {
                    let c = konst(i)?.ok_or_else(|| bad(format!("{what} must be an initializer")))?;
                    if c.f.len() != xs.c {
                        return Err(bad(format!("{what} has {} values for {} channels", c.f.len(), xs.c)));
                    }
                    Ok(c.f.clone())
                };
                let (g, b, m, v) = (get(1, "scale")?, get(2, "bias")?, get(3, "mean")?, get(4, "var")?);
                let scale: Vec<f32> = g.iter().zip(&v).map(|(g, v)| g / (v + eps).sqrt()).collect();
                let shift: Vec<f32> = b.iter().zip(&m).zip(&scale).map(|((b, m), s)| b - m * s).collect();
                if scale.iter().chain(&shift).any(|x| !x.is_finite()) {
                    return Err(bad("non-finite scale or shift (negative variance?)".into()));
                }
                (FOp::BatchNorm { scale, shift }, vec![x], xs)
            }
            "Relu" => {
                let x = value(0)?;
                (FOp::Relu, vec![x], shape_of(x))
            }
            "Sigmoid" => {
                let x = value(0)?;
                (FOp::Sigmoid, vec![x], shape_of(x))
            }
            "Identity" => {
                let x = value(0)?;
                (FOp::Identity, vec![x], shape_of(x))
            }
            "LeakyRelu" => {
                let x = value(0)?;
                (FOp::LeakyRelu { alpha: attr_f("alpha", 0.01) }, vec![x], shape_of(x))
            }
            "Clip" => {
                let x = value(0)?;
                let (min, max) = if self.opset >= 11 || node.input.len() > 1 {
                    let one = |i: usize| -> Result<Option<f32>, OnnxError> {
                        match konst(i)? {
                            None => Ok(None),
                            Some(c) if c.f.len() == 1 => Ok(Some(c.f[0])),
                            Some(_) => Err(bad(format!("input {i} must be a scalar"))),
                        }
                    };
                    (one(1)?.unwrap_or(f32::NEG_INFINITY), one(2)?.unwrap_or(f32::INFINITY))
                } else {
                    (attr_f("min", f32::NEG_INFINITY), attr_f("max", f32::INFINITY))
                };
                if min > max || min.is_nan() || max.is_nan() {
                    return Err(bad(format!("min {min} > max {max}")));
                }
                (FOp::Clip { min, max }, vec![x], shape_of(x))
            }
            "Add" => {
                let a = value(0)?;
                let b = value(1)?;
                if shape_of(a) != shape_of(b) {
                    return Err(bad(format!("inputs have shapes {:?} and {:?}; broadcasting is not supported", shape_of(a), shape_of(b))));
                }
                (FOp::Add, vec![a, b], shape_of(a))
            }
            "Concat" => {
                let axis = attr_i("axis", 1);
                if axis != 1 && axis != -3 {
                    return Err(bad(format!("axis {axis}; only the channel axis (1) is supported")));
                }
                let mut ins = Vec::new();
                let mut c = 0;
                for i in 0..node.input.len() {
                    let v = value(i)?;
                    let s = shape_of(v);
                    let first = shape_of(*ins.first().unwrap_or(&v));
                    if (s.h, s.w) != (first.h, first.w) {
                        return Err(bad(format!("input {i} is {}x{}, input 0 is {}x{}", s.h, s.w, first.h, first.w)));
                    }
                    c += s.c;
                    ins.push(v);
                }
                let s0 = shape_of(*ins.first().ok_or_else(|| bad("no input".into()))?);
                (FOp::Concat, ins, Shape { c, h: s0.h, w: s0.w })
            }
            "MaxPool" => {
                let x = value(0)?;
                let xs = shape_of(x);
                let k = attr_ints("kernel_shape").ok_or_else(|| bad("kernel_shape is required".into()))?;
                if k.len() != 2 || k.iter().any(|&v| v < 1) {
                    return Err(bad(format!("kernel_shape {k:?}; only 2D pooling is supported")));
                }
                if attr_i("ceil_mode", 0) != 0 {
                    return Err(bad("ceil_mode=1 is not supported".into()));
                }
                if attr_i("storage_order", 0) != 0 {
                    return Err(bad("storage_order=1 is not supported".into()));
                }
                if let Some(d) = attr_ints("dilations")
                    && d.iter().any(|&v| v != 1)
                {
                    return Err(bad(format!("dilations {d:?} are not supported")));
                }
                let stride = attr_ints("strides").unwrap_or_else(|| vec![1, 1]);
                if stride.len() != 2 || stride.iter().any(|&s| s < 1 || s > MAX_SIDE as i64) || k.iter().any(|&v| v > MAX_SIDE as i64) {
                    return Err(bad(format!("strides {stride:?} or kernel {k:?} invalid")));
                }
                let k = [k[0] as usize, k[1] as usize];
                let st = [stride[0] as usize, stride[1] as usize];
                let pad = pads(&attr_s("auto_pad", "NOTSET"), attr_ints("pads"), k, st, [xs.h, xs.w]).map_err(&bad)?;
                if pad[0] >= k[0] || pad[2] >= k[0] || pad[1] >= k[1] || pad[3] >= k[1] {
                    return Err(bad(format!("padding {pad:?} as large as the window {k:?}")));
                }
                if xs.h + pad[0] + pad[2] < k[0] || xs.w + pad[1] + pad[3] < k[1] {
                    return Err(bad("window larger than the padded input".into()));
                }
                let oh = (xs.h + pad[0] + pad[2] - k[0]) / st[0] + 1;
                let ow = (xs.w + pad[1] + pad[3] - k[1]) / st[1] + 1;
                (FOp::MaxPool { k, stride: st, pad }, vec![x], Shape { c: xs.c, h: oh, w: ow })
            }
            "Resize" | "Upsample" => {
                let x = value(0)?;
                let xs = shape_of(x);
                let mode = attr_s("mode", "nearest");
                if mode != "nearest" {
                    return Err(bad(format!("mode `{mode}`; only nearest is supported")));
                }
                let ctm = attr_s("coordinate_transformation_mode", "half_pixel");
                let nearest = attr_s("nearest_mode", "round_prefer_floor");
                // For integer upscale factors these all pick source index floor(dst / f).
                let ok = match (node.op_type.as_str(), ctm.as_str(), nearest.as_str()) {
                    ("Upsample", _, _) => true,
                    (_, _, _) if self.opset < 11 => true,
                    (_, "asymmetric", "floor") => true,
                    (_, "half_pixel" | "pytorch_half_pixel", "round_prefer_floor" | "floor") => true,
                    _ => false,
                };
                if !ok {
                    return Err(bad(format!("coordinate_transformation_mode `{ctm}` with nearest_mode `{nearest}` is not supported")));
                }
                // Scales: Upsample input 1 / Resize opset 10 input 1 / opset 11+ input 2; sizes: input 3.
                let (scales, sizes) = if node.op_type == "Upsample" || self.opset < 11 {
                    (konst(1)?.map(|c| c.f.clone()), None)
                } else {
                    (konst(2)?.map(|c| c.f.clone()).filter(|v| !v.is_empty()), konst(3)?.map(|c| c.i.clone()).filter(|v| !v.is_empty()))
                };
                let (oh, ow) = match (scales, sizes) {
                    (Some(s), _) if s.len() == 4 => {
                        if s[0] != 1.0 || s[1] != 1.0 {
                            return Err(bad(format!("scales {s:?} resize the batch or channel axis")));
                        }
                        ((xs.h as f32 * s[2]).floor() as usize, (xs.w as f32 * s[3]).floor() as usize)
                    }
                    (_, Some(z)) if z.len() == 4 => {
                        if z[0] != 1 || z[1] != xs.c as i64 {
                            return Err(bad(format!("sizes {z:?} resize the batch or channel axis")));
                        }
                        (z[2].max(0) as usize, z[3].max(0) as usize)
                    }
                    _ => return Err(bad("needs constant 4-element scales or sizes".into())),
                };
                if oh == 0 || ow == 0 || oh > MAX_SIDE || ow > MAX_SIDE || oh % xs.h != 0 || ow % xs.w != 0 {
                    return Err(bad(format!("{}x{} -> {oh}x{ow} is not an integer upscale", xs.h, xs.w)));
                }
                (FOp::ResizeNearest { fh: oh / xs.h, fw: ow / xs.w }, vec![x], Shape { c: xs.c, h: oh, w: ow })
            }
            "Reshape" => {
                let x = value(0)?;
                let xs = shape_of(x);
                let target = konst(1)?.ok_or_else(|| bad("shape must be a constant".into()))?;
                let cur = [1i64, xs.c as i64, xs.h as i64, xs.w as i64];
                let mut t: Vec<i64> = target.i.iter().enumerate().map(|(i, &d)| if d == 0 { cur.get(i).copied().unwrap_or(0) } else { d }).collect();
                let known: i64 = t.iter().filter(|&&d| d != -1).product();
                if t.iter().filter(|&&d| d == -1).count() == 1 && known > 0 {
                    let total: i64 = cur.iter().product();
                    for d in t.iter_mut().filter(|d| **d == -1) {
                        *d = total / known;
                    }
                }
                if t != cur {
                    return Err(bad(format!("reshape {cur:?} -> {t:?} changes the layout; only shape-preserving Reshape is supported")));
                }
                (FOp::Identity, vec![x], xs)
            }
            other => return Err(OnnxError::UnsupportedOp { index, node: name, op: other.to_string() }),
        };
        if shape.is_empty() {
            return Err(bad(format!("output `{out_name}` would be empty ({shape:?})")));
        }
        if self.ids.contains_key(&out_name) {
            return Err(bad(format!("output `{out_name}` is written twice")));
        }
        let id = self.values.len();
        self.values.push(Value { name: out_name.clone(), shape });
        self.ids.insert(out_name, id);
        self.nodes.push(Node { name, op, inputs, output: id });
        Ok(())
    }
}

/// Explicit `[top, left, bottom, right]` padding from ONNX `pads` / `auto_pad`.
fn pads(auto: &str, pads: Option<Vec<i64>>, k: [usize; 2], s: [usize; 2], hw: [usize; 2]) -> Result<[usize; 4], String> {
    match auto {
        "NOTSET" => {
            let p = pads.unwrap_or_else(|| vec![0; 4]);
            if p.len() != 4 || p.iter().any(|&v| v < 0 || v > MAX_SIDE as i64) {
                return Err(format!("pads {p:?} invalid"));
            }
            Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
        }
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut out = [0usize; 4];
            for a in 0..2 {
                let o = hw[a].div_ceil(s[a]);
                let total = ((o - 1) * s[a] + k[a]).saturating_sub(hw[a]);
                let small = total / 2;
                let big = total - small;
                if auto == "SAME_UPPER" {
                    out[a] = small;
                    out[a + 2] = big;
                } else {
                    out[a] = big;
                    out[a + 2] = small;
                }
            }
            Ok(out)
        }
        other => Err(format!("auto_pad `{other}` invalid")),
    }
}
