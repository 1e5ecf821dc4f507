//! The Plan IR: what a compiled `.vplan` holds and what every backend runs.
//!
//! A [`Plan`] is a straight-line list of quantised ops over int8 NHWC tensors, preceded by a
//! [`Preprocess`] stage (camera RGB8 frame -> model input) and followed by a [`HeadSpec`]
//! decode stage (CenterNet heads -> a fixed-capacity [`Candidates`] list). Everything a
//! backend must reproduce byte for byte is integer; the only floating point is the host-side
//! [`HeadSpec::decode`] that turns integer candidates into boxes, and that is done once, on
//! the CPU, by shared code.
//!
//! # Memory model
//!
//! * Every tensor is `h x w x c` int8 (one frame; a batch repeats the layout per frame) and
//!   lives at a byte `offset` in a per-frame activation arena of [`Plan::arena_bytes`] bytes.
//!   Offsets are chosen by the compiler (or [`assign_arena`]); [`Plan::validate`]
//!   checks that no op overwrites a tensor that is still to be read.
//! * Constant data (conv weights, biases, requantisation multipliers, LUT tables) lives in one
//!   8-byte-aligned [`Blob`], referenced by [`BlobRange`]s. A loaded `.vplan` views its weights
//!   in the file buffer directly; nothing is copied per tensor.
//!
//! # Integer semantics of each op
//!
//! See the documentation of each [`Op`] variant; `cpu_ref` implements exactly that text.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ir::{ConvGeom, QConv};
use crate::quant::Requant;

#[cfg(target_endian = "big")]
compile_error!("the plan blob and the .vplan format are little-endian; big-endian targets are not supported");

/// Index of a tensor in [`Plan::tensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub u32);

impl TensorId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One int8 activation tensor (one frame, NHWC with N = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDesc {
    /// Name (from the ONNX graph), for error messages and debugging.
    pub name: String,
    /// Height.
    pub h: u32,
    /// Width.
    pub w: u32,
    /// Channels (innermost).
    pub c: u32,
    /// Real value of one quantisation step: `real = scale * (q - zero_point)`.
    pub scale: f32,
    /// Zero point, in `-128..=127`.
    pub zero_point: i32,
    /// Byte offset in the per-frame activation arena.
    pub offset: u64,
}

impl TensorDesc {
    /// Number of int8 elements (= bytes) of one frame of this tensor.
    pub fn len(&self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }

    /// True when the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Byte range of this tensor in the per-frame arena.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.len()
    }
}

/// A byte range in the plan's constant [`Blob`]; `offset` is a multiple of 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlobRange {
    /// Byte offset from the start of the blob.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The plan's constant data: one 8-byte-aligned buffer, shared (cheap to clone).
///
/// Built by [`PlanBuilder`], or a view into the buffer a `.vplan` was read into.
#[derive(Clone, Debug)]
pub struct Blob {
    buf: Arc<Vec<u64>>,
    /// Byte offset of the blob inside `buf`.
    start: usize,
    /// Length in bytes.
    len: usize,
}

impl PartialEq for Blob {
    fn eq(&self, other: &Blob) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Default for Blob {
    fn default() -> Blob {
        Blob { buf: Arc::new(Vec::new()), start: 0, len: 0 }
    }
}

impl Blob {
    /// A blob viewing `len` bytes at byte `start` of a shared aligned buffer.
    ///
    /// Returns `None` when the range is outside the buffer or `start` is not 8-aligned.
    pub fn view(buf: Arc<Vec<u64>>, start: usize, len: usize) -> Option<Blob> {
        let total = buf.len() * 8;
        if !start.is_multiple_of(8) || start.checked_add(len)? > total {
            return None;
        }
        Some(Blob { buf, start, len })
    }

    /// Copies bytes into a fresh aligned blob.
    pub fn from_bytes(bytes: &[u8]) -> Blob {
        let mut buf = vec![0u64; bytes.len().div_ceil(8)];
        buf.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
        Blob { buf: Arc::new(buf), start: 0, len: bytes.len() }
    }

    /// All bytes of the blob.
    pub fn bytes(&self) -> &[u8] {
        &self.buf.as_bytes()[self.start..self.start + self.len]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn raw(&self, r: BlobRange) -> Option<&[u8]> {
        let start = usize::try_from(r.offset).ok()?;
        let end = start.checked_add(usize::try_from(r.len).ok()?)?;
        self.bytes().get(start..end)
    }

    /// The range as int8 values; `None` when out of bounds.
    pub fn i8s(&self, r: BlobRange) -> Option<&[i8]> {
        <[i8]>::ref_from_bytes(self.raw(r)?).ok()
    }

    /// The range as little-endian i32 values; `None` when out of bounds, misaligned or not a
    /// multiple of 4 bytes.
    pub fn i32s(&self, r: BlobRange) -> Option<&[i32]> {
        <[i32]>::ref_from_bytes(self.raw(r)?).ok()
    }

    /// The range as [`Requant`] records (`multiplier`, `shift`, both i32 LE).
    pub fn requants(&self, r: BlobRange) -> Option<&[Requant]> {
        <[Requant]>::ref_from_bytes(self.raw(r)?).ok()
    }

    /// The range as a 256-entry int8 table.
    pub fn table(&self, r: BlobRange) -> Option<&[i8; 256]> {
        <[i8; 256]>::ref_from_bytes(self.raw(r)?).ok()
    }
}

/// Which row of the tier matrix a plan is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Tier {
    /// Full model, full resolution.
    Full = 0,
    /// Cheaper: lower input resolution.
    Lite = 1,
    /// Cheapest fallback (fewer channels / smallest input).
    Floor = 2,
}

impl Tier {
    /// Tier from its wire code.
    pub fn from_code(code: u32) -> Option<Tier> {
        match code {
            0 => Some(Tier::Full),
            1 => Some(Tier::Lite),
            2 => Some(Tier::Floor),
            _ => None,
        }
    }

