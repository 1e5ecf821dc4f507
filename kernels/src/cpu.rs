//! `cpu`: the fast CPU backend. AVX-512 VNNI or AVX2 (detected at run time) with a portable
//! fallback, multi-threaded over output rows on a fixed pool started at prepare, and
//! byte-identical to [`crate::cpu_ref`] on every op.
//!
//! * Convolutions read a padded copy of their input (made per op), so no tap needs a bounds
//!   check, and the requantisation is fused behind the accumulation.
//!   - AVX-512 (F, BW, VL, VNNI): dense and grouped convolutions run an 8-pixel x
//!     16..48-channel `vpdpbusd` tile; depthwise convolutions run per output row on
//!     `vpdpwssd`, 16 channels at a time. See [`crate::avx512`] for why both are exact.
//!   - AVX2: the padded copy holds `x - zp` as i16 and dense convolutions run a 4-pixel x
//!     16-channel `vpmaddwd` tile; depthwise rows use `vpmaddwd` on `[x, 0] x [w, 0]` pairs,
//!     8 channels at a time (module `sys`). i16 products and pair sums are exact, and i32
//!     wrapping sums are order-independent, so the result equals the reference bit for bit.
//!   - Portable: the input converted once to `x - zp` as i16, then per tile of 4 output
//!     pixels an *indirect* 4 x 16 micro-kernel (each tap of each pixel read in place, padding
//!     from a zero segment; no im2col copy), then requantisation; depthwise convolutions as
//!     channel loops.
//! * Add and Concat: the requantisation of int8 inputs has at most 256 x 256 (Add) or 256
//!   (Concat) distinct inputs, so prepare tabulates the reference function and run looks up.
//!   Add looks up with 16-lane (AVX-512) or 8-lane (AVX2) gathers.
//! * MaxPool, ResizeNearest, Lut, preprocessing: row-parallel loops compiled with AVX2.
//! * Peak decode: skips 64-byte blocks below the threshold, then selects the top K under the
//!   reference's total order (allocation-free with the prepared scratch).
//!
//! `run` does not allocate: every buffer is sized at prepare (a counting-allocator test checks).

use std::ops::Range;

use crate::avx512::{self, Clamp, DenseGeom, DwGeom, Rq16};
use crate::backend::{Backend, BackendError, check_run_args};
use crate::cpu_ref;
use crate::plan::{Candidate, Candidates, Op, Plan, TensorDesc};
use crate::sys::{self, Dense8Geom, Pool, RequantVec};

/// Instruction-set level of the fast CPU backend's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, no SIMD intrinsics.
    Portable,
    /// AVX2: `vpmaddwd` convolutions with fused requantisation, gathered Add lookups.
    Avx2,
    /// AVX-512 F/BW/VL/VNNI: `vpdpbusd` / `vpdpwssd` convolutions with fused requantisation,
    /// 16-lane gathered Add lookups (other element-wise ops keep their AVX2 code).
    Avx512,
}

impl Isa {
    /// The best level this CPU runs.
    pub fn detect() -> Isa {
        if avx512::available() && sys::has_avx2() {
            Isa::Avx512
        } else if sys::has_avx2() {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }
}

/// The fast CPU backend.
#[derive(Clone, Debug)]
pub struct Cpu {
    threads: usize,
    isa: Isa,
}

impl Cpu {
    /// A backend using `threads` threads (at least 1) and the best instruction set the CPU has.
    pub fn new(threads: usize) -> Cpu {
        Cpu { threads: threads.max(1), isa: Isa::detect() }
    }

    /// The same with SIMD disabled: the portable path (for tests and comparison).
    pub fn portable(threads: usize) -> Cpu {
        Cpu { threads: threads.max(1), isa: Isa::Portable }
    }

    /// A backend limited to `isa` (or the best this CPU has, when that is lower).
    pub fn with_isa(threads: usize, isa: Isa) -> Cpu {
        Cpu { threads: threads.max(1), isa: isa.min(Isa::detect()) }
    }

