//! The CUDA [`Backend`]: device buffers, kernel selection and the per-batch CUDA graphs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PinnedHostSlice,
    PushKernelArg, sys,
};

use super::{CudaError, SOURCES, arch_name, cache_dir, compile_cached, probe};
use crate::backend::{Backend, BackendError, check_run_args};
use crate::plan::{Candidates, Op, Plan};

const NAME: &str = "cuda";

fn dev(what: &str, e: impl std::fmt::Debug) -> BackendError {
    BackendError::Device { backend: NAME, reason: format!("{what}: {e:?}") }
}

fn unsupported(reason: String) -> BackendError {
    BackendError::Unsupported { backend: NAME, reason }
}

/// `VigilConv` of `cuda/common.cuh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ConvArgs {
    n: i32,
    h: i32,
    w: i32,
    in_c: i32,
    oh: i32,
    ow: i32,
    out_c: i32,
    kh: i32,
    kw: i32,
    stride_h: i32,
    stride_w: i32,
    pad_t: i32,
    pad_l: i32,
    groups: i32,
    input_zp: i32,
    output_zp: i32,
    act_min: i32,
    act_max: i32,
    total: i32,
    _pad: i32,
}
// SAFETY: `#[repr(C)]`, only i32 fields, no padding; the layout matches `struct VigilConv`.
unsafe impl DeviceRepr for ConvArgs {}

/// `VigilPool` of `cuda/elementwise.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PoolArgs {
    n: i32,
    h: i32,
    w: i32,
    c: i32,
    oh: i32,
    ow: i32,
    kh: i32,
    kw: i32,
    stride_h: i32,
    stride_w: i32,
    pad_t: i32,
    pad_l: i32,
    total: i32,
    _pad: [i32; 3],
}
// SAFETY: `#[repr(C)]` of i32s; matches `struct VigilPool`.
unsafe impl DeviceRepr for PoolArgs {}

/// `VigilAdd` of `cuda/elementwise.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct AddArgs {
    total: i32,
    left_shift: i32,
    a_zp: i32,
    b_zp: i32,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
    a_mult: i32,
    a_shift: i32,
    b_mult: i32,
    b_shift: i32,
    out_mult: i32,
    out_shift: i32,
    _pad: [i32; 3],
}
// SAFETY: `#[repr(C)]` of i32s; matches `struct VigilAdd`.
unsafe impl DeviceRepr for AddArgs {}

/// `VigilConcatPart` of `cuda/elementwise.cu`: one input's slice of the output channels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ConcatArgs {
    total: i32,
    in_c: i32,
    out_c: i32,
    first: i32,
    in_zp: i32,
    out_zp: i32,
    mult: i32,
    shift: i32,
}
// SAFETY: `#[repr(C)]` of i32s; matches `struct VigilConcatPart`.
unsafe impl DeviceRepr for ConcatArgs {}

/// `VigilPre` of `cuda/preprocess.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PreArgs {
    n: i32,
    src_w: i32,
    src_h: i32,
    dst_w: i32,
    dst_h: i32,
    total: i32,
    _pad: [i32; 2],
}
// SAFETY: `#[repr(C)]` of i32s; matches `struct VigilPre`.
unsafe impl DeviceRepr for PreArgs {}

/// `VigilPeaks` of `cuda/decode.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PeaksArgs {
    n: i32,
    h: i32,
    w: i32,
    classes: i32,
    hm_c: i32,
    hm_ch0: i32,
    threshold: i32,
    cap: i32,
    total: i32,
    k: i32,
    _a: [i32; 2],
    ref_c: [i32; 5],
    ref_ch: [i32; 5],
    _b: [i32; 2],
}
// SAFETY: `#[repr(C)]` of i32s and i32 arrays; matches `struct VigilPeaks`.
unsafe impl DeviceRepr for PeaksArgs {}

struct Kernels {
    conv_generic: CudaFunction,
    conv_dp4a: CudaFunction,
    conv_mma: Option<CudaFunction>,
    maxpool: CudaFunction,
    resize: CudaFunction,
    lut: CudaFunction,
    add: CudaFunction,
    concat: CudaFunction,
    preprocess: CudaFunction,
    peaks: CudaFunction,
    topk: CudaFunction,
}