    /// Lower-case name (`full`, `lite`, `floor`).
    pub fn name(self) -> &'static str {
        match self {
            Tier::Full => "full",
            Tier::Lite => "lite",
            Tier::Floor => "floor",
        }
    }
}

/// Plan metadata read by the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanMeta {
    /// Variant name, e.g. `full`, `lite-192`.
    pub variant: String,
    /// Tier.
    pub tier: Tier,
    /// Model version (monotonic, set by packaging; 0 when unversioned).
    pub model_version: u64,
    /// Multiply-accumulate operations per frame times two (GOPs = `ops_per_frame / 1e9`).
    pub ops_per_frame: u64,
    /// Measured latency per frame in microseconds on the reference machine; 0 = not measured.
    pub latency_us: u32,
    /// Estimated energy per frame in millijoules; 0 = unknown.
    pub energy_mj: f32,
}

/// Per-input rescale used by [`Op::Concat`] (and available to the compiler elsewhere):
/// `out = clamp(requant.apply(x - input_zp) + output_zp, -128, 127)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rescale {
    /// Zero point of the input tensor.
    pub input_zp: i32,
    /// `input_scale / output_scale` as a fixed-point multiplier.
    pub requant: Requant,
}

impl Rescale {
    /// A rescale from `(in_scale, in_zp)` to an output of `out_scale`.
    pub fn new(in_scale: f32, in_zp: i32, out_scale: f32) -> Rescale {
        Rescale { input_zp: in_zp, requant: Requant::from_real(f64::from(in_scale) / f64::from(out_scale)) }
    }
}

/// Parameters of a requantised elementwise add (the TFLite scheme).
///
/// ```text
/// a' = a_mult.apply((a - a_zp) << left_shift)
/// b' = b_mult.apply((b - b_zp) << left_shift)
/// out = clamp(out_mult.apply(a' + b') + out_zp, act_min, act_max)
/// ```
/// with `a_mult = a_scale / (2 max(a_scale, b_scale))`, the same for `b`, and
/// `out_mult = 2 max(a_scale, b_scale) / (2^left_shift * out_scale)`. `left_shift` is 20.
/// Zero points are those of the three tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    /// Left shift applied to both inputs before scaling (TFLite uses 20).
    pub left_shift: u32,
    /// Multiplier of input `a`.
    pub a_mult: Requant,
    /// Multiplier of input `b`.
    pub b_mult: Requant,
    /// Multiplier of the sum.
    pub out_mult: Requant,
    /// Lower clamp.
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

impl AddParams {
    /// The standard parameters for the given scales and clamp.
    pub fn new(a_scale: f32, b_scale: f32, out_scale: f32, act_min: i8, act_max: i8) -> AddParams {
        let left_shift = 20u32;
        let twice_max = 2.0 * f64::from(a_scale.max(b_scale));
        AddParams {
            left_shift,
            a_mult: Requant::from_real(f64::from(a_scale) / twice_max),
            b_mult: Requant::from_real(f64::from(b_scale) / twice_max),
            out_mult: Requant::from_real(twice_max / ((1u64 << left_shift) as f64 * f64::from(out_scale))),
            act_min,
            act_max,
        }
    }
}

/// A fused convolution whose constants live in the plan's [`Blob`].
///
/// Semantics are those of [`QConv`]: for every output position and channel `oc`,
/// `out = clamp(requant[oc].apply(bias[oc] + Σ (x - input_zp) * w) + output_zp, act_min, act_max)`
/// with padded input positions contributing nothing (they hold the input zero point), the
/// accumulation wrapping in i32, and the requant result added to the zero point saturating.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvOp {
    /// Input tensor (`h x w x geom.in_c`).
    pub input: TensorId,
    /// Output tensor (`oh x ow x geom.out_c`).
    pub output: TensorId,
    /// Geometry (groups include depthwise).
    pub geom: ConvGeom,
    /// Weights, OHWI int8: `out_c * kh * kw * (in_c / groups)` bytes.
    pub weights: BlobRange,
    /// Bias, `out_c` i32.
    pub bias: BlobRange,
    /// Requantisation, `out_c` [`Requant`] records.
    pub requant: BlobRange,
    /// Lower clamp (after the output zero point).
    pub act_min: i8,
    /// Upper clamp (after the output zero point).
    pub act_max: i8,
}

/// A borrowed view of a [`ConvOp`] with its constants resolved: what kernels consume.
#[derive(Clone, Copy, Debug)]
pub struct ConvView<'a> {
    /// Geometry.
    pub geom: &'a ConvGeom,
    /// Weights, OHWI.
    pub weights: &'a [i8],
    /// Bias per output channel.
    pub bias: &'a [i32],
    /// Requantisation per output channel.
    pub requant: &'a [Requant],
    /// Input zero point.
    pub input_zp: i32,
    /// Output zero point.
    pub output_zp: i32,
    /// Lower clamp.
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

