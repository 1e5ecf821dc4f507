//! Dispatch builders for the non-convolution ops, preprocessing and head decode.

use bytemuck::{Pod, Zeroable};

use super::ctx::{WgslContext, WgslError};
use super::program::{DevTensor, Dispatch};
use crate::plan::{AddParams, Rescale, TensorDesc};

fn dims(t: &TensorDesc) -> (u32, u32, u32) {
    (t.h, t.w, t.c)
}

fn total_u32(label: &str, v: usize) -> Result<u32, WgslError> {
    u32::try_from(v).map_err(|_| WgslError::Invalid(format!("{label}: tensor of {v} bytes is too large")))
}

fn finish(
    ctx: &WgslContext,
    label: &str,
    src: &str,
    params: &[u8],
    reads: &[&wgpu::Buffer],
    out: &DevTensor,
    threads: u32,
) -> Result<Dispatch, WgslError> {
    let (pipeline, layout) = ctx.cached_pipeline(label_kind(label), src, reads.len() as u32, &[])?;
    let uniform = ctx.uniform(label, params);
    let bind = ctx.bind(label, &layout, &uniform, reads, &out.buf);
    Ok(Dispatch { label: label.into(), pipeline, bind, grid: ctx.grid(threads)? })
}

/// The shader name is the label up to the first '#'.
fn label_kind(label: &str) -> &str {
    label.split('#').next().unwrap_or(label)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PoolParams {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_t: u32,
    pad_l: u32,
    total: u32,
    _pad: [u32; 3],
}

/// Max pooling.
pub(crate) fn maxpool(
    ctx: &WgslContext,
    label: &str,
    n: usize,
    x: &TensorDesc,
    y: &TensorDesc,
    window: [u32; 4],
    pad: [u32; 4],
    input: &DevTensor,
    output: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let (h, w, c) = dims(x);
    let total = total_u32(label, n * y.len())?;
    let p = PoolParams {
        n: n as u32,
        h,
        w,
        c,
        oh: y.h,
        ow: y.w,
        kh: window[0],
        kw: window[1],
        stride_h: window[2],
        stride_w: window[3],
        pad_t: pad[0],
        pad_l: pad[1],
        total,
        _pad: [0; 3],
    };
    finish(ctx, label, include_str!("../../shaders/maxpool.wgsl"), bytemuck::bytes_of(&p), &[&input.buf], output, total.div_ceil(4))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ResizeParams {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    total: u32,
    _pad: u32,
}

/// Nearest-neighbour resize.
pub(crate) fn resize(
    ctx: &WgslContext,
    label: &str,
    n: usize,
    x: &TensorDesc,
    y: &TensorDesc,
    input: &DevTensor,
    output: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let total = total_u32(label, n * y.len())?;
    let p = ResizeParams { n: n as u32, h: x.h, w: x.w, c: x.c, oh: y.h, ow: y.w, total, _pad: 0 };
    finish(ctx, label, include_str!("../../shaders/resize.wgsl"), bytemuck::bytes_of(&p), &[&input.buf], output, total.div_ceil(4))
}

/// Table lookup; `table` is the uploaded 256-byte table.
pub(crate) fn lut(
    ctx: &WgslContext,
    label: &str,
    n: usize,
    y: &TensorDesc,
    input: &DevTensor,
    table: &wgpu::Buffer,
    output: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let total = total_u32(label, n * y.len())?;
    let p = [total, 0, 0, 0];
    finish(ctx, label, include_str!("../../shaders/lut.wgsl"), bytemuck::cast_slice(&p), &[&input.buf, table], output, total.div_ceil(4))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AddUniform {
    total: u32,
    left_shift: u32,
    a_zp: i32,
    b_zp: i32,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
    _a: i32,
    a_mult: [i32; 2],
    b_mult: [i32; 2],
    out_mult: [i32; 2],
    _b: [i32; 2],
}

/// Requantised elementwise add.
pub(crate) fn add(
    ctx: &WgslContext,
    label: &str,
    n: usize,
    ta: &TensorDesc,
    tb: &TensorDesc,
    y: &TensorDesc,
    params: &AddParams,
    a: &DevTensor,
    b: &DevTensor,
    output: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let total = total_u32(label, n * y.len())?;
    let p = AddUniform {
        total,
        left_shift: params.left_shift,
        a_zp: ta.zero_point,
        b_zp: tb.zero_point,
        out_zp: y.zero_point,
        act_min: i32::from(params.act_min),
        act_max: i32::from(params.act_max),
        _a: 0,
        a_mult: [params.a_mult.multiplier, params.a_mult.shift],
        b_mult: [params.b_mult.multiplier, params.b_mult.shift],
        out_mult: [params.out_mult.multiplier, params.out_mult.shift],
        _b: [0; 2],
    };
    finish(ctx, label, include_str!("../../shaders/add.wgsl"), bytemuck::bytes_of(&p), &[&a.buf, &b.buf], output, total.div_ceil(4))
}

/// Most inputs one concat dispatch binds (storage-buffer limit per stage is at least 8).
pub(crate) const CONCAT_MAX_INPUTS: usize = 6;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConcatUniform {
    total: u32,
    out_c: u32,
    inputs: u32,
    out_zp: i32,
    // Per input: (channels, first output channel, input zero point, unused), (multiplier, shift, 0, 0).
    chans: [[i32; 4]; CONCAT_MAX_INPUTS],
    mults: [[i32; 4]; CONCAT_MAX_INPUTS],
}

/// Channel concatenation with per-input rescale.
pub(crate) fn concat(
    ctx: &WgslContext,
    label: &str,
    n: usize,
    xs: &[&TensorDesc],
    rescale: &[Rescale],
    y: &TensorDesc,
    inputs: &[&DevTensor],
    dummy: &wgpu::Buffer,
    output: &DevTensor,
) -> Result<Dispatch, WgslError> {
    if xs.len() > CONCAT_MAX_INPUTS {
        return Err(WgslError::Invalid(format!("{label}: {} inputs, the shader binds at most {CONCAT_MAX_INPUTS}", xs.len())));
    }
    let total = total_u32(label, n * y.len())?;
    let mut p = ConcatUniform {
        total,
        out_c: y.c,
        inputs: xs.len() as u32,
        out_zp: y.zero_point,
        chans: [[0; 4]; CONCAT_MAX_INPUTS],
        mults: [[0; 4]; CONCAT_MAX_INPUTS],
    };
    let mut first = 0u32;
    for (i, (x, r)) in xs.iter().zip(rescale).enumerate() {
        p.chans[i] = [x.c as i32, first as i32, r.input_zp, 0];
        p.mults[i] = [r.requant.multiplier, r.requant.shift, 0, 0];
        first += x.c;
    }
    let mut reads: Vec<&wgpu::Buffer> = inputs.iter().map(|t| &t.buf).collect();
    while reads.len() < CONCAT_MAX_INPUTS {
        reads.push(dummy);
    }
    finish(ctx, label, include_str!("../../shaders/concat.wgsl"), bytemuck::bytes_of(&p), &reads, output, total.div_ceil(4))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PreParams {
    n: u32,
    src_w: u32,
    src_h: u32,
    dst_w: u32,
    dst_h: u32,
    total: u32,
    _pad: [u32; 2],
}

/// Preprocessing of `n` frames into the input tensor.
pub(crate) fn preprocess(
    ctx: &WgslContext,
    label: &str,
    n: usize,
    src_w: u32,
    src_h: u32,
    input: &TensorDesc,
    frames: &DevTensor,
    lut: &wgpu::Buffer,
    output: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let total = total_u32(label, n * input.len())?;
    let p = PreParams { n: n as u32, src_w, src_h, dst_w: input.w, dst_h: input.h, total, _pad: [0; 2] };
    finish(ctx, label, include_str!("../../shaders/preprocess.wgsl"), bytemuck::bytes_of(&p), &[&frames.buf, lut], output, total.div_ceil(4))
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct PeaksParams {
    pub(crate) n: u32,
    pub(crate) h: u32,
    pub(crate) w: u32,
    pub(crate) classes: u32,
    pub(crate) hm_c: u32,
    pub(crate) hm_ch0: u32,
    pub(crate) threshold: i32,
    pub(crate) cap: u32,
    pub(crate) rec_base: u32,
    pub(crate) total: u32,
    pub(crate) _pad: [u32; 2],
    pub(crate) refs: [[u32; 4]; 5],
}

/// Peak extraction into the records buffer (`out` must be cleared before each run).
pub(crate) fn peaks(
    ctx: &WgslContext,
    label: &str,
    p: &PeaksParams,
    heads: [&DevTensor; 6],
    out: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let reads: Vec<&wgpu::Buffer> = heads.iter().map(|t| &t.buf).collect();
    finish(ctx, label, include_str!("../../shaders/peaks.wgsl"), bytemuck::bytes_of(p), &reads, out, p.total)
}

/// Top-K of the peak records into the candidate buffer.
pub(crate) fn topk(
    ctx: &WgslContext,
    label: &str,
    params: [u32; 8],
    peaks: &DevTensor,
    out: &DevTensor,
) -> Result<Dispatch, WgslError> {
    let total = params[5];
    finish(ctx, label, include_str!("../../shaders/topk.wgsl"), bytemuck::cast_slice(&params), &[&peaks.buf], out, total)
}