    /// The instruction-set level in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Whether AVX2 (or better) is in use.
    pub fn uses_avx2(&self) -> bool {
        self.isa >= Isa::Avx2
    }
}

impl Default for Cpu {
    fn default() -> Cpu {
        Cpu::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Per-thread scratch.
#[derive(Debug)]
struct Scratch {
    offs: Vec<usize>,
    acc: Vec<i32>,
}

#[derive(Debug)]
enum Prep {
    Gemm { taps: usize, seg2: usize, blocks: usize, packed: Vec<Vec<i16>>, rq: Vec<RequantVec> },
    Depthwise { taps: Vec<i32>, rq: RequantVec },
    Dense512 { pad: PadGeom, g: DenseGeom, packed: Vec<Vec<i8>>, rq: Vec<Rq16> },
    DwPadded { pad: PadGeom, g: DwGeom, rq: Rq16 },
    Dense2 { pad: PadGeom, g: Dense8Geom, packed: Vec<Vec<i16>>, rq: Vec<Rq16> },
    AddTable(Vec<i8>),
    ConcatTables(Vec<[i8; 256]>),
    Plain,
}

/// A plan prepared by [`Cpu`].
#[derive(Debug)]
pub struct CpuPrepared {
    plan: Plan,
    max_batch: usize,
    ops: Vec<Prep>,
    arena: Vec<i8>,
    xbuf: Vec<i16>,
    pbuf: Vec<i8>,
    pool: Pool<Scratch>,
    peaks: Vec<Candidate>,
    xs: Vec<(usize, usize, u32)>,
    ys: Vec<(usize, usize, u32)>,
    /// The camera frame has the input size (the resize is the identity).
    identity: bool,
}

impl CpuPrepared {
    /// The arena after the last frame run: every tensor at its offset (for layer-by-layer
    /// comparison with `cpu-ref`).
    pub fn arena(&self) -> &[i8] {
        &self.arena
    }

    /// Threads in the pool (including the caller).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

fn requant_vec(bias: &[i32], rq: &[crate::quant::Requant], n: usize) -> RequantVec {
    let mut v = RequantVec { bias: vec![0; n], mult: vec![0; n], left: vec![0; n], right: vec![0; n] };
    for (j, (b, r)) in bias.iter().zip(rq).enumerate().take(n) {
        v.bias[j] = *b;
        v.mult[j] = r.multiplier;
        v.left[j] = r.shift.max(0);
        v.right[j] = (-r.shift).max(0);
    }
    v
}

/// The padded copy of a convolution's input: `hp x wp x c` with the image at `(top, left)`,
/// every other pixel `value`; bytes flipped (`x ^ 0x80`, i.e. `x + 128` as u8) when `flip`.
#[derive(Clone, Copy, Debug)]
struct PadGeom {
    h: usize,
    w: usize,
    c: usize,
    hp: usize,
    wp: usize,
    top: usize,
    left: usize,
    value: i8,
    flip: bool,
}

/// Bytes readable past a padded copy: dense tiles read up to 3 channels past a pixel's last
/// quad, depthwise rows up to 15 past the last channel block.
const PAD_SLACK: usize = 64;

impl PadGeom {
    fn new(plan: &Plan, input: &TensorDesc, g: &crate::ir::ConvGeom, zp: i32, flip: bool) -> PadGeom {
        let od_hw = g.out_hw(input.h as usize, input.w as usize);
        let _ = plan;
        let value = if flip { (zp as i8 as u8 ^ 0x80) as i8 } else { zp as i8 };
        PadGeom {
            h: input.h as usize,
            w: input.w as usize,
            c: input.c as usize,
            hp: (od_hw.0 - 1) * g.stride_h + g.kh,
            wp: (od_hw.1 - 1) * g.stride_w + g.kw,
            top: g.pad[0],
            left: g.pad[1],
            value,
            flip,
        }
    }

    fn bytes(&self) -> usize {
        self.hp * self.wp * self.c + PAD_SLACK
    }

    /// Tap offsets of a `kh x kw` kernel in the padded copy.
    fn tapoff(&self, kh: usize, kw: usize) -> Vec<usize> {
        (0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky * self.wp + kx) * self.c)).collect()
    }
}

/// Fills the padded copy of `x` (rows in parallel).
fn pad_input(avx2: bool, pg: &PadGeom, x: &[i8], buf: &mut [i8], pool: &mut Pool<Scratch>) {
    let row = pg.wp * pg.c;
    let rpt = rows_per_task(pg.hp, pool.threads());
    let (cx0, cx1) = (pg.left.min(pg.wp), (pg.left + pg.w).min(pg.wp));
    pool.run(&mut buf[..pg.hp * row], rpt * row, &|_, task, chunk| {
        sys::with_avx2(avx2, || {
            for (r, dst) in chunk.chunks_mut(row).enumerate() {
                let iy = (task * rpt + r) as isize - pg.top as isize;
                if iy < 0 || iy >= pg.h as isize || cx0 >= cx1 {
                    dst.fill(pg.value);
                    continue;
                }
                dst[..cx0 * pg.c].fill(pg.value);
                dst[cx1 * pg.c..].fill(pg.value);
                let s = (iy as usize * pg.w + (cx0 - pg.left)) * pg.c;
                let src = &x[s..s + (cx1 - cx0) * pg.c];
                let d = &mut dst[cx0 * pg.c..cx1 * pg.c];
                if pg.flip {
                    for (d, &v) in d.iter_mut().zip(src) {
                        *d = v ^ i8::MIN;
                    }
                } else {
                    d.copy_from_slice(src);
                }
            }
        })
    });
}

/// Fills the padded i16 copy of `x`: `x - zp`, padding 0 (one thread: the copy is small next
/// to the convolution it feeds).
fn pad_input16(avx2: bool, pg: &PadGeom, x: &[i8], zp: i16, buf: &mut [i16]) {
    let row = pg.wp * pg.c;
    let (cx0, cx1) = (pg.left.min(pg.wp), (pg.left + pg.w).min(pg.wp));
    sys::with_avx2(avx2, || {
        for (r, dst) in buf[..pg.hp * row].chunks_mut(row).enumerate() {
            let iy = r as isize - pg.top as isize;
            if iy < 0 || iy >= pg.h as isize || cx0 >= cx1 {
                dst.fill(0);
                continue;
            }
            dst[..cx0 * pg.c].fill(0);
            dst[cx1 * pg.c..].fill(0);
            let s = (iy as usize * pg.w + (cx0 - pg.left)) * pg.c;
            for (d, &v) in dst[cx0 * pg.c..cx1 * pg.c].iter_mut().zip(&x[s..s + (cx1 - cx0) * pg.c]) {
                *d = i16::from(v) - zp;
            }
        }
    });
}

fn prepare_op(plan: &Plan, op: &Op, isa: Isa) -> Prep {
    match op {
        Op::Conv(c) => {
            let v = plan.conv_view(c).expect("validated plan");
            let g = v.geom;
            let icg = g.in_c / g.groups;
            let ocg = g.out_c / g.groups;
            let xd = plan.tensor(c.input);
            let taps = g.kh * g.kw;
            if isa >= Isa::Avx2 && icg == 1 && ocg == 1 {
                // Depthwise: the padded row kernels of `avx512` (AVX-512) or `sys` (AVX2).
                let pad = PadGeom::new(plan, xd, g, v.input_zp, false);
                let tapoff = pad.tapoff(g.kh, g.kw);
                let bias: Vec<i32> = (0..g.out_c)
                    .map(|o| {
                        let s: i32 = v.weights[o * taps..(o + 1) * taps].iter().map(|&w| i32::from(w)).sum();
                        v.bias[o].wrapping_sub(v.input_zp.wrapping_mul(s))
                    })
                    .collect();
                let dg = DwGeom { max_tapoff: *tapoff.iter().max().unwrap_or(&0), tapoff, c: g.out_c, cpad: g.out_c.next_multiple_of(16), w: avx512::pack_depthwise(v.weights, g.out_c, taps), s1k3: g.kh == 3 && g.kw == 3 && g.stride_w == 1 };
                return Prep::DwPadded { pad, g: dg, rq: Rq16::new(&bias, v.requant) };
            }
            if isa == Isa::Avx512 {
                let pad = PadGeom::new(plan, xd, g, v.input_zp, true);
                let tapoff = pad.tapoff(g.kh, g.kw);
                let k = taps * icg;
                let mut packed = Vec::with_capacity(g.groups);
                let mut rq = Vec::with_capacity(g.groups);
                for grp in 0..g.groups {
                    let w = &v.weights[grp * ocg * k..(grp + 1) * ocg * k];
                    packed.push(avx512::pack_dense(w, ocg, taps, icg));
                    let bias: Vec<i32> = (0..ocg)
                        .map(|o| {
                            let s: i32 = w[o * k..(o + 1) * k].iter().map(|&x| i32::from(x)).sum();
                            v.bias[grp * ocg + o].wrapping_sub((v.input_zp + 128).wrapping_mul(s))
                        })
                        .collect();
                    rq.push(Rq16::new(&bias, &v.requant[grp * ocg..(grp + 1) * ocg]));
                }
                let dg = DenseGeom { max_tapoff: *tapoff.iter().max().unwrap_or(&0), tapoff, q4: icg.div_ceil(4), blocks: ocg.div_ceil(16), ocg };
                return Prep::Dense512 { pad, g: dg, packed, rq };
            }
            if isa == Isa::Avx2 {
                // The padded copy holds `x - zp` as i16 (padding 0), so the bias needs no
                // zero-point term.
                let pad = PadGeom::new(plan, xd, g, v.input_zp, false);
                let tapoff = pad.tapoff(g.kh, g.kw);
                let k = taps * icg;
                let packed = (0..g.groups).map(|grp| sys::pack_dense8(&v.weights[grp * ocg * k..(grp + 1) * ocg * k], ocg, taps, icg)).collect();
                let rq = (0..g.groups).map(|grp| Rq16::new(&v.bias[grp * ocg..(grp + 1) * ocg], &v.requant[grp * ocg..(grp + 1) * ocg])).collect();
                let dg = Dense8Geom { max_tapoff: *tapoff.iter().max().unwrap_or(&0), tapoff, q2: icg.div_ceil(2), blocks: ocg.div_ceil(8), ocg };
                return Prep::Dense2 { pad, g: dg, packed, rq };
            }
            if icg == 1 && ocg == 1 {
                let taps_n = g.kh * g.kw;
                let mut taps = vec![0i32; taps_n * g.out_c];
                for oc in 0..g.out_c {
                    for t in 0..taps_n {
                        taps[t * g.out_c + oc] = i32::from(v.weights[oc * taps_n + t]);
                    }
                }
                return Prep::Depthwise { taps, rq: requant_vec(v.bias, v.requant, g.out_c) };
            }
            let taps = g.kh * g.kw;
            let seg2 = icg.next_multiple_of(2);
            let k = taps * icg;
            let k2 = taps * seg2;
            let blocks = ocg.div_ceil(8);
            let mut packed = Vec::with_capacity(g.groups);
            let mut rq = Vec::with_capacity(g.groups);
            for grp in 0..g.groups {
                let mut w = vec![0i16; blocks * k2 * 8];
                for b in 0..blocks {
                    for kp in 0..k2 / 2 {
                        for ch in 0..8 {
                            for e in 0..2 {
                                let (ol, kk) = (8 * b + ch, 2 * kp + e);
                                let (t, ic) = (kk / seg2, kk % seg2);
                                if ol < ocg && ic < icg {
                                    w[(b * k2 / 2 + kp) * 16 + 2 * ch + e] = i16::from(v.weights[(grp * ocg + ol) * k + t * icg + ic]);
                                }
                            }
                        }
                    }
                }
                packed.push(w);
                // Channel constants tiled 4 times: one requant call covers a whole 4-pixel tile
                // when the tile's outputs are contiguous (one group, channels a multiple of 8).
                let r = grp * ocg..(grp + 1) * ocg;
                let one = requant_vec(&v.bias[r.clone()], &v.requant[r], blocks * 8);
                let tile = |v: &Vec<i32>| v.repeat(4);
                rq.push(RequantVec { bias: tile(&one.bias), mult: tile(&one.mult), left: tile(&one.left), right: tile(&one.right) });
            }
            Prep::Gemm { taps, seg2, blocks, packed, rq }
        }
        Op::Add { a, b, params, output } => {
            let (za, zb, zo) = (plan.tensor(*a).zero_point, plan.tensor(*b).zero_point, plan.tensor(*output).zero_point);
            let mut t = vec![0i8; 65536 + 3];
            for x in 0..256usize {
                for y in 0..256usize {
                    t[x * 256 + y] = cpu_ref::add_one(params, (x as i32 - 128) as i8, za, (y as i32 - 128) as i8, zb, zo);
                }
            }
            Prep::AddTable(t)
        }
        Op::Concat { rescale, output, .. } => {
            let zo = plan.tensor(*output).zero_point;
            Prep::ConcatTables(
                rescale
                    .iter()
                    .map(|r| {
                        let mut t = [0i8; 256];
                        for (x, e) in t.iter_mut().enumerate() {
                            *e = cpu_ref::rescale_one(r, (x as i32 - 128) as i8, zo);
                        }
                        t
                    })
                    .collect(),
            )
        }
        _ => Prep::Plain,
    }
}

/// Read access to the arena outside the output range of the op being run.
struct Reader<'a> {
    before: &'a [i8],
    after: &'a [i8],
    out: Range<usize>,
}

impl Reader<'_> {
    fn get(&self, t: &TensorDesc) -> &[i8] {
        let r = t.range();
        if r.end <= self.out.start { &self.before[r] } else { &self.after[r.start - self.out.end..r.end - self.out.end] }
    }
}

