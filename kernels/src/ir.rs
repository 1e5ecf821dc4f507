//! The quantised operator set of a `.vplan`.
//!
//! CONTRACT: the fused convolution below is the op every backend implements first; the
//! kernels-core work extends this module with pooling, add, concat, resize and head ops.

use crate::quant::Requant;

/// Shape and geometry of a 2D convolution over an NHWC tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Padding `[top, left, bottom, right]`; padded positions hold the input zero point.
    pub pad: [usize; 4],
    /// Groups: `in_c` and `out_c` are both multiples of it; depthwise when `groups == in_c`.
    pub groups: usize,
}

impl ConvGeom {
    /// Output spatial size for an `h x w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let oh = (h + self.pad[0] + self.pad[2] - self.kh) / self.stride_h + 1;
        let ow = (w + self.pad[1] + self.pad[3] - self.kw) / self.stride_w + 1;
        (oh, ow)
    }
}

/// A convolution fused with bias, requantisation and a clamp (ReLU / ReLU6 / none are clamps).
///
/// `out = clamp(requant[oc].apply(bias[oc] + Σ (x - input_zp) * w) + output_zp, act_min, act_max)`
#[derive(Clone, Debug, PartialEq)]
pub struct QConv {
    /// Geometry.
    pub geom: ConvGeom,
    /// Weights, OHWI: `[out_c][kh][kw][in_c / groups]`, symmetric (zero point 0).
    pub weights: Vec<i8>,
    /// Bias per output channel, in accumulator units (`input_scale * weight_scale[oc]`).
    pub bias: Vec<i32>,
    /// Requantisation per output channel: `input_scale * weight_scale[oc] / output_scale`.
    pub requant: Vec<Requant>,
    /// Input zero point.
    pub input_zp: i32,
    /// Output zero point.
    pub output_zp: i32,
    /// Lower clamp, after adding the output zero point.
    pub act_min: i8,
    /// Upper clamp, after adding the output zero point.
    pub act_max: i8,
}