impl<'a> ConvView<'a> {
    /// Views an owned [`QConv`].
    pub fn of(q: &'a QConv) -> ConvView<'a> {
        ConvView {
            geom: &q.geom,
            weights: &q.weights,
            bias: &q.bias,
            requant: &q.requant,
            input_zp: q.input_zp,
            output_zp: q.output_zp,
            act_min: q.act_min,
            act_max: q.act_max,
        }
    }
}

/// One quantised operator. All tensors are int8 NHWC; the op reads the zero points and scales
/// of its tensors from the tensor table.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Fused convolution + bias + per-channel requant + clamp; see [`ConvOp`].
    Conv(ConvOp),
    /// Max pooling over a `kh x kw` window; padded positions are ignored (never selected).
    /// Input and output share scale and zero point.
    MaxPool {
        /// Input tensor.
        input: TensorId,
        /// Output tensor (`ConvGeom::out_hw` rules for its size).
        output: TensorId,
        /// Window height.
        kh: u32,
        /// Window width.
        kw: u32,
        /// Vertical stride.
        stride_h: u32,
        /// Horizontal stride.
        stride_w: u32,
        /// Padding `[top, left, bottom, right]`; every window must overlap the input.
        pad: [u32; 4],
    },
    /// Requantised elementwise add of two tensors of the same shape; see [`AddParams`].
    Add {
        /// First input.
        a: TensorId,
        /// Second input.
        b: TensorId,
        /// Output.
        output: TensorId,
        /// Fixed-point parameters.
        params: AddParams,
    },
    /// Concatenation along channels; input `i` is rescaled into the output's quantisation by
    /// `rescale[i]` (see [`Rescale`]); all inputs share `h x w`.
    Concat {
        /// Inputs, in channel order.
        inputs: Vec<TensorId>,
        /// One rescale per input.
        rescale: Vec<Rescale>,
        /// Output; `c` is the sum of the inputs' `c`.
        output: TensorId,
    },
    /// Nearest-neighbour resize: `out[oy][ox] = in[oy * in_h / out_h][ox * in_w / out_w]`
    /// (integer floor division; ONNX `asymmetric` + `floor`, which for integer upscale factors
    /// equals `half_pixel` + `round_prefer_floor`). Input and output share quantisation.
    ResizeNearest {
        /// Input.
        input: TensorId,
        /// Output (same channels).
        output: TensorId,
    },
    /// Elementwise table lookup: `out = table[x + 128]` (sigmoid, LeakyReLU, any unary map).
    Lut {
        /// Input.
        input: TensorId,
        /// Output (same shape).
        output: TensorId,
        /// 256 int8 entries in the blob.
        table: BlobRange,
    },
}

impl Op {
    /// Short name of the op kind, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::MaxPool { .. } => "MaxPool",
            Op::Add { .. } => "Add",
            Op::Concat { .. } => "Concat",
            Op::ResizeNearest { .. } => "ResizeNearest",
            Op::Lut { .. } => "Lut",
        }
    }

    /// Tensors the op reads.
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Op::Conv(c) => vec![c.input],
            Op::MaxPool { input, .. } | Op::ResizeNearest { input, .. } | Op::Lut { input, .. } => vec![*input],
            Op::Add { a, b, .. } => vec![*a, *b],
            Op::Concat { inputs, .. } => inputs.clone(),
        }
    }

    /// The tensor the op writes.
    pub fn output(&self) -> TensorId {
        match self {
            Op::Conv(c) => c.output,
            Op::MaxPool { output, .. }
            | Op::Add { output, .. }
            | Op::Concat { output, .. }
            | Op::ResizeNearest { output, .. }
            | Op::Lut { output, .. } => *output,
        }
    }
}

/// The preprocessing stage: camera frame -> model input tensor, all integer.
///
/// The camera frame is packed RGB8, row-major, `src_w * src_h * 3` bytes. The model input is
/// `dst_h x dst_w x 3` (the plan's input tensor). Steps, per output pixel `(y, x)` and channel
/// `c`:
///
/// 1. Source coordinate in 1/256 pixel, half-pixel centres (as OpenCV `INTER_LINEAR` and
///    PyTorch `align_corners=False`):
///    `sx = clamp(((2x + 1) * src_w * 128 + dst_w / 2) / dst_w - 128, 0, (src_w - 1) * 256)`
///    (floor division of non-negative integers, i.e. rounded to the nearest 1/256), the same
///    for `sy`. Within 1.5 grey levels of the exact float bilinear.
/// 2. `x0 = sx >> 8`, `fx = sx & 255`, `x1 = min(x0 + 1, src_w - 1)`; likewise `y0, fy, y1`.
/// 3. `top = p[y0][x0] * (256 - fx) + p[y0][x1] * fx`, `bot` likewise on row `y1`;
///    `v = (top * (256 - fy) + bot * fy + 32768) >> 16`, a `u8`.
/// 4. `input[y][x][c] = lut[c][v]`: the per-channel normalise-and-quantise table, typically
///    `q = round((v / 255 - mean[c]) / std[c] / input_scale) + input_zp` clamped to int8.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Camera frame width.
    pub src_w: u32,
    /// Camera frame height.
    pub src_h: u32,
    /// Per-channel (R, G, B) tables from the resized `u8` to the quantised input.
    pub lut: [[i8; 256]; 3],
}

impl Preprocess {
    /// Builds the tables for `((v / 255) - mean[c]) / std[c]` quantised with the input
    /// tensor's `scale` and `zero_point` (round half away from zero, clamp to int8).
    pub fn normalise(src_w: u32, src_h: u32, mean: [f32; 3], std: [f32; 3], scale: f32, zero_point: i32) -> Preprocess {
        let mut lut = [[0i8; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, q) in table.iter_mut().enumerate() {
                let real = (f64::from(v as u8) / 255.0 - f64::from(mean[c])) / f64::from(std[c]);
                let qv = (real / f64::from(scale)).round() + f64::from(zero_point);
                *q = qv.clamp(-128.0, 127.0) as i8;
            }
        }
        Preprocess { src_w, src_h, lut }
    }

    /// Bytes of one camera frame.
    pub fn frame_bytes(&self) -> usize {
        self.src_w as usize * self.src_h as usize * 3
    }
}

/// How a head channel's dequantised value `r = scale * (q - zero_point)` maps to its meaning.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    /// `value = r * unit`.
    Linear {
        /// Multiplier.
        unit: f32,
    },
    /// `value = exp(r) * unit` (log-encoded sizes and distances).
    Log {
        /// Multiplier.
        unit: f32,
    },
    /// `value = 1 / (1 + exp(-r))` (heatmap logits).
    Sigmoid,
}

impl Encoding {
    /// Applies the encoding to a dequantised value.
    pub fn apply(self, r: f32) -> f32 {
        match self {
            Encoding::Linear { unit } => r * unit,
            Encoding::Log { unit } => r.exp() * unit,
            Encoding::Sigmoid => 1.0 / (1.0 + (-r).exp()),
        }
    }
}

