//! `cpu-ref`: the scalar specification of every op. Clarity over speed; never optimise here.
//!
//! Each function below is the definition of its op; the fast CPU, CUDA and WGSL backends
//! must reproduce its bytes exactly. [`CpuRef`] runs whole plans with these functions.

use crate::backend::{Backend, BackendError, check_run_args};
use crate::ir::QConv;
use crate::plan::{AddParams, Candidate, Candidates, ConvView, HeadSpec, Op, Plan, Preprocess, Rescale, TensorDesc};

/// Runs a fused quantised convolution on one NHWC image of `h x w x in_c`, writing
/// `oh x ow x out_c` into `out`.
pub fn conv(op: &QConv, input: &[i8], h: usize, w: usize, out: &mut [i8]) {
    conv_view(&ConvView::of(op), input, h, w, out);
}

/// [`conv`] on a borrowed view (constants in a plan's blob).
pub fn conv_view(op: &ConvView<'_>, input: &[i8], h: usize, w: usize, out: &mut [i8]) {
    let g = op.geom;
    assert_eq!(input.len(), h * w * g.in_c, "conv input is not h*w*in_c");
    let (oh, ow) = g.out_hw(h, w);
    assert_eq!(out.len(), oh * ow * g.out_c, "conv output is not oh*ow*out_c");
    let icg = g.in_c / g.groups;
    let ocg = g.out_c / g.groups;
    for oy in 0..oh {
        for ox in 0..ow {
            for oc in 0..g.out_c {
                let group = oc / ocg;
                let mut acc: i32 = op.bias[oc];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let iy = (oy * g.stride_h + ky) as isize - g.pad[0] as isize;
                        let ix = (ox * g.stride_w + kx) as isize - g.pad[1] as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue; // padding holds the zero point: (zp - zp) * w == 0
                        }
                        let base = (iy as usize * w + ix as usize) * g.in_c + group * icg;
                        let wbase = ((oc * g.kh + ky) * g.kw + kx) * icg;
                        for ic in 0..icg {
                            let x = i32::from(input[base + ic]) - op.input_zp;
                            acc = acc.wrapping_add(x * i32::from(op.weights[wbase + ic]));
                        }
                    }
                }
                let v = op.requant[oc].apply(acc).saturating_add(op.output_zp);
                out[(oy * ow + ox) * g.out_c + oc] = v.clamp(i32::from(op.act_min), i32::from(op.act_max)) as i8;
            }
        }
    }
}

/// Max pooling (padding ignored). `input` is `h x w x c`; `out` is `oh x ow x c`.
pub fn maxpool(input: &[i8], h: usize, w: usize, c: usize, k: [usize; 2], stride: [usize; 2], pad: [usize; 4], out: &mut [i8]) {
    let oh = (h + pad[0] + pad[2] - k[0]) / stride[0] + 1;
    let ow = (w + pad[1] + pad[3] - k[1]) / stride[1] + 1;
    assert_eq!(out.len(), oh * ow * c, "maxpool output is not oh*ow*c");
    for oy in 0..oh {
        for ox in 0..ow {
            for ch in 0..c {
                let mut m = i8::MIN;
                for ky in 0..k[0] {
                    for kx in 0..k[1] {
                        let iy = (oy * stride[0] + ky) as isize - pad[0] as isize;
                        let ix = (ox * stride[1] + kx) as isize - pad[1] as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        m = m.max(input[(iy as usize * w + ix as usize) * c + ch]);
                    }
                }
                out[(oy * ow + ox) * c + ch] = m;
            }
        }
    }
}

/// One element of the requantised add (see [`AddParams`]).
pub fn add_one(p: &AddParams, a: i8, a_zp: i32, b: i8, b_zp: i32, out_zp: i32) -> i8 {
    let a = p.a_mult.apply((i32::from(a) - a_zp) << p.left_shift);
    let b = p.b_mult.apply((i32::from(b) - b_zp) << p.left_shift);
    let v = p.out_mult.apply(a.saturating_add(b)).saturating_add(out_zp);
    v.clamp(i32::from(p.act_min), i32::from(p.act_max)) as i8
}

/// One element of a [`Rescale`] into an output with zero point `out_zp`.
pub fn rescale_one(r: &Rescale, x: i8, out_zp: i32) -> i8 {
    r.requant.apply(i32::from(x) - r.input_zp).saturating_add(out_zp).clamp(-128, 127) as i8
}

/// Nearest resize of an `h x w x c` image to `oh x ow x c` (`iy = oy * h / oh`).
pub fn resize_nearest(input: &[i8], h: usize, w: usize, c: usize, oh: usize, ow: usize, out: &mut [i8]) {
    for oy in 0..oh {
        for ox in 0..ow {
            let (iy, ix) = (oy * h / oh, ox * w / ow);
            for ch in 0..c {
                out[(oy * ow + ox) * c + ch] = input[(iy * w + ix) * c + ch];
            }
        }
    }
}