/// The CUDA backend on one device.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    cc: (i32, i32),
    device_name: String,
    kernels: Kernels,
    timeout: Duration,
}

// SAFETY: every CUDA handle here is owned by this value and only used through `&mut self`
// (one thread at a time); the driver API allows a context to be used from any thread once
// bound, which cudarc does on each call.
unsafe impl Send for CudaBackend {}

impl CudaBackend {
    /// Opens device `ordinal`: probes the libraries first (no CUDA call when they are missing),
    /// then compiles or loads from the cache every kernel for the device's architecture.
    pub fn new(ordinal: usize) -> Result<CudaBackend, CudaError> {
        probe()?;
        let drv = |what: &str| {
            let what = what.to_string();
            move |e: cudarc::driver::DriverError| CudaError::Driver { what: what.clone(), message: format!("{e:?}") }
        };
        let count = CudaContext::device_count().map_err(drv("cuDeviceGetCount"))?;
        if count <= ordinal as i32 {
            return Err(CudaError::Unavailable(format!("CUDA device {ordinal} requested, the driver reports {count}")));
        }
        let ctx = CudaContext::new(ordinal).map_err(drv("cuCtxCreate"))?;
        // Graph capture and the explicit synchronisation below replace cudarc's per-slice
        // event tracking, which would record events inside captures.
        // SAFETY: called before any slice, stream or module is created on this context.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(drv("cuStreamCreate"))?;
        let cc = ctx.compute_capability().map_err(drv("compute capability"))?;
        let device_name = ctx.name().map_err(drv("device name"))?;
        let arch = arch_name(cc.0, cc.1);
        let dir = cache_dir();
        let mut modules = Vec::new();
        for (name, src) in SOURCES {
            let ptx = compile_cached(&dir, name, src, arch)?;
            let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).map_err(drv(&format!("loading {name}")))?;
            modules.push(module);
        }
        let f = |m: usize, name: &str| modules[m].load_function(name).map_err(drv(&format!("kernel {name}")));
        let kernels = Kernels {
            conv_generic: f(0, "vigil_conv_generic")?,
            conv_dp4a: f(0, "vigil_conv_dp4a")?,
            conv_mma: if cc.0 >= 8 { Some(f(0, "vigil_conv_mma")?) } else { None },
            maxpool: f(1, "vigil_maxpool")?,
            resize: f(1, "vigil_resize_nearest")?,
            lut: f(1, "vigil_lut")?,
            add: f(1, "vigil_add")?,
            concat: f(1, "vigil_concat_part")?,
            preprocess: f(2, "vigil_preprocess")?,
            peaks: f(3, "vigil_peaks")?,
            topk: f(3, "vigil_topk")?,
        };
        Ok(CudaBackend { ctx, stream, cc, device_name, kernels, timeout: Duration::from_secs(2) })
    }

    /// `name (sm_XY, arch)` for the start-up log.
    pub fn describe(&self) -> String {
        format!("{} (sm_{}{}, conv {})", self.device_name, self.cc.0, self.cc.1, if self.cc.0 >= 8 { "mma.sync s8" } else { "dp4a" })
    }

    /// How long a frame may take before the run fails with a device timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

/// How a conv op is run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ConvKind {
    Generic,
    Dp4a,
    Mma,
}

enum Step {
    Conv { kind: ConvKind, args: ConvArgs, input: usize, output: usize, weights: CudaSlice<i8>, chan: CudaSlice<i32>, wsum: CudaSlice<i32> },
    MaxPool { args: PoolArgs, input: usize, output: usize },
    Resize { args: PoolArgs, input: usize, output: usize },
    Lut { total: i32, input: usize, output: usize, table: CudaSlice<i8> },
    Add { args: AddArgs, a: usize, b: usize, output: usize },
    Concat { parts: Vec<(ConcatArgs, usize)>, output: usize },
}