fn split_out(arena: &mut [i8], out: Range<usize>) -> (Reader<'_>, &mut [i8]) {
    let (before, rest) = arena.split_at_mut(out.start);
    let (o, after) = rest.split_at_mut(out.end - out.start);
    (Reader { before, after, out }, o)
}

fn rows_per_task(rows: usize, threads: usize) -> usize {
    if threads <= 1 { rows.max(1) } else { rows.div_ceil(4 * threads).max(1) }
}

/// How a dense convolution's output pixels map to tiles of its padded input.
struct TileWalk {
    /// 1x1, stride 1, no padding: the padded copy is the image and pixels run on across rows,
    /// so tiles span rows.
    flat: bool,
    cin: usize,
    sh: usize,
    sw: usize,
    wp: usize,
    ow: usize,
    oc: usize,
    groups: usize,
    icg: usize,
    ocg: usize,
}

impl TileWalk {
    fn new(pad: &PadGeom, g: &crate::ir::ConvGeom, ow: usize, oc: usize) -> TileWalk {
        let flat = g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && pad.wp == ow && pad.top == 0 && pad.left == 0;
        TileWalk { flat, cin: pad.c, sh: g.stride_h, sw: g.stride_w, wp: pad.wp, ow, oc, groups: g.groups, icg: g.in_c / g.groups, ocg: g.out_c / g.groups }
    }
}