/// The source coordinate of output index `i` in 1/256 pixel (see [`Preprocess`]), as
/// `(i0, i1, frac)`.
pub fn bilinear_coord(i: usize, src: usize, dst: usize) -> (usize, usize, u32) {
    let s = (((2 * i + 1) * src * 128 + dst / 2) / dst) as i64 - 128;
    let s = s.clamp(0, (src as i64 - 1) * 256) as usize;
    let i0 = s >> 8;
    (i0, (i0 + 1).min(src - 1), (s & 255) as u32)
}

/// The resized `u8` value of output pixel `(y, x)`, channel `c` (steps 1-3 of [`Preprocess`]).
pub fn resize_pixel(frame: &[u8], src_w: usize, src_h: usize, dst_h: usize, dst_w: usize, y: usize, x: usize, c: usize) -> u8 {
    let (y0, y1, fy) = bilinear_coord(y, src_h, dst_h);
    let (x0, x1, fx) = bilinear_coord(x, src_w, dst_w);
    let px = |yy: usize, xx: usize| u32::from(frame[(yy * src_w + xx) * 3 + c]);
    let top = px(y0, x0) * (256 - fx) + px(y0, x1) * fx;
    let bot = px(y1, x0) * (256 - fx) + px(y1, x1) * fx;
    ((top * (256 - fy) + bot * fy + 32768) >> 16) as u8
}

/// Preprocessing: packed RGB8 `src_w x src_h` frame -> `dst_h x dst_w x 3` int8 input.
pub fn preprocess(p: &Preprocess, frame: &[u8], dst_h: usize, dst_w: usize, out: &mut [i8]) {
    let (sw, sh) = (p.src_w as usize, p.src_h as usize);
    assert_eq!(frame.len(), sw * sh * 3, "frame is not src_w*src_h*3");
    assert_eq!(out.len(), dst_h * dst_w * 3, "preprocess output is not dst_h*dst_w*3");
    for y in 0..dst_h {
        for x in 0..dst_w {
            for c in 0..3 {
                let v = resize_pixel(frame, sw, sh, dst_h, dst_w, y, x, c);
                out[(y * dst_w + x) * 3 + c] = p.lut[c][usize::from(v)];
            }
        }
    }
}

/// Whether heatmap cell `(y, x)` of channel `ch` is a peak (see [`HeadSpec`]).
pub fn is_peak(hm: &[i8], h: usize, w: usize, c: usize, ch: usize, y: usize, x: usize, threshold: i8) -> bool {
    let q = hm[(y * w + x) * c + ch];
    if q < threshold {
        return false;
    }
    for dy in -1isize..=1 {
        for dx in -1isize..=1 {
            let (ny, nx) = (y as isize + dy, x as isize + dx);
            if (dy, dx) == (0, 0) || ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                continue;
            }
            let n = hm[(ny as usize * w + nx as usize) * c + ch];
            let before = dy < 0 || (dy == 0 && dx < 0);
            if (before && n >= q) || (!before && n > q) {
                return false;
            }
        }
    }
    true
}

/// Reads the head channels at a cell into a candidate.
pub fn candidate_at(plan: &Plan, arena: &[i8], class: usize, y: usize, x: usize) -> Candidate {
    let heads = &plan.heads;
    let at = |t: &TensorDesc, ch: u32| arena[t.offset as usize + (y * t.w as usize + x) * t.c as usize + ch as usize];
    let hm = plan.tensor(heads.heatmap);
    let cr = |r: crate::plan::ChannelRef| at(plan.tensor(r.tensor), r.channel);
    Candidate {
        class: class as u16,
        y: y as u16,
        x: x as u16,
        score: at(hm, heads.heatmap_channel + class as u32),
        offset: [cr(heads.offset[0]), cr(heads.offset[1])],
        size: [cr(heads.size[0]), cr(heads.size[1])],
        depth: cr(heads.depth),
    }
}

/// The total order of candidates: score descending, then class, `y`, `x` ascending.
pub fn candidate_order(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.score.cmp(&a.score).then(a.class.cmp(&b.class)).then(a.y.cmp(&b.y)).then(a.x.cmp(&b.x))
}

/// Peak extraction and top-K over a frame's arena, using `scratch` for all peaks
/// (capacity: classes x cells).
pub fn decode_peaks(plan: &Plan, arena: &[i8], scratch: &mut Vec<Candidate>, out: &mut Candidates) {
    let heads: &HeadSpec = &plan.heads;
    let hm = plan.tensor(heads.heatmap);
    let (h, w, c) = (hm.h as usize, hm.w as usize, hm.c as usize);
    let map = &arena[hm.range()];
    scratch.clear();
    for class in 0..heads.num_classes as usize {
        let ch = heads.heatmap_channel as usize + class;
        for y in 0..h {
            for x in 0..w {
                if is_peak(map, h, w, c, ch, y, x, heads.threshold) {
                    scratch.push(candidate_at(plan, arena, class, y, x));
                }
            }
        }
    }
    scratch.sort_unstable_by(candidate_order);
    out.clear();
    for cand in scratch.iter().take(heads.max_candidates as usize) {
        out.push(*cand);
    }
}