/// A plan on the device: buffers for `max_batch` frames, one CUDA graph per batch size.
pub struct CudaPrepared {
    max_batch: usize,
    frame_bytes: usize,
    tensors: Vec<CudaSlice<i8>>,
    steps: Vec<Step>,
    pre: PreArgs,
    pre_lut: CudaSlice<i8>,
    peaks: PeaksArgs,
    heads: [usize; 6],
    frames_host: PinnedHostSlice<u8>,
    frames_dev: CudaSlice<u8>,
    peak_counts: CudaSlice<u32>,
    peak_records: CudaSlice<u32>,
    out_counts: CudaSlice<u32>,
    out_records: CudaSlice<u32>,
    out_counts_host: PinnedHostSlice<u32>,
    out_records_host: PinnedHostSlice<u32>,
    graphs: Vec<CudaGraph>,
    done: CudaEvent,
    heat_hw: (u32, u32),
    input: usize,
    plan: Plan,
}

// SAFETY: as for `CudaBackend`: owned device state used through `&mut` only.
unsafe impl Send for CudaPrepared {}

fn grid(total: usize, block: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: ((total as u32).div_ceil(block).max(1), 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: 0 }
}

impl CudaBackend {
    fn build_steps(&self, plan: &Plan, max_batch: usize) -> Result<Vec<Step>, BackendError> {
        let s = &self.stream;
        let n = max_batch as i32;
        let mut steps = Vec::new();
        for (i, op) in plan.ops.iter().enumerate() {
            let step = match op {
                Op::Conv(c) => {
                    let v = plan.conv_view(c).ok_or_else(|| unsupported(format!("op {i}: conv constants out of range")))?;
                    let g = v.geom;
                    let x = plan.tensor(c.input);
                    let y = plan.tensor(c.output);
                    let icg = g.in_c / g.groups;
                    let aligned = icg.is_multiple_of(4) && g.in_c.is_multiple_of(4);
                    let kind = if aligned && self.kernels.conv_mma.is_some() && icg >= 16 {
                        ConvKind::Mma
                    } else if aligned && (self.cc.0 > 6 || (self.cc.0 == 6 && self.cc.1 >= 1)) {
                        ConvKind::Dp4a
                    } else {
                        ConvKind::Generic
                    };
                    let chan: Vec<i32> = (0..g.out_c).flat_map(|oc| [v.bias[oc], v.requant[oc].multiplier, v.requant[oc].shift, 0]).collect();
                    let wsum: Vec<i32> = v.weights.chunks(icg.max(1)).map(|t| t.iter().fold(0i32, |a, &b| a.wrapping_add(i32::from(b)))).collect();
                    let args = ConvArgs {
                        n,
                        h: x.h as i32,
                        w: x.w as i32,
                        in_c: g.in_c as i32,
                        oh: y.h as i32,
                        ow: y.w as i32,
                        out_c: g.out_c as i32,
                        kh: g.kh as i32,
                        kw: g.kw as i32,
                        stride_h: g.stride_h as i32,
                        stride_w: g.stride_w as i32,
                        pad_t: g.pad[0] as i32,
                        pad_l: g.pad[1] as i32,
                        groups: g.groups as i32,
                        input_zp: v.input_zp,
                        output_zp: v.output_zp,
                        act_min: i32::from(v.act_min),
                        act_max: i32::from(v.act_max),
                        total: (max_batch * y.len()) as i32,
                        _pad: 0,
                    };
                    Step::Conv {
                        kind,
                        args,
                        input: c.input.index(),
                        output: c.output.index(),
                        weights: s.clone_htod(v.weights).map_err(|e| dev("upload weights", e))?,
                        chan: s.clone_htod(&chan).map_err(|e| dev("upload requant", e))?,
                        wsum: s.clone_htod(&wsum).map_err(|e| dev("upload weight sums", e))?,
                    }
                }
                Op::MaxPool { input, output, kh, kw, stride_h, stride_w, pad } => {
                    let (x, y) = (plan.tensor(*input), plan.tensor(*output));
                    Step::MaxPool {
                        args: PoolArgs {
                            n,
                            h: x.h as i32,
                            w: x.w as i32,
                            c: x.c as i32,
                            oh: y.h as i32,
                            ow: y.w as i32,
                            kh: *kh as i32,
                            kw: *kw as i32,
                            stride_h: *stride_h as i32,
                            stride_w: *stride_w as i32,
                            pad_t: pad[0] as i32,
                            pad_l: pad[1] as i32,
                            total: (max_batch * y.len()) as i32,
                            _pad: [0; 3],
                        },
                        input: input.index(),
                        output: output.index(),
                    }
                }
                Op::ResizeNearest { input, output } => {
                    let (x, y) = (plan.tensor(*input), plan.tensor(*output));
                    Step::Resize {
                        args: PoolArgs {
                            n,
                            h: x.h as i32,
                            w: x.w as i32,
                            c: x.c as i32,
                            oh: y.h as i32,
                            ow: y.w as i32,
                            total: (max_batch * y.len()) as i32,
                            ..PoolArgs::default()
                        },
                        input: input.index(),
                        output: output.index(),
                    }
                }
                Op::Lut { input, output, table } => {
                    let t = plan.blob.table(*table).ok_or_else(|| unsupported(format!("op {i}: lut table out of range")))?;
                    Step::Lut {
                        total: (max_batch * plan.tensor(*output).len()) as i32,
                        input: input.index(),
                        output: output.index(),
                        table: s.clone_htod(&t[..]).map_err(|e| dev("upload table", e))?,
                    }
                }
                Op::Add { a, b, output, params } => {
                    let (ta, tb, y) = (plan.tensor(*a), plan.tensor(*b), plan.tensor(*output));
                    Step::Add {
                        args: AddArgs {
                            total: (max_batch * y.len()) as i32,
                            left_shift: params.left_shift as i32,
                            a_zp: ta.zero_point,
                            b_zp: tb.zero_point,
                            out_zp: y.zero_point,
                            act_min: i32::from(params.act_min),
                            act_max: i32::from(params.act_max),
                            a_mult: params.a_mult.multiplier,
                            a_shift: params.a_mult.shift,
                            b_mult: params.b_mult.multiplier,
                            b_shift: params.b_mult.shift,
                            out_mult: params.out_mult.multiplier,
                            out_shift: params.out_mult.shift,
                            _pad: [0; 3],
                        },
                        a: a.index(),
                        b: b.index(),
                        output: output.index(),
                    }
                }
                Op::Concat { inputs, rescale, output } => {
                    let y = plan.tensor(*output);
                    let mut first = 0;
                    let mut parts = Vec::new();
                    for (id, r) in inputs.iter().zip(rescale) {
                        let x = plan.tensor(*id);
                        parts.push((
                            ConcatArgs {
                                total: (max_batch * x.len()) as i32,
                                in_c: x.c as i32,
                                out_c: y.c as i32,
                                first,
                                in_zp: r.input_zp,
                                out_zp: y.zero_point,
                                mult: r.requant.multiplier,
                                shift: r.requant.shift,
                            },
                            id.index(),
                        ));
                        first += x.c as i32;
                    }
                    Step::Concat { parts, output: output.index() }
                }
            };
            steps.push(step);
        }
        Ok(steps)
    }