/// Runs `tile(bases, n, group, outs, chunk)` over every tile of `T` output pixels and every
/// group, rows split across the pool: `bases[p]` is pixel `p`'s offset in the padded input
/// (plus the group's first channel), `outs[p]` its output offset in `chunk`; pixels past `n`
/// repeat the last one.
type TileFn<'a, const T: usize> = dyn Fn(&[usize; T], usize, usize, &[usize; T], &mut [i8]) + Sync + 'a;

fn dense_tiles<const T: usize>(pool: &mut Pool<Scratch>, out: &mut [i8], rpt: usize, row: usize, w: &TileWalk, tile: &TileFn<'_, T>) {
    pool.run(out, rpt * row, &|_, task, chunk| {
        let rows = chunk.len() / row;
        let (lines, len) = if w.flat { (1, rows * w.ow) } else { (rows, w.ow) };
        for r in 0..lines {
            let oy = task * rpt + r;
            for x0 in (0..len).step_by(T) {
                let n = T.min(len - x0);
                let src = |p: usize| if w.flat { (task * rpt * w.ow + x0 + p) * w.cin } else { (oy * w.sh * w.wp + (x0 + p) * w.sw) * w.cin };
                for grp in 0..w.groups {
                    let bases: [usize; T] = std::array::from_fn(|p| src(p.min(n - 1)) + grp * w.icg);
                    let outs: [usize; T] = std::array::from_fn(|p| (r * len + x0 + p.min(n - 1)) * w.oc + grp * w.ocg);
                    tile(&bases, n, grp, &outs, chunk);
                }
            }
        }
    });
}