/// Runs one op of `plan` on a frame's arena (`arena_bytes` long).
pub fn run_op(plan: &Plan, op: &Op, arena: &mut [i8], scratch: &mut [i8]) {
    let out_desc = plan.tensor(op.output());
    let out = &mut scratch[..out_desc.len()];
    let slice = |t: &TensorDesc| &arena[t.range()];
    match op {
        Op::Conv(c) => {
            let view = plan.conv_view(c).expect("validated plan");
            let x = plan.tensor(c.input);
            conv_view(&view, slice(x), x.h as usize, x.w as usize, out);
        }
        Op::MaxPool { input, kh, kw, stride_h, stride_w, pad, .. } => {
            let x = plan.tensor(*input);
            let pad = pad.map(|p| p as usize);
            maxpool(slice(x), x.h as usize, x.w as usize, x.c as usize, [*kh as usize, *kw as usize], [*stride_h as usize, *stride_w as usize], pad, out);
        }
        Op::Add { a, b, params, .. } => {
            let (ta, tb) = (plan.tensor(*a), plan.tensor(*b));
            let (xa, xb) = (slice(ta), slice(tb));
            for i in 0..out.len() {
                out[i] = add_one(params, xa[i], ta.zero_point, xb[i], tb.zero_point, out_desc.zero_point);
            }
        }
        Op::Concat { inputs, rescale, .. } => {
            let pixels = out_desc.h as usize * out_desc.w as usize;
            let oc = out_desc.c as usize;
            let mut c0 = 0;
            for (t, r) in inputs.iter().zip(rescale) {
                let td = plan.tensor(*t);
                let (x, ic) = (slice(td), td.c as usize);
                for p in 0..pixels {
                    for ch in 0..ic {
                        out[p * oc + c0 + ch] = rescale_one(r, x[p * ic + ch], out_desc.zero_point);
                    }
                }
                c0 += ic;
            }
        }
        Op::ResizeNearest { input, .. } => {
            let x = plan.tensor(*input);
            resize_nearest(slice(x), x.h as usize, x.w as usize, x.c as usize, out_desc.h as usize, out_desc.w as usize, out);
        }
        Op::Lut { input, table, .. } => {
            let table = plan.blob.table(*table).expect("validated plan");
            for (o, &x) in out.iter_mut().zip(slice(plan.tensor(*input))) {
                *o = table[(i32::from(x) + 128) as usize];
            }
        }
    }
    arena[out_desc.range()].copy_from_slice(out);
}

/// Runs preprocessing and every op of a validated `plan` on one frame, leaving every tensor in
/// `arena` (`plan.arena_bytes` long; `scratch` at least as long as the largest tensor).
pub fn run_network(plan: &Plan, frame: &[u8], arena: &mut [i8], scratch: &mut [i8]) {
    let input = plan.tensor(plan.input);
    preprocess(&plan.preprocess, frame, input.h as usize, input.w as usize, &mut arena[input.range()]);
    for op in &plan.ops {
        run_op(plan, op, arena, scratch);
    }
}

/// The `cpu-ref` backend: runs whole plans with the reference functions, one frame at a time.
#[derive(Debug, Default)]
pub struct CpuRef;

/// State of a plan prepared by [`CpuRef`].
#[derive(Debug)]
pub struct CpuRefPrepared {
    plan: Plan,
    max_batch: usize,
    arena: Vec<i8>,
    scratch: Vec<i8>,
    peaks: Vec<Candidate>,
}

impl CpuRefPrepared {
    /// The per-frame arena after the last frame run: every tensor at its offset.
    pub fn arena(&self) -> &[i8] {
        &self.arena
    }

    /// The prepared plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

impl Backend for CpuRef {
    type Prepared = CpuRefPrepared;

    fn name(&self) -> &'static str {
        "cpu-ref"
    }

    fn check(&self, plan: &Plan) -> Result<(), BackendError> {
        Ok(plan.validate()?)
    }

    fn prepare(&mut self, plan: &Plan, max_batch: usize) -> Result<CpuRefPrepared, BackendError> {
        plan.validate()?;
        let largest = plan.tensors.iter().map(TensorDesc::len).max().unwrap_or(0);
        let hm = plan.tensor(plan.heads.heatmap);
        Ok(CpuRefPrepared {
            plan: plan.clone(),
            max_batch,
            arena: vec![0; plan.arena_bytes as usize],
            scratch: vec![0; largest],
            peaks: Vec::with_capacity(plan.heads.num_classes as usize * hm.h as usize * hm.w as usize),
        })
    }

    fn run(&mut self, p: &mut CpuRefPrepared, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError> {
        check_run_args(self.name(), &p.plan, p.max_batch, frames, out)?;
        for (frame, o) in frames.iter().zip(out.iter_mut()) {
            run_network(&p.plan, frame, &mut p.arena, &mut p.scratch);
            decode_peaks(&p.plan, &p.arena, &mut p.peaks, o);
        }
        Ok(())
    }
}