    /// Issues one batch of `n` frames on the stream (used inside graph capture).
    fn enqueue(&self, p: &mut CudaPrepared, n: usize) -> Result<(), BackendError> {
        let s = &self.stream;
        let k = &self.kernels;
        let scale = |total: i32| (total as usize / p.max_batch) * n;
        // Preprocess every camera of the batch in one launch.
        let mut pre = p.pre;
        pre.n = n as i32;
        pre.total = scale(pre.total) as i32;
        {
            let mut lb = s.launch_builder(&k.preprocess);
            lb.arg(&pre).arg(&p.frames_dev).arg(&p.pre_lut).arg(&mut p.tensors[p.input]);
            // SAFETY: argument types and order match `vigil_preprocess`; buffers hold `n` frames.
            unsafe { lb.launch(grid(pre.total as usize, 256)) }.map_err(|e| dev("launch preprocess", e))?;
        }
        for step in &p.steps {
            match step {
                Step::Conv { kind, args, input, output, weights, chan, wsum } => {
                    let mut a = *args;
                    a.n = n as i32;
                    a.total = scale(a.total) as i32;
                    let (x, y) = split_pair(&mut p.tensors, *input, *output);
                    let (f, cfg) = match kind {
                        ConvKind::Mma => {
                            let f = k.conv_mma.as_ref().ok_or_else(|| unsupported("mma kernel missing".into()))?;
                            let m = (a.n * a.oh * a.ow) as u32;
                            let ocg = (a.out_c / a.groups) as u32;
                            (f, LaunchConfig { grid_dim: (m.div_ceil(64), ocg.div_ceil(32), a.groups as u32), block_dim: (128, 1, 1), shared_mem_bytes: 0 })
                        }
                        ConvKind::Dp4a => (&k.conv_dp4a, grid(a.total as usize, 128)),
                        ConvKind::Generic => (&k.conv_generic, grid(a.total as usize, 128)),
                    };
                    let mut lb = s.launch_builder(f);
                    lb.arg(&a).arg(x).arg(weights).arg(chan).arg(wsum).arg(y);
                    // SAFETY: argument types and order match the conv kernels' signature; sizes
                    // were checked by `Plan::validate` and allocated for `max_batch >= n`.
                    unsafe { lb.launch(cfg) }.map_err(|e| dev("launch conv", e))?;
                }
                Step::MaxPool { args, input, output } | Step::Resize { args, input, output } => {
                    let mut a = *args;
                    a.n = n as i32;
                    a.total = scale(a.total) as i32;
                    let f = if matches!(step, Step::MaxPool { .. }) { &k.maxpool } else { &k.resize };
                    let (x, y) = split_pair(&mut p.tensors, *input, *output);
                    let mut lb = s.launch_builder(f);
                    lb.arg(&a).arg(x).arg(y);
                    // SAFETY: matches `vigil_maxpool` / `vigil_resize_nearest`.
                    unsafe { lb.launch(grid(a.total as usize, 256)) }.map_err(|e| dev("launch pool/resize", e))?;
                }
                Step::Lut { total, input, output, table } => {
                    let t = scale(*total) as i32;
                    let (x, y) = split_pair(&mut p.tensors, *input, *output);
                    let mut lb = s.launch_builder(&k.lut);
                    lb.arg(&t).arg(x).arg(table).arg(y);
                    // SAFETY: matches `vigil_lut`.
                    unsafe { lb.launch(grid(t as usize, 256)) }.map_err(|e| dev("launch lut", e))?;
                }
                Step::Add { args, a, b, output } => {
                    let mut ar = *args;
                    ar.total = scale(ar.total) as i32;
                    let (xa, xb, y) = split_three(&mut p.tensors, *a, *b, *output);
                    let mut lb = s.launch_builder(&k.add);
                    lb.arg(&ar).arg(xa).arg(xb).arg(y);
                    // SAFETY: matches `vigil_add`.
                    unsafe { lb.launch(grid(ar.total as usize, 256)) }.map_err(|e| dev("launch add", e))?;
                }
                Step::Concat { parts, output } => {
                    for (args, input) in parts {
                        let mut a = *args;
                        a.total = scale(a.total) as i32;
                        let (x, y) = split_pair(&mut p.tensors, *input, *output);
                        let mut lb = s.launch_builder(&k.concat);
                        lb.arg(&a).arg(x).arg(y);
                        // SAFETY: matches `vigil_concat_part`.
                        unsafe { lb.launch(grid(a.total as usize, 256)) }.map_err(|e| dev("launch concat", e))?;
                    }
                }
            }
        }
        // Peaks and top-K.
        s.memset_zeros(&mut p.peak_counts).map_err(|e| dev("clear peak counts", e))?;
        let mut pk = p.peaks;
        pk.n = n as i32;
        pk.total = (n as u32 * pk.classes as u32 * p.heat_hw.0 * p.heat_hw.1) as i32;
        {
            let h = p.heads;
            let t = &p.tensors;
            let mut lb = s.launch_builder(&k.peaks);
            lb.arg(&pk).arg(&t[h[0]]).arg(&t[h[1]]).arg(&t[h[2]]).arg(&t[h[3]]).arg(&t[h[4]]).arg(&t[h[5]]);
            lb.arg(&mut p.peak_counts).arg(&mut p.peak_records);
            // SAFETY: matches `vigil_peaks`; the record buffer holds `cap` records per frame.
            unsafe { lb.launch(grid(pk.total as usize, 256)) }.map_err(|e| dev("launch peaks", e))?;
        }
        {
            let mut lb = s.launch_builder(&k.topk);
            lb.arg(&pk).arg(&p.peak_counts).arg(&p.peak_records).arg(&mut p.out_counts).arg(&mut p.out_records);
            // SAFETY: matches `vigil_topk`; the output holds `k` records per frame.
            unsafe { lb.launch(grid(n * pk.cap as usize, 256)) }.map_err(|e| dev("launch topk", e))?;
        }
        Ok(())
    }
}

