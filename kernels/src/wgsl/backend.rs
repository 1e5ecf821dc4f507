//! The WGSL [`Backend`]: a plan as one [`Program`] per batch size over shared device buffers.

use std::sync::Arc;

use super::conv::{self, ConvConsts};
use super::ctx::{WgslContext, WgslError, WgslOptions};
use super::ops::{self, CONCAT_MAX_INPUTS, PeaksParams};
use super::program::{DevTensor, Dispatch, Program};
use crate::backend::{Backend, BackendError, check_run_args};
use crate::plan::{Candidates, Op, Plan};

const NAME: &str = "wgsl";

fn to_backend(e: WgslError) -> BackendError {
    match e {
        WgslError::Invalid(reason) | WgslError::NoAdapter(reason) => BackendError::Unsupported { backend: NAME, reason },
        WgslError::RequestDevice { .. } => BackendError::Unsupported { backend: NAME, reason: e.to_string() },
        WgslError::Lost(_) | WgslError::Device { .. } | WgslError::Timeout(_) => {
            BackendError::Device { backend: NAME, reason: e.to_string() }
        }
    }
}

/// The WGSL backend on one wgpu device.
pub struct WgslBackend {
    ctx: Arc<WgslContext>,
}

impl WgslBackend {
    /// Opens the best adapter (see [`WgslContext::new`]).
    pub fn new(opts: &WgslOptions) -> Result<WgslBackend, WgslError> {
        Ok(WgslBackend { ctx: Arc::new(WgslContext::new(opts)?) })
    }

    /// A backend over an already open device (tests share one).
    pub fn with_context(ctx: Arc<WgslContext>) -> WgslBackend {
        WgslBackend { ctx }
    }

    /// The device in use.
    pub fn context(&self) -> &Arc<WgslContext> {
        &self.ctx
    }
}

/// A plan on the device.
pub struct WgslPrepared {
    ctx: Arc<WgslContext>,
    tensors: Vec<wgpu::Buffer>,
    plan: Plan,
    max_batch: usize,
    programs: Vec<Program>,
    staging: Vec<u8>,
    readback: Vec<u8>,
    k: usize,
    out_base: usize,
    heat_hw: (u32, u32),
}

impl WgslPrepared {
    /// Reads every tensor of the first `n` frames of the last run back (tensor `i`: `n` frames
    /// of `plan.tensors[i].len()` bytes each). For conformance tests and debugging; allocates.
    pub fn read_tensors(&self, n: usize) -> Result<Vec<Vec<i8>>, WgslError> {
        let outputs: Vec<DevTensor> =
            self.plan.tensors.iter().zip(&self.tensors).map(|(d, b)| view(b, n * d.len())).collect();
        let mut data: Vec<Vec<u8>> = outputs.iter().map(|t| vec![0u8; t.bytes]).collect();
        let prog = Program::new(Arc::clone(&self.ctx), vec![], outputs, vec![]);
        let mut outs: Vec<&mut [u8]> = data.iter_mut().map(|v| v.as_mut_slice()).collect();
        prog.run(&[], &mut outs)?;
        Ok(data.into_iter().map(|v| v.into_iter().map(|b| b as i8).collect()).collect())
    }
}

fn view(t: &wgpu::Buffer, bytes: usize) -> DevTensor {
    DevTensor { buf: t.clone(), bytes }
}

/// Per-op constants uploaded once.
enum Consts {
    None,
    Conv(ConvConsts),
    Table(wgpu::Buffer),
}