#[allow(clippy::too_many_arguments)] // reason: the op, its preparation and every buffer it may use.
fn run_op(isa: Isa, plan: &Plan, op: &Op, prep: &Prep, arena: &mut [i8], xbuf: &mut [i16], pbuf: &mut [i8], pool: &mut Pool<Scratch>) {
    let avx2 = isa >= Isa::Avx2;
    // The add's table lookups become 16-lane gathers with AVX-512.
    let gather = isa == Isa::Avx512;
    let od = plan.tensor(op.output());
    let threads = pool.threads();
    let (rd, out) = split_out(arena, od.range());
    let (oh, ow, oc) = (od.h as usize, od.w as usize, od.c as usize);
    let row = ow * oc;
    let rpt = rows_per_task(oh, threads);
    match (op, prep) {
        (Op::Conv(c), Prep::Dense512 { pad, g: dg, packed, rq }) => {
            let v = plan.conv_view(c).expect("validated plan");
            let x = rd.get(plan.tensor(c.input));
            pad_input(avx2, pad, x, pbuf, pool);
            let xb: &[i8] = pbuf;
            let g = v.geom;
            let clamp = Clamp { zp: v.output_zp, lo: i32::from(v.act_min), hi: i32::from(v.act_max) };
            let walk = TileWalk::new(pad, g, ow, oc);
            dense_tiles::<{ avx512::TILE }>(pool, out, rpt, row, &walk, &|bases, n, grp, outs, chunk| avx512::dense_tile(xb, bases, n, dg, &packed[grp], &rq[grp], clamp, chunk, outs));
        }
        (Op::Conv(c), Prep::Dense2 { pad, g: dg, packed, rq }) => {
            let v = plan.conv_view(c).expect("validated plan");
            let x = rd.get(plan.tensor(c.input));
            pad_input16(avx2, pad, x, v.input_zp as i16, xbuf);
            let xb: &[i16] = xbuf;
            let g = v.geom;
            let clamp = Clamp { zp: v.output_zp, lo: i32::from(v.act_min), hi: i32::from(v.act_max) };
            let walk = TileWalk::new(pad, g, ow, oc);
            dense_tiles::<{ sys::TILE2 }>(pool, out, rpt, row, &walk, &|bases, n, grp, outs, chunk| sys::dense_tile_avx2(xb, bases, n, dg, &packed[grp], &rq[grp], clamp, chunk, outs));
        }
        (Op::Conv(c), Prep::DwPadded { pad, g: dg, rq }) => {
            let v = plan.conv_view(c).expect("validated plan");
            let x = rd.get(plan.tensor(c.input));
            pad_input(avx2, pad, x, pbuf, pool);
            let xb: &[i8] = pbuf;
            let g = v.geom;
            let clamp = Clamp { zp: v.output_zp, lo: i32::from(v.act_min), hi: i32::from(v.act_max) };
            let (cin, sh, sw, wp) = (pad.c, g.stride_h, g.stride_w, pad.wp);
            pool.run(out, rpt * row, &|_, task, chunk| {
                for (r, o) in chunk.chunks_mut(row).enumerate() {
                    let oy = task * rpt + r;
                    if isa == Isa::Avx512 {
                        avx512::depthwise_row(xb, oy * sh * wp * cin, sw * cin, ow, dg, rq, clamp, o);
                    } else {
                        sys::depthwise_row_avx2(xb, oy * sh * wp * cin, sw * cin, ow, dg, rq, clamp, o);
                    }
                }
            });
        }
        (Op::Conv(c), Prep::Gemm { taps, seg2, blocks, packed, rq }) => {
            let v = plan.conv_view(c).expect("validated plan");
            let xd = plan.tensor(c.input);
            let x = rd.get(xd);
            let g = v.geom;
            let (h, w) = (xd.h as usize, xd.w as usize);
            let (icg, ocg) = (g.in_c / g.groups, g.out_c / g.groups);
            let (taps, seg2, blocks) = (*taps, *seg2, *blocks);
            // `x - zp` as i16 once, then a zero segment for padded taps (and for the one
            // value past the end that an odd channel count reads against a zero weight).
            let zoff = x.len();
            let zp = v.input_zp as i16;
            sys::with_avx2(avx2, || {
                for (d, &s) in xbuf.iter_mut().zip(x) {
                    *d = i16::from(s) - zp;
                }
            });
            xbuf[zoff..zoff + seg2 + 2].fill(0);
            let xb: &[i16] = xbuf;
            let (lo, hi) = (i32::from(v.act_min), i32::from(v.act_max));
            pool.run(out, rpt * row, &|s: &mut Scratch, task, chunk| {
                let Scratch { offs, acc } = s;
                let rows = chunk.len() / row;
                for r in 0..rows {
                    let oy = task * rpt + r;
                    for ox0 in (0..ow).step_by(4) {
                        for grp in 0..g.groups {
                            for ky in 0..g.kh {
                                let iy = (oy * g.stride_h + ky) as isize - g.pad[0] as isize;
                                for kx in 0..g.kw {
                                    let t = ky * g.kw + kx;
                                    for p in 0..4 {
                                        let ox = ox0 + p;
                                        let ix = (ox * g.stride_w + kx) as isize - g.pad[1] as isize;
                                        offs[4 * t + p] = if ox >= ow || iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                            zoff
                                        } else {
                                            (iy as usize * w + ix as usize) * g.in_c + grp * icg
                                        };
                                    }
                                }
                            }
                            sys::gemm_indirect(xb, &offs[..4 * taps], taps, seg2, &packed[grp], blocks, acc);
                            let n = blocks * 8;
                            if g.groups == 1 && ocg == n && ox0 + 4 <= ow {
                                let o = r * row + ox0 * oc;
                                sys::requant(avx2, &acc[..4 * n], &rq[0], v.output_zp, lo, hi, &mut chunk[o..o + 4 * n]);
                                continue;
                            }
                            for p in 0..4.min(ow - ox0) {
                                let o = r * row + (ox0 + p) * oc + grp * ocg;
                                sys::requant(avx2, &acc[p * n..p * n + ocg], &rq[grp], v.output_zp, lo, hi, &mut chunk[o..o + ocg]);
                            }
                        }
                    }
                }
            });
        }
        (Op::Conv(c), Prep::Depthwise { taps, rq }) => {
            let v = plan.conv_view(c).expect("validated plan");
            let xd = plan.tensor(c.input);
            let x = rd.get(xd);
            let g = v.geom;
            let (h, w, ch) = (xd.h as usize, xd.w as usize, g.in_c);
            let zp = v.input_zp;
            let (lo, hi) = (i32::from(v.act_min), i32::from(v.act_max));
            pool.run(out, rpt * row, &|s: &mut Scratch, task, chunk| {
                sys::with_avx2(avx2, || {
                    let acc = &mut s.acc[..ch];
                    for r in 0..chunk.len() / row {
                        let oy = task * rpt + r;
                        for ox in 0..ow {
                            acc.fill(0);
                            for ky in 0..g.kh {
                                let iy = (oy * g.stride_h + ky) as isize - g.pad[0] as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                for kx in 0..g.kw {
                                    let ix = (ox * g.stride_w + kx) as isize - g.pad[1] as isize;
                                    if ix < 0 || ix >= w as isize {
                                        continue;
                                    }
                                    let base = (iy as usize * w + ix as usize) * ch;
                                    let t = &taps[(ky * g.kw + kx) * ch..(ky * g.kw + kx + 1) * ch];
                                    for ((a, &xv), &wv) in acc.iter_mut().zip(&x[base..base + ch]).zip(t) {
                                        *a = a.wrapping_add((i32::from(xv) - zp) * wv);
                                    }
                                }
                            }
                            let o = r * row + ox * oc;
                            sys::requant(avx2, acc, rq, v.output_zp, lo, hi, &mut chunk[o..o + oc]);
                        }
                    }
                })
            });
        }
        (Op::MaxPool { input, kh, kw, stride_h, stride_w, pad, .. }, _) => {
            let xd = plan.tensor(*input);
            let x = rd.get(xd);
            let (h, w) = (xd.h as usize, xd.w as usize);
            let (kh, kw, sh, sw) = (*kh as usize, *kw as usize, *stride_h as usize, *stride_w as usize);
            let pad = pad.map(|p| p as usize);
            pool.run(out, rpt * row, &|_, task, chunk| {
                sys::with_avx2(avx2, || {
                    for r in 0..chunk.len() / row {
                        let oy = task * rpt + r;
                        for ox in 0..ow {
                            let dst = &mut chunk[r * row + ox * oc..r * row + (ox + 1) * oc];
                            dst.fill(i8::MIN);
                            for ky in 0..kh {
                                let iy = (oy * sh + ky) as isize - pad[0] as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                for kx in 0..kw {
                                    let ix = (ox * sw + kx) as isize - pad[1] as isize;
                                    if ix < 0 || ix >= w as isize {
                                        continue;
                                    }
                                    let base = (iy as usize * w + ix as usize) * oc;
                                    for (d, &v) in dst.iter_mut().zip(&x[base..base + oc]) {
                                        *d = (*d).max(v);
                                    }
                                }
                            }
                        }
                    }
                })
            });
        }
        (Op::Add { a, b, .. }, Prep::AddTable(t)) if gather => {
            let (xa, xb) = (rd.get(plan.tensor(*a)), rd.get(plan.tensor(*b)));
            pool.run(out, rpt * row, &|_, task, chunk| {
                let base = task * rpt * row;
                avx512::lookup2(&xa[base..], &xb[base..], t, chunk);
            });
        }
        (Op::Add { a, b, .. }, Prep::AddTable(t)) => {
            let (xa, xb) = (rd.get(plan.tensor(*a)), rd.get(plan.tensor(*b)));
            pool.run(out, rpt * row, &|_, task, chunk| {
                let base = task * rpt * row;
                if avx2 {
                    sys::lookup2_avx2(&xa[base..], &xb[base..], t, chunk);
                    return;
                }
                for (j, o) in chunk.iter_mut().enumerate() {
                    let (va, vb) = (xa[base + j], xb[base + j]);
                    *o = t[((i32::from(va) + 128) as usize) << 8 | (i32::from(vb) + 128) as usize];
                }
            });
        }
        (Op::Concat { inputs, .. }, Prep::ConcatTables(tables)) => {
            type Src<'a> = Option<(&'a [i8], usize, &'a [i8; 256])>;
            let srcs: [Src<'_>; 8] = std::array::from_fn(|i| {
                let d = plan.tensor(*inputs.get(i)?);
                Some((rd.get(d), d.c as usize, &tables[i]))
            });
            if inputs.len() <= 8 {
                pool.run(out, rpt * row, &|_, task, chunk| {
                    for r in 0..chunk.len() / row {
                        let y = task * rpt + r;
                        for xpix in 0..ow {
                            let p = y * ow + xpix;
                            let mut c0 = 0;
                            for (x, ic, t) in srcs.iter().flatten() {
                                let dst = &mut chunk[r * row + xpix * oc + c0..r * row + xpix * oc + c0 + ic];
                                for (d, &v) in dst.iter_mut().zip(&x[p * ic..(p + 1) * ic]) {
                                    *d = t[(i32::from(v) + 128) as usize];
                                }
                                c0 += ic;
                            }
                        }
                    }
                });
            } else {
                // Rare wide concat: serial, same tables.
                let pixels = oh * ow;
                let mut c0 = 0;
                for (t, table) in inputs.iter().zip(tables) {
                    let d = plan.tensor(*t);
                    let (x, ic) = (rd.get(d), d.c as usize);
                    for p in 0..pixels {
                        for c in 0..ic {
                            out[p * oc + c0 + c] = table[(i32::from(x[p * ic + c]) + 128) as usize];
                        }
                    }
                    c0 += ic;
                }
            }
        }
        (Op::ResizeNearest { input, .. }, _) => {
            let xd = plan.tensor(*input);
            let x = rd.get(xd);
            let (h, w) = (xd.h as usize, xd.w as usize);
            pool.run(out, rpt * row, &|_, task, chunk| {
                for r in 0..chunk.len() / row {
                    let iy = (task * rpt + r) * h / oh;
                    for ox in 0..ow {
                        let ix = ox * w / ow;
                        chunk[r * row + ox * oc..r * row + (ox + 1) * oc].copy_from_slice(&x[(iy * w + ix) * oc..(iy * w + ix + 1) * oc]);
                    }
                }
            });
        }
        (Op::Lut { input, table, .. }, _) => {
            let x = rd.get(plan.tensor(*input));
            let t = plan.blob.table(*table).expect("validated plan");
            pool.run(out, rpt * row, &|_, task, chunk| {
                let base = task * rpt * row;
                for (j, o) in chunk.iter_mut().enumerate() {
                    *o = t[(i32::from(x[base + j]) + 128) as usize];
                }
            });
        }
        (Op::Conv(_) | Op::Add { .. } | Op::Concat { .. }, _) => unreachable!("prepare_op matches every op kind"),
    }
}