/// Two distinct tensors, the first shared and the second exclusive.
fn split_pair(t: &mut [CudaSlice<i8>], read: usize, write: usize) -> (&CudaSlice<i8>, &mut CudaSlice<i8>) {
    assert_ne!(read, write, "an op reads and writes the same tensor (rejected by Plan::validate)");
    if read < write {
        let (lo, hi) = t.split_at_mut(write);
        (&lo[read], &mut hi[0])
    } else {
        let (lo, hi) = t.split_at_mut(read);
        (&hi[0], &mut lo[write])
    }
}

/// Two shared tensors and one exclusive one (`a` may equal `b`, neither equals `write`).
fn split_three(
    t: &mut [CudaSlice<i8>],
    a: usize,
    b: usize,
    write: usize,
) -> (&CudaSlice<i8>, &CudaSlice<i8>, &mut CudaSlice<i8>) {
    let (lo, rest) = t.split_at_mut(write);
    let (out, hi) = rest.split_at_mut(1);
    let (lo, hi): (&[CudaSlice<i8>], &[CudaSlice<i8>]) = (lo, hi);
    let pick = move |i: usize| if i < write { &lo[i] } else { &hi[i - write - 1] };
    (pick(a), pick(b), &mut out[0])
}

impl Backend for CudaBackend {
    type Prepared = CudaPrepared;

    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, plan: &Plan) -> Result<(), BackendError> {
        plan.validate()?;
        let hm = plan.tensor(plan.heads.heatmap);
        let cells = u64::from(hm.h) * u64::from(hm.w) * u64::from(plan.heads.num_classes);
        if cells >= 1 << 24 {
            return Err(unsupported(format!("heatmap of {cells} class cells exceeds the 2^24 of the candidate key")));
        }
        Ok(())
    }

    fn prepare(&mut self, plan: &Plan, max_batch: usize) -> Result<CudaPrepared, BackendError> {
        self.check(plan)?;
        if max_batch == 0 {
            return Err(unsupported("max_batch must be at least 1".into()));
        }
        let largest = plan.tensors.iter().map(|t| t.len()).max().unwrap_or(0).max(plan.preprocess.frame_bytes());
        if (largest as u64) * (max_batch as u64) >= i32::MAX as u64 {
            return Err(unsupported(format!("a batch of {max_batch} needs tensors over 2^31 bytes")));
        }
        let s = Arc::clone(&self.stream);
        let mut tensors = Vec::with_capacity(plan.tensors.len());
        for t in &plan.tensors {
            tensors.push(s.alloc_zeros::<i8>(max_batch * t.len()).map_err(|e| dev("allocate tensor", e))?);
        }
        let steps = self.build_steps(plan, max_batch)?;
        let input = plan.tensor(plan.input);
        let fb = plan.preprocess.frame_bytes();
        let pre = PreArgs {
            n: max_batch as i32,
            src_w: plan.preprocess.src_w as i32,
            src_h: plan.preprocess.src_h as i32,
            dst_w: input.w as i32,
            dst_h: input.h as i32,
            total: (max_batch * input.len()) as i32,
            _pad: [0; 2],
        };
        let lut: Vec<i8> = plan.preprocess.lut.iter().flatten().copied().collect();
        let hs = &plan.heads;
        let hm = plan.tensor(hs.heatmap);
        let refs = [hs.offset[0], hs.offset[1], hs.size[0], hs.size[1], hs.depth];
        let cap = (hm.h * hm.w * hs.num_classes) as usize;
        let k = hs.max_candidates as usize;
        let mut peaks = PeaksArgs {
            n: max_batch as i32,
            h: hm.h as i32,
            w: hm.w as i32,
            classes: hs.num_classes as i32,
            hm_c: hm.c as i32,
            hm_ch0: hs.heatmap_channel as i32,
            threshold: i32::from(hs.threshold),
            cap: cap as i32,
            total: 0,
            k: k as i32,
            ..PeaksArgs::default()
        };
        for (j, r) in refs.iter().enumerate() {
            peaks.ref_c[j] = plan.tensor(r.tensor).c as i32;
            peaks.ref_ch[j] = r.channel as i32;
        }
        let heads = [hs.heatmap.index(), refs[0].tensor.index(), refs[1].tensor.index(), refs[2].tensor.index(), refs[3].tensor.index(), refs[4].tensor.index()];
        let alloc_u32 = |len: usize| s.alloc_zeros::<u32>(len.max(1)).map_err(|e| dev("allocate decode buffer", e));
        // SAFETY: pinned buffers are written by the host (frames) or by a D2H copy (outputs)
        // before they are read; their initial contents are never observed.
        let (frames_host, out_counts_host, out_records_host) = unsafe {
            (
                self.ctx.alloc_pinned::<u8>(max_batch * fb).map_err(|e| dev("allocate pinned frames", e))?,
                self.ctx.alloc_pinned::<u32>(max_batch).map_err(|e| dev("allocate pinned counts", e))?,
                self.ctx.alloc_pinned::<u32>(max_batch * k.max(1) * 4).map_err(|e| dev("allocate pinned candidates", e))?,
            )
        };
        let mut p = CudaPrepared {
            max_batch,
            frame_bytes: fb,
            tensors,
            steps,
            pre,
            pre_lut: s.clone_htod(&lut).map_err(|e| dev("upload preprocessing tables", e))?,
            peaks,
            heads,
            frames_host,
            frames_dev: s.alloc_zeros::<u8>(max_batch * fb).map_err(|e| dev("allocate frames", e))?,
            peak_counts: alloc_u32(max_batch)?,
            peak_records: alloc_u32(max_batch * cap * 4)?,
            out_counts: alloc_u32(max_batch)?,
            out_records: alloc_u32(max_batch * k * 4)?,
            out_counts_host,
            out_records_host,
            graphs: Vec::with_capacity(max_batch),
            done: self.ctx.new_event(None).map_err(|e| dev("create event", e))?,
            heat_hw: (hm.h, hm.w),
            input: plan.input.index(),
            plan: plan.clone(),
        };
        for n in 1..=max_batch {
            s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                .map_err(|e| dev("begin graph capture", e))?;
            let issued = self.enqueue(&mut p, n);
            let graph = s.end_capture(sys::CUgraphInstantiate_flags(0)).map_err(|e| dev("end graph capture", e))?;
            issued?;
            p.graphs.push(graph.ok_or_else(|| dev("graph capture", "empty graph"))?);
        }
        s.synchronize().map_err(|e| dev("synchronize after prepare", e))?;
        Ok(p)
    }

    fn run(&mut self, p: &mut CudaPrepared, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError> {
        check_run_args(NAME, &p.plan, p.max_batch, frames, out)?;
        let n = frames.len();
        if n == 0 {
            return Ok(());
        }
        {
            let host = p.frames_host.as_mut_slice().map_err(|e| dev("pinned frames", e))?;
            for (i, f) in frames.iter().enumerate() {
                host[i * p.frame_bytes..(i + 1) * p.frame_bytes].copy_from_slice(f);
            }
        }
        let s = &self.stream;
        s.memcpy_htod(&p.frames_host, &mut p.frames_dev).map_err(|e| dev("copy frames", e))?;
        p.graphs[n - 1].launch().map_err(|e| dev("launch graph", e))?;
        s.memcpy_dtoh(&p.out_counts, &mut p.out_counts_host).map_err(|e| dev("copy counts", e))?;
        s.memcpy_dtoh(&p.out_records, &mut p.out_records_host).map_err(|e| dev("copy candidates", e))?;
        p.done.record(s).map_err(|e| dev("record event", e))?;
        let start = Instant::now();
        // Bounded wait: a device that does not finish within the timeout is a fault.
        loop {
            match p.done.try_is_complete() {
                Ok(true) => break,
                Ok(false) if start.elapsed() > self.timeout => {
                    return Err(BackendError::Device { backend: NAME, reason: format!("frame not done after {:?}", self.timeout) });
                }
                Ok(false) => std::thread::yield_now(),
                Err(e) => return Err(dev("frame", e)),
            }
        }
        let counts = p.out_counts_host.as_slice().map_err(|e| dev("pinned counts", e))?;
        let records = p.out_records_host.as_slice().map_err(|e| dev("pinned candidates", e))?;
        let k = p.peaks.k as usize;
        for (i, list) in out.iter_mut().enumerate().take(n) {
            list.clear();
            let count = (counts[i] as usize).min(k);
            for r in 0..count {
                let w = &records[(i * k + r) * 4..(i * k + r) * 4 + 3];
                list.push(crate::select::decode_record([w[0], w[1], w[2]], p.heat_hw.0, p.heat_hw.1));
            }
        }
        Ok(())
    }
}

