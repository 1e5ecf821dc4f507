//! The fused INT8 convolution (`shaders/conv.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::ctx::{WgslContext, WgslError};
use super::program::{DevTensor, Dispatch};
use crate::plan::ConvView;

/// Parameter block of `conv.wgsl` (`struct Conv`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvParams {
    n: u32,
    h: u32,
    w: u32,
    in_c: u32,
    oh: u32,
    ow: u32,
    out_c: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_t: u32,
    pad_l: u32,
    groups: u32,
    input_zp: i32,
    output_zp: i32,
    act_min: i32,
    act_max: i32,
    total: u32,
    _pad: u32,
}

/// Checks a convolution against its input size; the error names the field at fault.
pub(crate) fn validate(op: &ConvView<'_>, h: usize, w: usize) -> Result<(usize, usize), WgslError> {
    let g = op.geom;
    let bad = |m: String| Err(WgslError::Invalid(format!("conv: {m}")));
    if g.groups == 0 || !g.in_c.is_multiple_of(g.groups) || !g.out_c.is_multiple_of(g.groups) {
        return bad(format!("groups {} does not divide in_c {} and out_c {}", g.groups, g.in_c, g.out_c));
    }
    if g.kh == 0 || g.kw == 0 || g.stride_h == 0 || g.stride_w == 0 || g.out_c == 0 {
        return bad("kernel, stride and out_c must be positive".into());
    }
    if h + g.pad[0] + g.pad[2] < g.kh || w + g.pad[1] + g.pad[3] < g.kw {
        return bad(format!("kernel {}x{} larger than padded input {h}x{w}", g.kh, g.kw));
    }
    let wlen = g.out_c * g.kh * g.kw * (g.in_c / g.groups);
    if op.weights.len() != wlen {
        return bad(format!("weights has {} values, expected {wlen}", op.weights.len()));
    }
    if op.bias.len() != g.out_c || op.requant.len() != g.out_c {
        return bad(format!("bias/requant have {}/{} entries, expected {}", op.bias.len(), op.requant.len(), g.out_c));
    }
    if let Some(r) = op.requant.iter().find(|r| !(-31..=30).contains(&r.shift)) {
        return bad(format!("requant shift {} outside -31..=30", r.shift));
    }
    Ok(g.out_hw(h, w))
}

/// A convolution's constants on the device, uploaded once and shared by every batch size.
pub(crate) struct ConvConsts {
    weights: wgpu::Buffer,
    chan: wgpu::Buffer,
    wsum: wgpu::Buffer,
    packed: bool,
}

/// Uploads weights, per-channel (bias, multiplier, shift) and per-tap weight sums.
pub(crate) fn upload(ctx: &WgslContext, label: &str, op: &ConvView<'_>) -> ConvConsts {
    let g = op.geom;
    let icg = g.in_c / g.groups;
    let chan: Vec<[i32; 4]> =
        (0..g.out_c).map(|oc| [op.bias[oc], op.requant[oc].multiplier, op.requant[oc].shift, 0]).collect();
    let wsum: Vec<i32> =
        op.weights.chunks(icg.max(1)).map(|tap| tap.iter().fold(0i32, |s, &v| s.wrapping_add(i32::from(v)))).collect();
    ConvConsts {
        weights: ctx.storage_init(label, bytemuck::cast_slice(op.weights)),
        chan: ctx.storage_init(label, bytemuck::cast_slice(&chan)),
        wsum: ctx.storage_init(label, bytemuck::cast_slice(&wsum)),
        // Word-aligned channel runs: every pixel's group slice and every weight tap starts on a word.
        packed: icg.is_multiple_of(4) && g.in_c.is_multiple_of(4),
    }
}

/// Builds the dispatch of `op` over `n` images of `h x w`, reading `input`, writing `output`.
pub(crate) fn dispatch(
    ctx: &WgslContext,
    label: &str,
    op: &ConvView<'_>,
    consts: &ConvConsts,
    n: usize,
    h: usize,
    w: usize,
    input: &DevTensor,
    output: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let (oh, ow) = validate(op, h, w)?;
    let g = op.geom;
    let total = n * oh * ow * g.out_c;
    if input.bytes != n * h * w * g.in_c || output.bytes != total {
        return Err(WgslError::Invalid(format!("conv {label}: tensor sizes do not match the geometry")));
    }
    let total_u32 = u32::try_from(total).map_err(|_| WgslError::Invalid(format!("conv {label}: output too large")))?;
    let params = ConvParams {
        n: n as u32,
        h: h as u32,
        w: w as u32,
        in_c: g.in_c as u32,
        oh: oh as u32,
        ow: ow as u32,
        out_c: g.out_c as u32,
        kh: g.kh as u32,
        kw: g.kw as u32,
        stride_h: g.stride_h as u32,
        stride_w: g.stride_w as u32,
        pad_t: g.pad[0] as u32,
        pad_l: g.pad[1] as u32,
        groups: g.groups as u32,
        input_zp: op.input_zp,
        output_zp: op.output_zp,
        act_min: i32::from(op.act_min),
        act_max: i32::from(op.act_max),
        total: total_u32,
        _pad: 0,
    };
    let uniform = ctx.uniform(label, bytemuck::bytes_of(&params));
    let (pipeline, layout) =
        ctx.cached_pipeline("conv", CONV_WGSL, 4, &[("packed", f64::from(u8::from(consts.packed)))])?;
    let bind = ctx.bind(label, &layout, &uniform, &[&input.buf, &consts.weights, &consts.chan, &consts.wsum], &output.buf);
    Ok(Dispatch { label: label.into(), pipeline, bind, grid: ctx.grid(total_u32.div_ceil(4))? })
}

const CONV_WGSL: &str = include_str!("../../shaders/conv.wgsl");