fn preprocess(avx2: bool, p: &CpuPreparedPre<'_>, frame: &[u8], out: &mut [i8], pool: &mut Pool<Scratch>) {
    let (dw, sw) = (p.xs.len(), p.src_w);
    let row = dw * 3;
    let rpt = rows_per_task(p.ys.len(), pool.threads());
    if p.identity {
        // The camera frame already has the input size: the bilinear weights are all (1, 0),
        // so the resize is the identity and only the tables remain.
        pool.run(out, rpt * row, &|_, task, chunk| {
            let src = &frame[task * rpt * row..task * rpt * row + chunk.len()];
            for (o, px) in chunk.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                o[0] = p.lut[0][usize::from(px[0])];
                o[1] = p.lut[1][usize::from(px[1])];
                o[2] = p.lut[2][usize::from(px[2])];
            }
        });
        return;
    }
    pool.run(out, rpt * row, &|_, task, chunk| {
        sys::with_avx2(avx2, || {
            for r in 0..chunk.len() / row {
                let (y0, y1, fy) = p.ys[task * rpt + r];
                let (r0, r1) = (&frame[y0 * sw * 3..(y0 + 1) * sw * 3], &frame[y1 * sw * 3..(y1 + 1) * sw * 3]);
                for (x, &(x0, x1, fx)) in p.xs.iter().enumerate() {
                    for c in 0..3 {
                        let top = u32::from(r0[x0 * 3 + c]) * (256 - fx) + u32::from(r0[x1 * 3 + c]) * fx;
                        let bot = u32::from(r1[x0 * 3 + c]) * (256 - fx) + u32::from(r1[x1 * 3 + c]) * fx;
                        let v = (top * (256 - fy) + bot * fy + 32768) >> 16;
                        chunk[r * row + x * 3 + c] = p.lut[c][v as usize];
                    }
                }
            }
        })
    });
}