impl Backend for WgslBackend {
    type Prepared = WgslPrepared;

    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, plan: &Plan) -> Result<(), BackendError> {
        plan.validate()?;
        let unsupported = |reason: String| BackendError::Unsupported { backend: NAME, reason };
        for (i, op) in plan.ops.iter().enumerate() {
            if let Op::Concat { inputs, .. } = op
                && inputs.len() > CONCAT_MAX_INPUTS
            {
                return Err(unsupported(format!("op {i} (Concat) has {} inputs, at most {CONCAT_MAX_INPUTS}", inputs.len())));
            }
        }
        let hm = plan.tensor(plan.heads.heatmap);
        let cells = u64::from(hm.h) * u64::from(hm.w) * u64::from(plan.heads.num_classes);
        if cells >= 1 << 24 {
            return Err(unsupported(format!("heatmap of {cells} class cells exceeds the 2^24 of the candidate key")));
        }
        Ok(())
    }

    fn prepare(&mut self, plan: &Plan, max_batch: usize) -> Result<WgslPrepared, BackendError> {
        self.check(plan)?;
        let unsupported = |reason: String| BackendError::Unsupported { backend: NAME, reason };
        if max_batch == 0 {
            return Err(unsupported("max_batch must be at least 1".into()));
        }
        let ctx = &self.ctx;
        let limit = ctx.limits().max_storage_buffer_binding_size;
        let fb = plan.preprocess.frame_bytes();
        let hs = &plan.heads;
        let hm = plan.tensor(hs.heatmap);
        let cap = (hm.h * hm.w * hs.num_classes) as usize;
        let k = hs.max_candidates as usize;
        let rec_base = max_batch.next_multiple_of(4);
        let out_base = rec_base;
        let peak_words = rec_base + max_batch * cap * 4;
        let out_words = out_base + max_batch * k * 4;
        let biggest = plan.tensors.iter().map(|t| t.len()).max().unwrap_or(0).max(fb).max(peak_words * 4);
        if (biggest * max_batch) as u64 > limit {
            return Err(unsupported(format!("a batch of {max_batch} needs a {}-byte buffer; the adapter binds at most {limit}", biggest * max_batch)));
        }
        // Device memory, shared by every batch size.
        let frames = ctx.storage("frames", max_batch * fb);
        let tensors: Vec<wgpu::Buffer> = plan.tensors.iter().map(|t| ctx.storage(&t.name, max_batch * t.len())).collect();
        let pre_lut: Vec<i8> = plan.preprocess.lut.iter().flatten().copied().collect();
        let pre_lut = ctx.storage_init("preprocess.lut", bytemuck::cast_slice(&pre_lut));
        let dummy = ctx.storage("dummy", 4);
        let peaks_buf = ctx.storage("peaks", peak_words * 4);
        let out_buf = ctx.storage("candidates", out_words * 4);
        let mut consts = Vec::with_capacity(plan.ops.len());
        for (i, op) in plan.ops.iter().enumerate() {
            consts.push(match op {
                Op::Conv(c) => {
                    let v = plan.conv_view(c).ok_or_else(|| unsupported(format!("op {i}: conv constants out of range")))?;
                    Consts::Conv(conv::upload(ctx, &format!("conv#{i}"), &v))
                }
                Op::Lut { table, .. } => {
                    let t = plan.blob.table(*table).ok_or_else(|| unsupported(format!("op {i}: table out of range")))?;
                    Consts::Table(ctx.storage_init(&format!("lut#{i}"), bytemuck::cast_slice(&t[..])))
                }
                _ => Consts::None,
            });
        }
        let refs = [hs.offset[0], hs.offset[1], hs.size[0], hs.size[1], hs.depth];
        let mut programs = Vec::with_capacity(max_batch);
        for n in 1..=max_batch {
            let t = |id: crate::plan::TensorId| view(&tensors[id.index()], n * plan.tensor(id).len());
            let mut ds: Vec<Dispatch> = Vec::new();
            let input = plan.tensor(plan.input);
            ds.push(
                ops::preprocess(ctx, "preprocess", n, plan.preprocess.src_w, plan.preprocess.src_h, input, &view(&frames, n * fb), &pre_lut, &t(plan.input))
                    .map_err(to_backend)?,
            );
            for (i, (op, c)) in plan.ops.iter().zip(&consts).enumerate() {
                let d = match (op, c) {
                    (Op::Conv(cv), Consts::Conv(cc)) => {
                        let v = plan.conv_view(cv).ok_or_else(|| unsupported(format!("op {i}: conv constants")))?;
                        let x = plan.tensor(cv.input);
                        conv::dispatch(ctx, &format!("conv#{i}"), &v, cc, n, x.h as usize, x.w as usize, &t(cv.input), &t(cv.output))
                    }
                    (Op::MaxPool { input, output, kh, kw, stride_h, stride_w, pad }, _) => ops::maxpool(
                        ctx,
                        &format!("maxpool#{i}"),
                        n,
                        plan.tensor(*input),
                        plan.tensor(*output),
                        [*kh, *kw, *stride_h, *stride_w],
                        *pad,
                        &t(*input),
                        &t(*output),
                    ),
                    (Op::ResizeNearest { input, output }, _) => {
                        ops::resize(ctx, &format!("resize#{i}"), n, plan.tensor(*input), plan.tensor(*output), &t(*input), &t(*output))
                    }
                    (Op::Lut { input, output, .. }, Consts::Table(table)) => {
                        ops::lut(ctx, &format!("lut#{i}"), n, plan.tensor(*output), &t(*input), table, &t(*output))
                    }
                    (Op::Add { a, b, output, params }, _) => ops::add(
                        ctx,
                        &format!("add#{i}"),
                        n,
                        plan.tensor(*a),
                        plan.tensor(*b),
                        plan.tensor(*output),
                        params,
                        &t(*a),
                        &t(*b),
                        &t(*output),
                    ),
                    (Op::Concat { inputs, rescale, output }, _) => {
                        let descs: Vec<_> = inputs.iter().map(|id| plan.tensor(*id)).collect();
                        let bufs: Vec<DevTensor> = inputs.iter().map(|id| t(*id)).collect();
                        let refs: Vec<&DevTensor> = bufs.iter().collect();
                        ops::concat(ctx, &format!("concat#{i}"), n, &descs, rescale, plan.tensor(*output), &refs, &dummy, &t(*output))
                    }
                    _ => Err(WgslError::Invalid(format!("op {i}: constants missing"))),
                };
                ds.push(d.map_err(to_backend)?);
            }
            let mut pp = PeaksParams {
                n: n as u32,
                h: hm.h,
                w: hm.w,
                classes: hs.num_classes,
                hm_c: hm.c,
                hm_ch0: hs.heatmap_channel,
                threshold: i32::from(hs.threshold),
                cap: cap as u32,
                rec_base: rec_base as u32,
                total: (n * cap) as u32,
                _pad: [0; 2],
                refs: [[0; 4]; 5],
            };
            for (j, r) in refs.iter().enumerate() {
                pp.refs[j] = [plan.tensor(r.tensor).c, r.channel, 0, 0];
            }
            let heads = [t(hs.heatmap), t(refs[0].tensor), t(refs[1].tensor), t(refs[2].tensor), t(refs[3].tensor), t(refs[4].tensor)];
            let peaks_view = view(&peaks_buf, peak_words * 4);
            ds.push(ops::peaks(ctx, "peaks", &pp, [&heads[0], &heads[1], &heads[2], &heads[3], &heads[4], &heads[5]], &peaks_view).map_err(to_backend)?);
            let out_bytes = (out_base + n * k * 4) * 4;
            let out_view = view(&out_buf, out_bytes);
            let tk = [n as u32, cap as u32, k as u32, rec_base as u32, out_base as u32, (n * cap) as u32, 0, 0];
            ds.push(ops::topk(ctx, "topk", tk, &peaks_view, &out_view).map_err(to_backend)?);
            programs.push(
                Program::new(Arc::clone(ctx), vec![view(&frames, n * fb)], vec![out_view], ds)
                    .clear_before_run(peaks_buf.clone(), (rec_base * 4) as u64),
            );
        }
        ctx.check("prepare").map_err(to_backend)?;
        Ok(WgslPrepared {
            ctx: Arc::clone(ctx),
            tensors,
            plan: plan.clone(),
            max_batch,
            programs,
            staging: vec![0; max_batch * fb],
            readback: vec![0; out_words * 4],
            k,
            out_base,
            heat_hw: (hm.h, hm.w),
        })
    }

    fn run(&mut self, p: &mut WgslPrepared, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError> {
        check_run_args(NAME, &p.plan, p.max_batch, frames, out)?;
        let n = frames.len();
        if n == 0 {
            return Ok(());
        }
        let fb = p.plan.preprocess.frame_bytes();
        for (i, f) in frames.iter().enumerate() {
            p.staging[i * fb..(i + 1) * fb].copy_from_slice(f);
        }
        let out_bytes = (p.out_base + n * p.k * 4) * 4;
        p.programs[n - 1].run(&[&p.staging[..n * fb]], &mut [&mut p.readback[..out_bytes]]).map_err(to_backend)?;
        let word = |i: usize| u32::from_le_bytes([p.readback[i * 4], p.readback[i * 4 + 1], p.readback[i * 4 + 2], p.readback[i * 4 + 3]]);
        for (i, list) in out.iter_mut().enumerate().take(n) {
            list.clear();
            let count = (word(i) as usize).min(p.k);
            for r in 0..count {
                let base = p.out_base + (i * p.k + r) * 4;
                list.push(crate::select::decode_record([word(base), word(base + 1), word(base + 2)], p.heat_hw.0, p.heat_hw.1));
            }
        }
        Ok(())
    }
}