/// One channel of one head tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelRef {
    /// The tensor (at heatmap resolution).
    pub tensor: TensorId,
    /// Channel index in it.
    pub channel: u32,
}

/// CenterNet heads and the integer peak extraction that turns them into [`Candidates`].
///
/// All head tensors have the heatmap's `h x w`; one heatmap cell covers `stride x stride`
/// model-input pixels.
///
/// **Peaks (integer, every backend byte-identical).** A heatmap value `q` at `(class, y, x)`
/// (channel `heatmap_channel + class`) is a peak when `q >= threshold`, `q` is strictly
/// greater than the neighbours of its 3x3 window that come *before* it in raster order
/// (`dy < 0`, or `dy == 0 && dx < 0`) and greater or equal to those after it; neighbours
/// outside the map do not count. (This is CenterNet's `maxpool3x3(h) == h` with plateaus of
/// equal values resolved to their first cell in raster order.)
///
/// **Top-K.** Peaks are ordered by score descending, then class, `y`, `x` ascending; the first
/// `max_candidates` are written, each with the raw int8 values of the other heads at its cell.
///
/// **Encodings (host side, [`HeadSpec::decode`]).** Centre `cx = (x + offset_x) * stride`,
/// `cy = (y + offset_y) * stride` in model-input pixels (offsets `Linear`, unit 1 cell);
/// width and height `size_enc` (typically `Log`: `exp(r) * stride`, in model-input pixels);
/// distance `depth_enc` (typically `Log` with unit 1: `exp(r)` metres); score `score_enc`
/// (`Sigmoid` for logits, `Linear` with unit 1 for a post-sigmoid heatmap).
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSpec {
    /// Class heatmap tensor.
    pub heatmap: TensorId,
    /// First class channel in the heatmap tensor.
    pub heatmap_channel: u32,
    /// Number of classes (consecutive channels).
    pub num_classes: u32,
    /// Sub-cell offset x, y.
    pub offset: [ChannelRef; 2],
    /// Box width, height.
    pub size: [ChannelRef; 2],
    /// Distance.
    pub depth: ChannelRef,
    /// Model-input pixels per heatmap cell.
    pub stride: u32,
    /// Minimum quantised heatmap value of a peak.
    pub threshold: i8,
    /// Capacity of the candidate list (top-K).
    pub max_candidates: u32,
    /// Score encoding.
    pub score_enc: Encoding,
    /// Offset encoding.
    pub offset_enc: Encoding,
    /// Size encoding.
    pub size_enc: Encoding,
    /// Depth encoding.
    pub depth_enc: Encoding,
}

/// One peak, in the integer domain: what backends emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Candidate {
    /// Class index.
    pub class: u16,
    /// Heatmap row.
    pub y: u16,
    /// Heatmap column.
    pub x: u16,
    /// Quantised heatmap value.
    pub score: i8,
    /// Quantised offset x, y.
    pub offset: [i8; 2],
    /// Quantised width, height.
    pub size: [i8; 2],
    /// Quantised depth.
    pub depth: i8,
}

/// A fixed-capacity list of candidates, allocated before the hot path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidates {
    items: Vec<Candidate>,
    len: usize,
}

impl Candidates {
    /// A list that holds at most `capacity` candidates.
    pub fn with_capacity(capacity: usize) -> Candidates {
        Candidates { items: vec![Candidate::default(); capacity], len: 0 }
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.items.len()
    }

    /// Empties the list (no deallocation).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends; returns false (and drops the candidate) when full.
    pub fn push(&mut self, c: Candidate) -> bool {
        if self.len == self.items.len() {
            return false;
        }
        self.items[self.len] = c;
        self.len += 1;
        true
    }

    /// The candidates written.
    pub fn as_slice(&self) -> &[Candidate] {
        &self.items[..self.len]
    }

    /// Number written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A decoded detection in model-input pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// Class index.
    pub class: u16,
    /// Score (probability when the heatmap encoding is `Sigmoid`).
    pub score: f32,
    /// Box centre x.
    pub cx: f32,
    /// Box centre y.
    pub cy: f32,
    /// Box width.
    pub w: f32,
    /// Box height.
    pub h: f32,
    /// Distance (metres, per the depth encoding).
    pub depth: f32,
}

impl HeadSpec {
    /// Decodes an integer candidate into a box, using the quantisation of the head tensors.
    pub fn decode(&self, plan: &Plan, c: &Candidate) -> Detection {
        let deq = |t: TensorId, q: i8| {
            let d = &plan.tensors[t.index()];
            d.scale * (i32::from(q) - d.zero_point) as f32
        };
        let stride = self.stride as f32;
        let ox = self.offset_enc.apply(deq(self.offset[0].tensor, c.offset[0]));
        let oy = self.offset_enc.apply(deq(self.offset[1].tensor, c.offset[1]));
        Detection {
            class: c.class,
            score: self.score_enc.apply(deq(self.heatmap, c.score)),
            cx: (f32::from(c.x) + ox) * stride,
            cy: (f32::from(c.y) + oy) * stride,
            w: self.size_enc.apply(deq(self.size[0].tensor, c.size[0])),
            h: self.size_enc.apply(deq(self.size[1].tensor, c.size[1])),
            depth: self.depth_enc.apply(deq(self.depth.tensor, c.depth)),
        }
    }
}

/// A compiled model: preprocessing, ops, heads, constants and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Scheduler metadata.
    pub meta: PlanMeta,
    /// Tensor table.
    pub tensors: Vec<TensorDesc>,
    /// Ops in execution order.
    pub ops: Vec<Op>,
    /// The model input tensor (written by preprocessing), `h x w x 3`.
    pub input: TensorId,
    /// Frame -> input.
    pub preprocess: Preprocess,
    /// Heads -> candidates.
    pub heads: HeadSpec,
    /// Bytes of one frame's activation arena.
    pub arena_bytes: u64,
    /// Constant data.
    pub blob: Blob,
}