/// [`cpu_ref::decode_peaks`], faster: 64-byte blocks of the heatmap with no value at the
/// threshold are skipped in one vectorised test, and only the top `max_candidates` are sorted.
/// Candidates are ordered by a total order, so the result is the reference's.
fn decode_peaks(plan: &Plan, arena: &[i8], scratch: &mut Vec<Candidate>, out: &mut Candidates) {
    let heads = &plan.heads;
    let hm = plan.tensor(heads.heatmap);
    let (h, w, c) = (hm.h as usize, hm.w as usize, hm.c as usize);
    let (ch0, nc, thr) = (heads.heatmap_channel as usize, heads.num_classes as usize, heads.threshold);
    let map = &arena[hm.range()];
    scratch.clear();
    for (bi, blk) in map.chunks(64).enumerate() {
        if !blk.iter().fold(false, |a, &v| a | (v >= thr)) {
            continue;
        }
        for (j, &q) in blk.iter().enumerate() {
            let e = bi * 64 + j;
            let (pix, ch) = (e / c, e % c);
            if q < thr || ch < ch0 || ch >= ch0 + nc {
                continue;
            }
            let (y, x) = (pix / w, pix % w);
            if cpu_ref::is_peak(map, h, w, c, ch, y, x, thr) {
                scratch.push(cpu_ref::candidate_at(plan, arena, ch - ch0, y, x));
            }
        }
    }
    let k = heads.max_candidates as usize;
    if scratch.len() > k {
        scratch.select_nth_unstable_by(k, cpu_ref::candidate_order);
        scratch.truncate(k);
    }
    scratch.sort_unstable_by(cpu_ref::candidate_order);
    out.clear();
    for cand in scratch.iter() {
        out.push(*cand);
    }
}