impl CudaBackend {
    /// Runs one fused convolution over `n` NHWC images of `h x w` with the kernel the plan
    /// path would pick, allocating as it goes: a conformance-test hook, not for the hot path.
    pub fn conv_once(&self, op: &crate::ir::QConv, n: usize, h: usize, w: usize, input: &[i8]) -> Result<Vec<i8>, CudaError> {
        let drv = |what: &'static str| move |e: cudarc::driver::DriverError| CudaError::Driver { what: what.into(), message: format!("{e:?}") };
        let g = &op.geom;
        let (oh, ow) = g.out_hw(h, w);
        let total = n * oh * ow * g.out_c;
        let icg = g.in_c / g.groups;
        let aligned = icg.is_multiple_of(4) && g.in_c.is_multiple_of(4);
        let chan: Vec<i32> = (0..g.out_c).flat_map(|oc| [op.bias[oc], op.requant[oc].multiplier, op.requant[oc].shift, 0]).collect();
        let wsum: Vec<i32> = op.weights.chunks(icg.max(1)).map(|t| t.iter().fold(0i32, |a, &b| a.wrapping_add(i32::from(b)))).collect();
        let s = &self.stream;
        let x = s.clone_htod(input).map_err(drv("upload input"))?;
        let wts = s.clone_htod(&op.weights).map_err(drv("upload weights"))?;
        let ch = s.clone_htod(&chan).map_err(drv("upload requant"))?;
        let ws = s.clone_htod(&wsum).map_err(drv("upload sums"))?;
        let mut y = s.alloc_zeros::<i8>(total.max(1)).map_err(drv("allocate output"))?;
        let a = ConvArgs {
            n: n as i32,
            h: h as i32,
            w: w as i32,
            in_c: g.in_c as i32,
            oh: oh as i32,
            ow: ow as i32,
            out_c: g.out_c as i32,
            kh: g.kh as i32,
            kw: g.kw as i32,
            stride_h: g.stride_h as i32,
            stride_w: g.stride_w as i32,
            pad_t: g.pad[0] as i32,
            pad_l: g.pad[1] as i32,
            groups: g.groups as i32,
            input_zp: op.input_zp,
            output_zp: op.output_zp,
            act_min: i32::from(op.act_min),
            act_max: i32::from(op.act_max),
            total: total as i32,
            _pad: 0,
        };
        let (f, cfg) = match (&self.kernels.conv_mma, aligned) {
            (Some(f), true) if icg >= 16 => {
                let m = (n * oh * ow) as u32;
                let ocg = (g.out_c / g.groups) as u32;
                (f, LaunchConfig { grid_dim: (m.div_ceil(64), ocg.div_ceil(32), g.groups as u32), block_dim: (128, 1, 1), shared_mem_bytes: 0 })
            }
            (_, true) => (&self.kernels.conv_dp4a, grid(total, 128)),
            _ => (&self.kernels.conv_generic, grid(total, 128)),
        };
        let mut lb = s.launch_builder(f);
        lb.arg(&a).arg(&x).arg(&wts).arg(&ch).arg(&ws).arg(&mut y);
        // SAFETY: argument types and order match the conv kernels; every buffer has the size the
        // geometry implies (the caller's tensors are checked by the conformance harness).
        unsafe { lb.launch(cfg) }.map_err(drv("launch conv"))?;
        let mut out = s.clone_dtoh(&y).map_err(drv("download output"))?;
        out.truncate(total);
        Ok(out)
    }
}