/// Why a plan is not well formed. Every variant names the op, tensor or field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A tensor id points past the tensor table.
    #[error("{what} refers to tensor {id}, but the plan has {count} tensors")]
    BadTensorId {
        /// Where.
        what: String,
        /// The id.
        id: u32,
        /// Table size.
        count: usize,
    },
    /// Tensor shapes or quantisation do not fit an op.
    #[error("op {op} ({kind}): {reason}")]
    BadOp {
        /// Op index.
        op: usize,
        /// Op kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's own fields are invalid.
    #[error("tensor {id} ({name}): {reason}")]
    BadTensor {
        /// Index.
        id: usize,
        /// Name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob range is out of bounds, misaligned or of the wrong length.
    #[error("{what}: blob range offset {offset} len {len} is invalid ({reason}); blob has {blob_len} bytes")]
    BadBlobRange {
        /// Which field.
        what: String,
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Blob size.
        blob_len: usize,
        /// Why.
        reason: &'static str,
    },
    /// Two tensors alive at the same time overlap in the arena.
    #[error("op {op} writes tensor {written} at arena bytes {w_start}..{w_end}, overlapping tensor {live} ({l_start}..{l_end}) that is read later")]
    ArenaOverlap {
        /// Op index.
        op: usize,
        /// Written tensor.
        written: String,
        /// Its range.
        w_start: usize,
        /// Its range end.
        w_end: usize,
        /// Live tensor.
        live: String,
        /// Its range.
        l_start: usize,
        /// Its range end.
        l_end: usize,
    },
    /// Preprocessing or head fields are invalid.
    #[error("{field}: {reason}")]
    BadField {
        /// Field path.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn bad_op(op: usize, kind: &'static str, reason: String) -> PlanError {
    PlanError::BadOp { op, kind, reason }
}

impl Plan {
    /// The tensor descriptor of an id (the id must be valid: see [`Plan::validate`]).
    pub fn tensor(&self, id: TensorId) -> &TensorDesc {
        &self.tensors[id.index()]
    }

    /// Resolves a conv op's constants. `None` only for a plan that fails [`Plan::validate`].
    pub fn conv_view<'a>(&'a self, op: &'a ConvOp) -> Option<ConvView<'a>> {
        Some(ConvView {
            geom: &op.geom,
            weights: self.blob.i8s(op.weights)?,
            bias: self.blob.i32s(op.bias)?,
            requant: self.blob.requants(op.requant)?,
            input_zp: self.tensors.get(op.input.index())?.zero_point,
            output_zp: self.tensors.get(op.output.index())?.zero_point,
            act_min: op.act_min,
            act_max: op.act_max,
        })
    }

    /// Tensors that must survive to the end of the op list: the head tensors.
    pub fn outputs(&self) -> Vec<TensorId> {
        let h = &self.heads;
        let mut v = vec![h.heatmap, h.offset[0].tensor, h.offset[1].tensor, h.size[0].tensor, h.size[1].tensor, h.depth.tensor];
        v.sort();
        v.dedup();
        v
    }

    /// Checks every invariant the backends rely on: ids, shapes, quantisation, blob ranges,
    /// arena bounds and liveness, preprocessing and head fields. A plan that passes cannot make
    /// a backend index out of bounds.
    pub fn validate(&self) -> Result<(), PlanError> {
        let count = self.tensors.len();
        let tid = |what: &dyn Fn() -> String, id: TensorId| -> Result<&TensorDesc, PlanError> {
            self.tensors.get(id.index()).ok_or_else(|| PlanError::BadTensorId { what: what(), id: id.0, count })
        };
        for (i, t) in self.tensors.iter().enumerate() {
            let bad = |reason: String| PlanError::BadTensor { id: i, name: t.name.clone(), reason };
            if t.h == 0 || t.w == 0 || t.c == 0 {
                return Err(bad(format!("empty shape {}x{}x{}", t.h, t.w, t.c)));
            }
            if !(t.scale.is_finite() && t.scale > 0.0) {
                return Err(bad(format!("scale {} is not a positive finite number", t.scale)));
            }
            if !(-128..=127).contains(&t.zero_point) {
                return Err(bad(format!("zero point {} is outside int8", t.zero_point)));
            }
            let end = t.offset.checked_add(t.len() as u64);
            if end.is_none_or(|e| e > self.arena_bytes) {
                return Err(bad(format!("arena range {}+{} exceeds the arena of {} bytes", t.offset, t.len(), self.arena_bytes)));
            }
        }
        // Input.
        let input = tid(&|| "plan.input".into(), self.input)?;
        if input.c != 3 {
            return Err(PlanError::BadField { field: "plan.input", reason: format!("input tensor has {} channels, preprocessing writes 3", input.c) });
        }
        let p = &self.preprocess;
        if p.src_w == 0 || p.src_h == 0 {
            return Err(PlanError::BadField { field: "preprocess.src", reason: format!("empty source frame {}x{}", p.src_w, p.src_h) });
        }
        if (p.src_w as u64) * 256 * 2 * (input.w as u64 + 1) > u32::MAX as u64 || (p.src_h as u64) * 256 * 2 * (input.h as u64 + 1) > u32::MAX as u64 {
            return Err(PlanError::BadField { field: "preprocess.src", reason: "source or input size too large for 32-bit fixed point".into() });
        }
        for (i, op) in self.ops.iter().enumerate() {
            self.validate_op(i, op)?;
        }
        self.validate_heads()?;
        self.validate_liveness()
    }

    fn range_check(&self, what: &dyn Fn() -> String, r: BlobRange, len: u64, align: u64) -> Result<(), PlanError> {
        let err = |reason| PlanError::BadBlobRange { what: what(), offset: r.offset, len: r.len, blob_len: self.blob.len(), reason };
        if r.len != len {
            return Err(err("wrong length for the op"));
        }
        if !r.offset.is_multiple_of(align) {
            return Err(err("misaligned"));
        }
        if r.offset.checked_add(r.len).is_none_or(|e| e > self.blob.len() as u64) {
            return Err(err("out of bounds"));
        }
        Ok(())
    }

    fn validate_op(&self, i: usize, op: &Op) -> Result<(), PlanError> {
        let kind = op.kind();
        let count = self.tensors.len();
        let get = |id: TensorId, role: &str| -> Result<&TensorDesc, PlanError> {
            self.tensors.get(id.index()).ok_or_else(|| PlanError::BadTensorId { what: format!("op {i} ({kind}) {role}"), id: id.0, count })
        };
        let out = get(op.output(), "output")?;
        if op.output() == self.input {
            return Err(bad_op(i, kind, "writes the model input tensor".into()));
        }
        for (n, id) in op.inputs().iter().enumerate() {
            get(*id, &format!("input {n}"))?;
            if *id == op.output() {
                return Err(bad_op(i, kind, "reads and writes the same tensor".into()));
            }
        }
        let same_quant = |a: &TensorDesc, b: &TensorDesc| -> Result<(), PlanError> {
            if a.scale != b.scale || a.zero_point != b.zero_point {
                return Err(bad_op(i, kind, format!("input {} and output {} must share scale and zero point", a.name, b.name)));
            }
            Ok(())
        };
        match op {
            Op::Conv(c) => {
                let x = get(c.input, "input")?;
                let g = &c.geom;
                if g.groups == 0 || g.in_c % g.groups != 0 || g.out_c % g.groups != 0 {
                    return Err(bad_op(i, kind, format!("groups {} must divide in_c {} and out_c {}", g.groups, g.in_c, g.out_c)));
                }
                if g.kh == 0 || g.kw == 0 || g.stride_h == 0 || g.stride_w == 0 {
                    return Err(bad_op(i, kind, "kernel and stride must be non-zero".into()));
                }
                if x.c as usize != g.in_c || out.c as usize != g.out_c {
                    return Err(bad_op(i, kind, format!("channels {}->{} do not match geometry {}->{}", x.c, out.c, g.in_c, g.out_c)));
                }
                if x.h as usize + g.pad[0] + g.pad[2] < g.kh || x.w as usize + g.pad[1] + g.pad[3] < g.kw {
                    return Err(bad_op(i, kind, "kernel larger than padded input".into()));
                }
                if g.pad[0] >= g.kh || g.pad[2] >= g.kh || g.pad[1] >= g.kw || g.pad[3] >= g.kw {
                    return Err(bad_op(i, kind, format!("padding {:?} must be smaller than the kernel {}x{}", g.pad, g.kh, g.kw)));
                }
                let (oh, ow) = g.out_hw(x.h as usize, x.w as usize);
                if (oh, ow) != (out.h as usize, out.w as usize) {
                    return Err(bad_op(i, kind, format!("output is {}x{}, geometry gives {oh}x{ow}", out.h, out.w)));
                }
                if c.act_min > c.act_max {
                    return Err(bad_op(i, kind, format!("clamp {}..{} is empty", c.act_min, c.act_max)));
                }
                let wlen = (g.out_c * g.kh * g.kw * (g.in_c / g.groups)) as u64;
                self.range_check(&|| format!("op {i} (Conv) weights"), c.weights, wlen, 1)?;
                self.range_check(&|| format!("op {i} (Conv) bias"), c.bias, 4 * g.out_c as u64, 4)?;
                self.range_check(&|| format!("op {i} (Conv) requant"), c.requant, 8 * g.out_c as u64, 4)?;
                for (oc, r) in self.blob.requants(c.requant).unwrap_or(&[]).iter().enumerate() {
                    if !(-31..=30).contains(&r.shift) || r.multiplier < 0 {
                        return Err(bad_op(i, kind, format!("requant[{oc}] multiplier {} shift {} out of range", r.multiplier, r.shift)));
                    }
                }
            }
            Op::MaxPool { input, kh, kw, stride_h, stride_w, pad, .. } => {
                let x = get(*input, "input")?;
                same_quant(x, out)?;
                if *kh == 0 || *kw == 0 || *stride_h == 0 || *stride_w == 0 {
                    return Err(bad_op(i, kind, "window and stride must be non-zero".into()));
                }
                if pad[0] >= *kh || pad[2] >= *kh || pad[1] >= *kw || pad[3] >= *kw {
                    return Err(bad_op(i, kind, format!("padding {pad:?} must be smaller than the window {kh}x{kw}")));
                }
                if x.h + pad[0] + pad[2] < *kh || x.w + pad[1] + pad[3] < *kw {
                    return Err(bad_op(i, kind, "window larger than padded input".into()));
                }
                let oh = (x.h + pad[0] + pad[2] - kh) / stride_h + 1;
                let ow = (x.w + pad[1] + pad[3] - kw) / stride_w + 1;
                if (oh, ow, x.c) != (out.h, out.w, out.c) {
                    return Err(bad_op(i, kind, format!("output is {}x{}x{}, window gives {oh}x{ow}x{}", out.h, out.w, out.c, x.c)));
                }
            }
            Op::Add { a, b, params, .. } => {
                let (ta, tb) = (get(*a, "input a")?, get(*b, "input b")?);
                if (ta.h, ta.w, ta.c) != (tb.h, tb.w, tb.c) || (ta.h, ta.w, ta.c) != (out.h, out.w, out.c) {
                    return Err(bad_op(i, kind, "inputs and output must have the same shape".into()));
                }
                if params.left_shift > 24 {
                    return Err(bad_op(i, kind, format!("left shift {} > 24 can overflow", params.left_shift)));
                }
                if params.act_min > params.act_max {
                    return Err(bad_op(i, kind, "empty clamp".into()));
                }
                for (n, r) in [params.a_mult, params.b_mult, params.out_mult].iter().enumerate() {
                    if !(-31..=30).contains(&r.shift) || r.multiplier < 0 {
                        return Err(bad_op(i, kind, format!("multiplier {n} out of range")));
                    }
                }
            }
            Op::Concat { inputs, rescale, .. } => {
                if inputs.is_empty() || inputs.len() != rescale.len() {
                    return Err(bad_op(i, kind, format!("{} inputs but {} rescales", inputs.len(), rescale.len())));
                }
                let mut c = 0;
                for (n, id) in inputs.iter().enumerate() {
                    let t = get(*id, &format!("input {n}"))?;
                    if (t.h, t.w) != (out.h, out.w) {
                        return Err(bad_op(i, kind, format!("input {n} is {}x{}, output {}x{}", t.h, t.w, out.h, out.w)));
                    }
                    if rescale[n].input_zp != t.zero_point || !(-31..=30).contains(&rescale[n].requant.shift) || rescale[n].requant.multiplier < 0 {
                        return Err(bad_op(i, kind, format!("rescale {n} does not fit input {}", t.name)));
                    }
                    c += t.c;
                }
                if c != out.c {
                    return Err(bad_op(i, kind, format!("inputs have {c} channels, output {}", out.c)));
                }
            }
            Op::ResizeNearest { input, .. } => {
                let x = get(*input, "input")?;
                same_quant(x, out)?;
                if x.c != out.c {
                    return Err(bad_op(i, kind, "channel count changes".into()));
                }
            }
            Op::Lut { input, table, .. } => {
                let x = get(*input, "input")?;
                if (x.h, x.w, x.c) != (out.h, out.w, out.c) {
                    return Err(bad_op(i, kind, "input and output must have the same shape".into()));
                }
                self.range_check(&|| format!("op {i} (Lut) table"), *table, 256, 1)?;
            }
        }
        Ok(())
    }

    fn validate_heads(&self) -> Result<(), PlanError> {
        let h = &self.heads;
        let count = self.tensors.len();
        let get = |id: TensorId, what: &str| {
            self.tensors.get(id.index()).ok_or_else(|| PlanError::BadTensorId { what: format!("heads.{what}"), id: id.0, count })
        };
        let hm = get(h.heatmap, "heatmap")?;
        if h.num_classes == 0 || h.num_classes > u32::from(u16::MAX) || h.heatmap_channel + h.num_classes > hm.c {
            return Err(PlanError::BadField { field: "heads.num_classes", reason: format!("classes {}..{} outside heatmap channels {}", h.heatmap_channel, h.heatmap_channel + h.num_classes, hm.c) });
        }
        if hm.h > u32::from(u16::MAX) || hm.w > u32::from(u16::MAX) {
            return Err(PlanError::BadField { field: "heads.heatmap", reason: "heatmap larger than 65535 cells per side".into() });
        }
        let chans = [("offset[0]", h.offset[0]), ("offset[1]", h.offset[1]), ("size[0]", h.size[0]), ("size[1]", h.size[1]), ("depth", h.depth)];
        for (what, r) in chans {
            let t = get(r.tensor, what)?;
            if (t.h, t.w) != (hm.h, hm.w) || r.channel >= t.c {
                return Err(PlanError::BadField { field: "heads", reason: format!("{what}: tensor {} ({}x{}x{}) channel {} does not match the heatmap {}x{}", t.name, t.h, t.w, t.c, r.channel, hm.h, hm.w) });
            }
        }
        if h.stride == 0 {
            return Err(PlanError::BadField { field: "heads.stride", reason: "zero".into() });
        }
        if h.max_candidates == 0 || h.max_candidates > 1 << 16 {
            return Err(PlanError::BadField { field: "heads.max_candidates", reason: format!("{} outside 1..=65536", h.max_candidates) });
        }
        Ok(())
    }

    fn validate_liveness(&self) -> Result<(), PlanError> {
        // last_use[t] = index of the last op reading t; head outputs live to the end.
        let n = self.ops.len();
        let mut last_use = vec![None::<usize>; self.tensors.len()];
        for (i, op) in self.ops.iter().enumerate() {
            for t in op.inputs() {
                last_use[t.index()] = Some(i);
            }
        }
        for t in self.outputs() {
            last_use[t.index()] = Some(n);
        }
        let mut produced = vec![false; self.tensors.len()];
        produced[self.input.index()] = true;
        for (i, op) in self.ops.iter().enumerate() {
            for t in op.inputs() {
                if !produced[t.index()] {
                    return Err(bad_op(i, op.kind(), format!("reads tensor {} before any op writes it", self.tensor(t).name)));
                }
            }
            let w = op.output();
            if produced[w.index()] {
                return Err(bad_op(i, op.kind(), format!("writes tensor {} a second time", self.tensor(w).name)));
            }
            let wr = self.tensor(w).range();
            for (t, desc) in self.tensors.iter().enumerate() {
                // Live: produced already and read by this op or a later one.
                if t == w.index() || !produced[t] || last_use[t].is_none_or(|l| l < i) {
                    continue;
                }
                let lr = desc.range();
                if wr.start < lr.end && lr.start < wr.end {
                    return Err(PlanError::ArenaOverlap {
                        op: i,
                        written: self.tensor(w).name.clone(),
                        w_start: wr.start,
                        w_end: wr.end,
                        live: desc.name.clone(),
                        l_start: lr.start,
                        l_end: lr.end,
                    });
                }
            }
            produced[w.index()] = true;
        }
        for t in self.outputs() {
            if !produced[t.index()] {
                return Err(PlanError::BadField { field: "heads", reason: format!("head tensor {} is never written", self.tensor(t).name) });
            }
        }
        Ok(())
    }
}

/// Builds a [`Plan`]: appends tensors, ops and constants, then assigns arena offsets.
#[derive(Debug)]
pub struct PlanBuilder {
    tensors: Vec<TensorDesc>,
    ops: Vec<Op>,
    blob: Vec<u8>,
}

impl Default for PlanBuilder {
    fn default() -> Self {
        PlanBuilder::new()
    }
}

impl PlanBuilder {
    /// An empty builder.
    pub fn new() -> PlanBuilder {
        PlanBuilder { tensors: Vec::new(), ops: Vec::new(), blob: Vec::new() }
    }

    /// Adds a tensor (arena offset assigned by [`PlanBuilder::finish`]).
    pub fn tensor(&mut self, name: impl Into<String>, h: u32, w: u32, c: u32, scale: f32, zero_point: i32) -> TensorId {
        self.tensors.push(TensorDesc { name: name.into(), h, w, c, scale, zero_point, offset: 0 });
        TensorId(self.tensors.len() as u32 - 1)
    }

    /// The descriptor of a tensor added earlier.
    pub fn desc(&self, id: TensorId) -> &TensorDesc {
        &self.tensors[id.index()]
    }

    /// Appends raw bytes to the blob at an 8-aligned offset.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> BlobRange {
        let offset = self.blob.len().next_multiple_of(8);
        self.blob.resize(offset, 0);
        self.blob.extend_from_slice(bytes);
        BlobRange { offset: offset as u64, len: bytes.len() as u64 }
    }

    /// Appends a 256-entry table.
    pub fn push_table(&mut self, table: &[i8; 256]) -> BlobRange {
        self.push_bytes(table.as_bytes())
    }

    /// Adds a fused convolution from an owned [`QConv`] (its zero points must equal the
    /// tensors'; [`Plan::validate`] checks shapes).
    pub fn conv(&mut self, input: TensorId, output: TensorId, q: &QConv) -> &mut Self {
        let weights = self.push_bytes(q.weights.as_bytes());
        let bias = self.push_bytes(q.bias.as_bytes());
        let requant = self.push_bytes(q.requant.as_bytes());
        self.ops.push(Op::Conv(ConvOp { input, output, geom: q.geom.clone(), weights, bias, requant, act_min: q.act_min, act_max: q.act_max }));
        self
    }

    /// Adds a LUT op.
    pub fn lut(&mut self, input: TensorId, output: TensorId, table: &[i8; 256]) -> &mut Self {
        let table = self.push_table(table);
        self.ops.push(Op::Lut { input, output, table });
        self
    }

    /// Adds any op whose constants are already in the blob (or that has none).
    pub fn op(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Assigns arena offsets (greedy first fit over tensor lifetimes, 64-byte aligned), builds
    /// and validates the plan.
    pub fn finish(self, meta: PlanMeta, input: TensorId, preprocess: Preprocess, heads: HeadSpec) -> Result<Plan, PlanError> {
        let mut plan = Plan {
            meta,
            tensors: self.tensors,
            ops: self.ops,
            input,
            preprocess,
            heads,
            arena_bytes: 0,
            blob: Blob::from_bytes(&self.blob),
        };
        if input.index() >= plan.tensors.len() {
            return Err(PlanError::BadTensorId { what: "plan.input".into(), id: input.0, count: plan.tensors.len() });
        }
        assign_arena(&mut plan)?;
        plan.validate()?;
        Ok(plan)
    }
}

/// Assigns arena offsets to every tensor of `plan` by lifetime (first write to last read; the
/// input from the start, head tensors to the end), first fit, 64-byte aligned, and sets
/// [`Plan::arena_bytes`]. Tensors never written nor read get offset 0 and no space.
pub fn assign_arena(plan: &mut Plan) -> Result<(), PlanError> {
    let n = plan.ops.len();
    let count = plan.tensors.len();
    let mut first = vec![None::<usize>; count];
    let mut last = vec![None::<usize>; count];
    let check = |id: TensorId, what: &str| {
        if id.index() >= count {
            return Err(PlanError::BadTensorId { what: what.into(), id: id.0, count });
        }
        Ok(())
    };
    check(plan.input, "plan.input")?;
    first[plan.input.index()] = Some(0);
    last[plan.input.index()] = Some(0);
    for (i, op) in plan.ops.iter().enumerate() {
        for t in op.inputs() {
            check(t, &format!("op {i} input"))?;
            last[t.index()] = Some(last[t.index()].map_or(i, |l: usize| l.max(i)));
        }
        let o = op.output();
        check(o, &format!("op {i} output"))?;
        first[o.index()].get_or_insert(i);
        last[o.index()] = Some(last[o.index()].map_or(i, |l: usize| l.max(i)));
    }
    let h = &plan.heads;
    for t in [h.heatmap, h.offset[0].tensor, h.offset[1].tensor, h.size[0].tensor, h.size[1].tensor, h.depth.tensor] {
        check(t, "heads")?;
        last[t.index()] = Some(n);
    }
    // Placed intervals: (first, last, start, end).
    let mut placed: Vec<(usize, usize, u64, u64)> = Vec::new();
    let mut arena = 0u64;
    let mut order: Vec<usize> = (0..count).filter(|&t| first[t].is_some()).collect();
    order.sort_by_key(|&t| std::cmp::Reverse(plan.tensors[t].len()));
    for t in order {
        let (f, l) = (first[t].unwrap_or(0), last[t].unwrap_or(0).max(first[t].unwrap_or(0)));
        let size = plan.tensors[t].len() as u64;
        let mut overlapping: Vec<(u64, u64)> = placed.iter().filter(|p| p.0 <= l && f <= p.1).map(|p| (p.2, p.3)).collect();
        overlapping.sort();
        let mut start = 0u64;
        for (s, e) in overlapping {
            if start + size <= s {
                break;
            }
            start = start.max(e.next_multiple_of(64));
        }
        placed.push((f, l, start, start + size));
        plan.tensors[t].offset = start;
        arena = arena.max(start + size);
    }
    plan.arena_bytes = arena.next_multiple_of(64);
    Ok(())
}