struct CpuPreparedPre<'a> {
    identity: bool,
    xs: &'a [(usize, usize, u32)],
    ys: &'a [(usize, usize, u32)],
    src_w: usize,
    lut: &'a [[i8; 256]; 3],
}

impl Backend for Cpu {
    type Prepared = CpuPrepared;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn check(&self, plan: &Plan) -> Result<(), BackendError> {
        Ok(plan.validate()?)
    }

    fn prepare(&mut self, plan: &Plan, max_batch: usize) -> Result<CpuPrepared, BackendError> {
        plan.validate()?;
        let ops: Vec<Prep> = plan.ops.iter().map(|op| prepare_op(plan, op, self.isa)).collect();
        let pbuf = ops
            .iter()
            .map(|p| match p {
                Prep::Dense512 { pad, .. } | Prep::DwPadded { pad, .. } => pad.bytes(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let offs = ops.iter().map(|p| if let Prep::Gemm { taps, .. } = p { 4 * taps } else { 0 }).max().unwrap_or(0);
        let xbuf = ops
            .iter()
            .zip(&plan.ops)
            .map(|(p, op)| match (p, op) {
                (Prep::Gemm { seg2, .. }, Op::Conv(c)) => plan.tensor(c.input).len() + seg2 + 2,
                (Prep::Dense2 { pad, .. }, _) => pad.bytes(),
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let acc = ops
            .iter()
            .zip(&plan.ops)
            .map(|(p, op)| match (p, op) {
                (Prep::Gemm { blocks, .. }, _) => 4 * blocks * 8,
                (Prep::Depthwise { .. }, Op::Conv(c)) => c.geom.out_c,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let scratch = (0..self.threads).map(|_| Scratch { offs: vec![0; offs], acc: vec![0; acc] }).collect();
        let pool = Pool::new(scratch).map_err(|e| BackendError::Unsupported { backend: "cpu", reason: format!("cannot start worker threads: {e}") })?;
        let input = plan.tensor(plan.input);
        let pre = &plan.preprocess;
        let xs: Vec<_> = (0..input.w as usize).map(|x| cpu_ref::bilinear_coord(x, pre.src_w as usize, input.w as usize)).collect();
        let ys: Vec<_> = (0..input.h as usize).map(|y| cpu_ref::bilinear_coord(y, pre.src_h as usize, input.h as usize)).collect();
        let hm = plan.tensor(plan.heads.heatmap);
        Ok(CpuPrepared {
            plan: plan.clone(),
            max_batch,
            ops,
            arena: vec![0; plan.arena_bytes as usize],
            xbuf: vec![0; xbuf],
            pbuf: vec![0; pbuf],
            pool,
            peaks: Vec::with_capacity(plan.heads.num_classes as usize * hm.h as usize * hm.w as usize),
            identity: pre.src_w == input.w
                && pre.src_h == input.h
                && xs.iter().enumerate().all(|(i, &(i0, _, f))| i0 == i && f == 0)
                && ys.iter().enumerate().all(|(i, &(i0, _, f))| i0 == i && f == 0),
            xs,
            ys,
        })
    }

    fn run(&mut self, p: &mut CpuPrepared, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError> {
        check_run_args(self.name(), &p.plan, p.max_batch, frames, out)?;
        let avx2 = self.isa >= Isa::Avx2;
        for (frame, o) in frames.iter().zip(out.iter_mut()) {
            let input = p.plan.tensor(p.plan.input).range();
            let pre = CpuPreparedPre { identity: p.identity, xs: &p.xs, ys: &p.ys, src_w: p.plan.preprocess.src_w as usize, lut: &p.plan.preprocess.lut };
            preprocess(avx2, &pre, frame, &mut p.arena[input], &mut p.pool);
            for (op, prep) in p.plan.ops.iter().zip(&p.ops) {
                run_op(self.isa, &p.plan, op, prep, &mut p.arena, &mut p.xbuf, &mut p.pbuf, &mut p.pool);
            }
            decode_peaks(&p.plan, &p.arena, &mut p.peaks, o);
        }
        Ok(())
    }
}
