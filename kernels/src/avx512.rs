//! AVX-512 paths of the fast CPU backend (F, BW, VL and VNNI, detected at run time): the dense
//! convolution on `vpdpbusd`, the depthwise convolution on `vpdpwssd`, and the requantisation
//! fused behind both. Every function exported here is safe: it checks its slice bounds on entry
//! and only then enters the `unsafe` intrinsics.
//!
//! Exactness. `vpdpbusd` adds four `u8 x i8` products into an i32 lane without intermediate
//! saturation (each product fits in 16 bits, their sum in 18), and the lane add wraps, so it
//! computes the reference's wrapping i32 sums exactly. The activations enter as `u = x + 128`
//! (the byte with its top bit flipped) and padded taps hold `zp + 128`, so
//! `Σ (x - zp) w = Σ u w - (zp + 128) Σ w`; the constant is folded into the bias at prepare.
//! The depthwise path reads `x` as i8 sign-extended to i32 lanes and multiplies by i32 lanes
//! `[w, 0]` as i16 pairs (`x * w + sign(x) * 0`), with padded taps holding `zp` and `-zp Σ w`
//! in the bias. Requantisation follows [`crate::quant::Requant::apply`] step by step; with a
//! non-negative multiplier the gemmlowp high multiply equals `(x m + 2^30) >> 31` (arithmetic),
//! which AVX-512's 64-bit arithmetic shift computes directly.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether the running CPU has every AVX-512 extension these kernels use (detected once).
pub fn available() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Per-channel requantisation constants, each array padded with zeros to a multiple of 16.
#[derive(Clone, Debug, Default)]
pub struct Rq16 {
    /// Bias with the zero-point correction folded in.
    pub bias: Vec<i32>,
    /// Q31 multiplier (non-negative).
    pub mult: Vec<i32>,
    /// `max(shift, 0)`.
    pub left: Vec<i32>,
    /// `max(-shift, 0)`.
    pub right: Vec<i32>,
    /// `2^right - 1`.
    pub rmask: Vec<i32>,
    /// `(2^right - 1) >> 1`.
    pub rhalf: Vec<i32>,
    /// Whether any channel shifts left (the saturating left shift is skipped otherwise).
    pub any_left: bool,
}

impl Rq16 {
    /// Constants for `n` channels; `bias[j]` already includes any correction.
    pub fn new(bias: &[i32], rq: &[crate::quant::Requant]) -> Rq16 {
        let n = bias.len().next_multiple_of(16);
        let mut r = Rq16 { bias: vec![0; n], mult: vec![0; n], left: vec![0; n], right: vec![0; n], rmask: vec![0; n], rhalf: vec![0; n], any_left: false };
        for (j, (b, q)) in bias.iter().zip(rq).enumerate() {
            let right = (-q.shift).max(0);
            let mask = ((1i64 << right) - 1) as i32;
            r.bias[j] = *b;
            r.mult[j] = q.multiplier;
            r.left[j] = q.shift.max(0);
            r.right[j] = right;
            r.rmask[j] = mask;
            r.rhalf[j] = mask >> 1;
            r.any_left |= q.shift > 0;
        }
        r
    }

    /// Channels covered (a multiple of 16).
    pub fn len(&self) -> usize {
        self.bias.len()
    }

    /// Whether no channel is covered.
    pub fn is_empty(&self) -> bool {
        self.bias.is_empty()
    }
}

/// The output clamp of a layer: `clamp(z + zp, lo, hi)`.
#[derive(Clone, Copy, Debug)]
pub struct Clamp {
    /// Output zero point.
    pub zp: i32,
    /// Lower bound.
    pub lo: i32,
    /// Upper bound.
    pub hi: i32,
}

/// Pixels per dense tile.
pub const TILE: usize = 8;

/// A dense (or grouped) convolution over a padded `u8` input, prepared for [`dense_tile`].
#[derive(Clone, Debug)]
pub struct DenseGeom {
    /// Byte offset of each tap from a pixel's base.
    pub tapoff: Vec<usize>,
    /// Largest tap offset.
    pub max_tapoff: usize,
    /// Quads of 4 channels read per tap.
    pub q4: usize,
    /// Blocks of 16 output channels.
    pub blocks: usize,
    /// Output channels of the group.
    pub ocg: usize,
}

/// Packs one group's OHWI weights (`ocg x taps x icg`) into the [`dense_tile`] layout:
/// `[block][tap * q4 + quad][16 lanes][4 bytes]`, zero beyond `ocg` and `icg`.
pub fn pack_dense(w: &[i8], ocg: usize, taps: usize, icg: usize) -> Vec<i8> {
    let q4 = icg.div_ceil(4);
    let blocks = ocg.div_ceil(16);
    let kq = taps * q4;
    let mut out = vec![0i8; blocks * kq * 64];
    for o in 0..ocg {
        let (b, lane) = (o / 16, o % 16);
        for t in 0..taps {
            for i in 0..icg {
                out[((b * kq + t * q4 + i / 4) * 16 + lane) * 4 + i % 4] = w[(o * taps + t) * icg + i];
            }
        }
    }
    out
}

/// Computes `n <= 8` output pixels of one group: pixel `p` reads its taps at
/// `x[bases[p] + tapoff[t] ..][.. 4 * q4]` (bytes `x + 128`), multiplies by the packed weights
/// `w` ([`pack_dense`]), requantises with `rq` and `clamp`, and writes its `ocg` channels to
/// `out[outs[p]..]`. Panics when a read or write would leave its slice.
#[allow(clippy::too_many_arguments)] // reason: one call per tile; a struct would be rebuilt per tile.
pub fn dense_tile(x: &[i8], bases: &[usize; TILE], n: usize, g: &DenseGeom, w: &[i8], rq: &Rq16, clamp: Clamp, out: &mut [i8], outs: &[usize; TILE]) {
    let taps = g.tapoff.len();
    assert!((1..=TILE).contains(&n) && available(), "dense_tile: bad tile or no AVX-512");
    let maxb = bases.iter().max().copied().unwrap_or(0);
    assert!(maxb + g.max_tapoff + 4 * g.q4 <= x.len(), "dense_tile: input read outside x");
    assert!(w.len() >= g.blocks * taps * g.q4 * 64 && rq.len() >= g.blocks * 16 && g.ocg <= g.blocks * 16, "dense_tile: weights or constants too short");
    assert!(outs[..n].iter().all(|&o| o + g.ocg <= out.len()), "dense_tile: output write outside out");
    #[cfg(target_arch = "x86_64")]
    {
        let mut b0 = 0;
        let passes = g.blocks.div_ceil(3);
        for pass in 0..passes {
            let nb = (g.blocks - b0).div_ceil(passes - pass);
            // SAFETY: AVX-512 F/BW/VL/VNNI present (asserted); every input read is below
            // `maxb + max_tapoff + 4 q4 <= x.len()`, weights and constants cover `blocks`
            // blocks, and each store writes at most `ocg` channels from `outs[p] + 16 b`
            // (masked beyond `ocg`), inside `out` (asserted).
            unsafe {
                match nb {
                    1 => dense_pass::<1>(x, bases, n, g, w, rq, clamp, out, outs, b0),
                    2 => dense_pass::<2>(x, bases, n, g, w, rq, clamp, out, outs, b0),
                    _ => dense_pass::<3>(x, bases, n, g, w, rq, clamp, out, outs, b0),
                }
            }
            b0 += nb.min(3);
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct RqRegs {
    bias: __m512i,
    mult: __m512i,
    mult_hi: __m512i,
    left: __m512i,
    right: __m512i,
    rmask: __m512i,
    rhalf: __m512i,
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn rq_regs(rq: &Rq16, ch: usize) -> RqRegs {
    assert!(ch + 16 <= rq.len());
    // SAFETY: `ch + 16 <= len` for every array (all have `rq.len()` entries).
    let ld = |v: &[i32]| unsafe { _mm512_loadu_si512(v.as_ptr().add(ch) as *const _) };
    let mult = ld(&rq.mult);
    RqRegs { bias: ld(&rq.bias), mult, mult_hi: _mm512_srli_epi64(mult, 32), left: ld(&rq.left), right: ld(&rq.right), rmask: ld(&rq.rmask), rhalf: ld(&rq.rhalf) }
}

/// [`crate::quant::Requant::apply`] of `x` on 16 lanes (the bias in `k` is not used).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn apply16(mut x: __m512i, k: &RqRegs, any_left: bool) -> __m512i {
    if any_left {
        let sh = _mm512_sllv_epi32(x, k.left);
        let ok = _mm512_cmpeq_epi32_mask(_mm512_srav_epi32(sh, k.left), x);
        let neg = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
        let sat = _mm512_mask_blend_epi32(neg, _mm512_set1_epi32(i32::MAX), _mm512_set1_epi32(i32::MIN));
        x = _mm512_mask_blend_epi32(ok, sat, sh);
    }
    let nudge = _mm512_set1_epi64(1 << 30);
    let pe = _mm512_srai_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(x, k.mult), nudge));
    let po = _mm512_srai_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(x), k.mult_hi), nudge));
    let y = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64::<32>(po));
    let rem = _mm512_and_si512(y, k.rmask);
    let thr = _mm512_sub_epi32(k.rhalf, _mm512_srai_epi32::<31>(y));
    let z = _mm512_srav_epi32(y, k.right);
    _mm512_mask_add_epi32(z, _mm512_cmpgt_epi32_mask(rem, thr), z, _mm512_set1_epi32(1))
}

/// `clamp(z.saturating_add(zp), lo, hi)` on 16 lanes, given `lo - zp` and `hi - zp`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn clamp16(z: __m512i, lo_m_zp: __m512i, hi_m_zp: __m512i, zp: __m512i) -> __m512i {
    _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(z, lo_m_zp), hi_m_zp), zp)
}

/// [`crate::quant::Requant::apply`] of `acc + bias` on 16 lanes, then the layer clamp.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
fn requant16(acc: __m512i, k: &RqRegs, any_left: bool, lo_m_zp: __m512i, hi_m_zp: __m512i, zp: __m512i) -> __m512i {
    clamp16(apply16(_mm512_add_epi32(acc, k.bias), k, any_left), lo_m_zp, hi_m_zp, zp)
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // reason: the tile's whole context, passed once.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dense_pass<const B: usize>(x: &[i8], bases: &[usize; TILE], n: usize, g: &DenseGeom, w: &[i8], rq: &Rq16, c: Clamp, out: &mut [i8], outs: &[usize; TILE], b0: usize) {
    let kq = g.tapoff.len() * g.q4;
    let xp = x.as_ptr();
    // SAFETY (whole function): bounds were checked by `dense_tile`.
    let wp = unsafe { w.as_ptr().add(b0 * kq * 64) };
    let mut acc = [[_mm512_setzero_si512(); B]; TILE];
    let mut wt = wp;
    for &off in &g.tapoff {
        let ptrs: [*const i8; TILE] = std::array::from_fn(|p| unsafe { xp.add(bases[p] + off) });
        for i in 0..g.q4 {
            let wv: [__m512i; B] = std::array::from_fn(|b| unsafe { _mm512_loadu_si512(wt.add(b * kq * 64 + i * 64) as *const _) });
            for p in 0..TILE {
                let a = _mm512_set1_epi32(unsafe { std::ptr::read_unaligned(ptrs[p].add(4 * i) as *const i32) });
                for b in 0..B {
                    acc[p][b] = _mm512_dpbusd_epi32(acc[p][b], a, wv[b]);
                }
            }
        }
        wt = wt.wrapping_add(g.q4 * 64);
    }
    let (lo, hi, zp) = (_mm512_set1_epi32(c.lo - c.zp), _mm512_set1_epi32(c.hi - c.zp), _mm512_set1_epi32(c.zp));
    let op = out.as_mut_ptr();
    for (b, ch) in (b0..b0 + B).map(|blk| blk * 16).enumerate() {
        let k = rq_regs(rq, ch);
        let m: __mmask16 = if g.ocg >= ch + 16 { 0xFFFF } else { ((1u32 << (g.ocg - ch)) - 1) as u16 };
        for p in 0..n {
            let z = requant16(acc[p][b], &k, rq.any_left, lo, hi, zp);
            // SAFETY: masked to the `ocg - ch` live lanes from `outs[p] + ch`; `outs[p] + ocg <= out.len()` (checked).
            unsafe { _mm512_mask_cvtsepi32_storeu_epi8(op.add(outs[p] + ch), m, z) };
        }
    }
}

/// A depthwise convolution over a padded `i8` input, prepared for [`depthwise_row`].
#[derive(Clone, Debug)]
pub struct DwGeom {
    /// Byte offset of each tap from a pixel's base.
    pub tapoff: Vec<usize>,
    /// Largest tap offset.
    pub max_tapoff: usize,
    /// Channels.
    pub c: usize,
    /// Channels rounded up to 16.
    pub cpad: usize,
    /// Weights per tap and channel as i32 lanes holding `[w, 0]` i16 pairs: `w[t * cpad + c]`.
    pub w: Vec<i32>,
    /// A 3x3 kernel at horizontal stride 1 (`tapoff[3 ky + kx] = (ky wp + kx) c`): the row
    /// kernel then slides a window of 3 input columns and loads each input once.
    pub s1k3: bool,
}

/// Packs depthwise OHWI weights (`c x taps`) into [`DwGeom::w`].
pub fn pack_depthwise(w: &[i8], c: usize, taps: usize) -> Vec<i32> {
    let cpad = c.next_multiple_of(16);
    let mut out = vec![0i32; taps * cpad];
    for ch in 0..c {
        for t in 0..taps {
            out[t * cpad + ch] = i32::from(w[ch * taps + t] as i16 as u16);
        }
    }
    out
}

/// One output row of a depthwise convolution: pixel `p < n` reads its taps at
/// `x[base + p * pstride + tapoff[t] ..][.. c]`, accumulates, requantises and writes `c`
/// channels to `out[p * c..]`. `x` needs 16 readable bytes after the last tap's channel
/// block. Panics when a read or write would leave its slice.
#[allow(clippy::too_many_arguments)] // reason: one call per output row.
pub fn depthwise_row(x: &[i8], base: usize, pstride: usize, n: usize, g: &DwGeom, rq: &Rq16, clamp: Clamp, out: &mut [i8]) {
    assert!(available(), "depthwise_row: no AVX-512");
    if n == 0 {
        return;
    }
    assert!(base + (n - 1) * pstride + g.max_tapoff + g.cpad <= x.len(), "depthwise_row: input read outside x");
    assert!(g.w.len() >= g.tapoff.len() * g.cpad && rq.len() >= g.cpad && g.c <= g.cpad, "depthwise_row: weights or constants too short");
    assert!(out.len() >= n * g.c, "depthwise_row: output too short");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 present (asserted); reads stay below `base + (n-1) pstride + max_tapoff
    // + cpad <= x.len()`, weights and constants cover `cpad` lanes per tap, stores write
    // `c` channels of pixel `p < n` (masked beyond `c`) inside `out` (asserted).
    unsafe {
        match g.tapoff.len() {
            9 if g.s1k3 && pstride == g.c => dw_row_s1k3(x, base, n, g, rq, clamp, out),
            9 => dw_row::<9>(x, base, pstride, n, g, rq, clamp, out),
            _ => dw_row_any(x, base, pstride, n, g, rq, clamp, out),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // reason: the row's whole context, passed once.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dw_row<const T: usize>(x: &[i8], base: usize, ps: usize, n: usize, g: &DwGeom, rq: &Rq16, c: Clamp, out: &mut [i8]) {
    let (lo, hi, zp) = (_mm512_set1_epi32(c.lo - c.zp), _mm512_set1_epi32(c.hi - c.zp), _mm512_set1_epi32(c.zp));
    let off: [usize; T] = std::array::from_fn(|t| g.tapoff[t]);
    // SAFETY (whole function): bounds were checked by `depthwise_row`.
    let xp = unsafe { x.as_ptr().add(base) };
    let op = out.as_mut_ptr();
    let mut c0 = 0;
    while c0 < g.c {
        let wv: [__m512i; T] = std::array::from_fn(|t| unsafe { _mm512_loadu_si512(g.w.as_ptr().add(t * g.cpad + c0) as *const _) });
        let k = rq_regs(rq, c0);
        let m: __mmask16 = if g.c >= c0 + 16 { 0xFFFF } else { ((1u32 << (g.c - c0)) - 1) as u16 };
        // SAFETY: `c0 < c <= cpad`: inside the checked input range.
        let mut px = unsafe { xp.add(c0) };
        for p in 0..n {
            let mut acc = _mm512_setzero_si512();
            for t in 0..T {
                let v = _mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(px.add(off[t]) as *const __m128i) });
                acc = _mm512_dpwssd_epi32(acc, v, wv[t]);
            }
            let z = requant16(acc, &k, rq.any_left, lo, hi, zp);
            // SAFETY: masked to the `c - c0` live lanes at `p c + c0`, inside `n c <= out.len()` (checked).
            unsafe { _mm512_mask_cvtsepi32_storeu_epi8(op.add(p * g.c + c0), m, z) };
            px = px.wrapping_add(ps);
        }
        c0 += 16;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // reason: the row's whole context, passed once.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dw_row_s1k3(x: &[i8], base: usize, n: usize, g: &DwGeom, rq: &Rq16, c: Clamp, out: &mut [i8]) {
    let (lo, hi, zp) = (_mm512_set1_epi32(c.lo - c.zp), _mm512_set1_epi32(c.hi - c.zp), _mm512_set1_epi32(c.zp));
    let (r1, r2) = (g.tapoff[3], g.tapoff[6]);
    // SAFETY (whole function): bounds were checked by `depthwise_row`; column `p + 2` of
    // rows 0..3 is tap (ky, 2) of pixel `p`, inside the checked range.
    let xp = unsafe { x.as_ptr().add(base) };
    let op = out.as_mut_ptr();
    let col = |px: *const i8| unsafe {
        [
            _mm512_cvtepi8_epi32(_mm_loadu_si128(px as *const __m128i)),
            _mm512_cvtepi8_epi32(_mm_loadu_si128(px.add(r1) as *const __m128i)),
            _mm512_cvtepi8_epi32(_mm_loadu_si128(px.add(r2) as *const __m128i)),
        ]
    };
    let mut c0 = 0;
    while c0 < g.c {
        let wv: [__m512i; 9] = std::array::from_fn(|t| unsafe { _mm512_loadu_si512(g.w.as_ptr().add(t * g.cpad + c0) as *const _) });
        let k = rq_regs(rq, c0);
        let m: __mmask16 = if g.c >= c0 + 16 { 0xFFFF } else { ((1u32 << (g.c - c0)) - 1) as u16 };
        // SAFETY: `c0 < c <= cpad`: inside the checked input range.
        let px = unsafe { xp.add(c0) };
        let mut a = col(px);
        let mut b = col(unsafe { px.add(g.c) });
        for p in 0..n {
            let cc = col(unsafe { px.add((p + 2) * g.c) });
            let s0 = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_madd_epi16(a[0], wv[0]), a[1], wv[3]), a[2], wv[6]);
            let s1 = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_madd_epi16(b[0], wv[1]), b[1], wv[4]), b[2], wv[7]);
            let s2 = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_madd_epi16(cc[0], wv[2]), cc[1], wv[5]), cc[2], wv[8]);
            let acc = _mm512_add_epi32(_mm512_add_epi32(s0, s1), s2);
            let z = requant16(acc, &k, rq.any_left, lo, hi, zp);
            // SAFETY: masked to the `c - c0` live lanes at `p c + c0`, inside `n c <= out.len()` (checked).
            unsafe { _mm512_mask_cvtsepi32_storeu_epi8(op.add(p * g.c + c0), m, z) };
            a = b;
            b = cc;
        }
        c0 += 16;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // reason: the row's whole context, passed once.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dw_row_any(x: &[i8], base: usize, ps: usize, n: usize, g: &DwGeom, rq: &Rq16, c: Clamp, out: &mut [i8]) {
    let (lo, hi, zp) = (_mm512_set1_epi32(c.lo - c.zp), _mm512_set1_epi32(c.hi - c.zp), _mm512_set1_epi32(c.zp));
    // SAFETY (whole function): bounds were checked by `depthwise_row`.
    let xp = unsafe { x.as_ptr().add(base) };
    let op = out.as_mut_ptr();
    let mut c0 = 0;
    while c0 < g.c {
        let k = rq_regs(rq, c0);
        let m: __mmask16 = if g.c >= c0 + 16 { 0xFFFF } else { ((1u32 << (g.c - c0)) - 1) as u16 };
        for p in 0..n {
            // SAFETY: pixel `p < n` at channel `c0 < c`: inside the range `depthwise_row` checked.
            let px = unsafe { xp.add(p * ps + c0) };
            let mut acc = _mm512_setzero_si512();
            for (t, &o) in g.tapoff.iter().enumerate() {
                let v = _mm512_cvtepi8_epi32(unsafe { _mm_loadu_si128(px.add(o) as *const __m128i) });
                // SAFETY: tap `t`, lanes `c0..c0 + 16 <= cpad`: inside the packed weights (checked).
                let wv = unsafe { _mm512_loadu_si512(g.w.as_ptr().add(t * g.cpad + c0) as *const _) };
                acc = _mm512_dpwssd_epi32(acc, v, wv);
            }
            let z = requant16(acc, &k, rq.any_left, lo, hi, zp);
            // SAFETY: masked to the `c - c0` live lanes at `p c + c0`, inside `n c <= out.len()` (checked).
            unsafe { _mm512_mask_cvtsepi32_storeu_epi8(op.add(p * g.c + c0), m, z) };
        }
        c0 += 16;
    }
}

/// `out[i] = table[(a[i] + 128) * 256 + (b[i] + 128)]` for every `i < out.len()`: the
/// element-wise add through the table of [`crate::cpu_ref::add_one`] built at prepare, with
/// 16-lane gathers.
pub fn lookup2(a: &[i8], b: &[i8], table: &[i8], out: &mut [i8]) {
    assert!(available(), "lookup2: no AVX-512");
    assert!(table.len() >= 65536 + 3, "lookup2: the table needs 65536 entries and 3 readable bytes after them");
    assert!(a.len() >= out.len() && b.len() >= out.len(), "lookup2: inputs shorter than the output");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512 present (asserted); loads and stores are masked to `out.len()`, which
    // both inputs cover; every gathered index is below 65536 and reads 4 bytes, inside
    // `table` (asserted 65539 bytes).
    unsafe {
        lookup2_avx512(a, b, table, out)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn lookup2_avx512(a: &[i8], b: &[i8], table: &[i8], out: &mut [i8]) {
    let n = out.len();
    let flip = _mm_set1_epi8(i8::MIN);
    let low = _mm512_set1_epi32(0xFF);
    let tp = table.as_ptr();
    let mut i = 0;
    while i < n {
        let m: __mmask16 = if n - i >= 16 { 0xFFFF } else { ((1u32 << (n - i)) - 1) as u16 };
        // SAFETY: lanes at or past `n - i` are masked off.
        let (va, vb) = unsafe { (_mm_maskz_loadu_epi8(m, a.as_ptr().add(i)), _mm_maskz_loadu_epi8(m, b.as_ptr().add(i))) };
        let ia = _mm512_cvtepu8_epi32(_mm_xor_si128(va, flip));
        let ib = _mm512_cvtepu8_epi32(_mm_xor_si128(vb, flip));
        let idx = _mm512_or_si512(_mm512_slli_epi32::<8>(ia), ib);
        // SAFETY: idx < 65536 and the table has 3 bytes of slack after entry 65535.
        let v = unsafe { _mm512_i32gather_epi32::<1>(idx, tp as *const i32) };
        let v = _mm512_and_si512(v, low);
        // SAFETY: masked to the output's length.
        unsafe { _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i), m, v) };
        i += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Requant;
    use proptest::prelude::*;

    fn skip() -> bool {
        if available() {
            return false;
        }
        eprintln!("skipped: this CPU lacks AVX-512 F/BW/VL/VNNI, so the AVX-512 path cannot run here");
        true
    }

    proptest! {
        /// 1 x 1 depthwise rows through [`depthwise_row`] with one tap of weight 1 are the
        /// requantisation alone: compare it with the scalar contract on random accumulators.
        #[test]
        fn vector_requant_equals_the_contract(xs in prop::collection::vec(-128i32..128, 1..40), reals in prop::collection::vec(1e-6f64..300.0, 40), bias in prop::collection::vec(any::<i32>(), 40), zp in -128i32..128, lo in -128i32..0, hi in 0i32..128) {
            if skip() { return Ok(()); }
            let c = xs.len();
            let rq: Vec<Requant> = reals[..c].iter().map(|&r| Requant::from_real(r)).collect();
            let k = Rq16::new(&bias[..c], &rq);
            let g = DwGeom { tapoff: vec![0], max_tapoff: 0, c, cpad: c.next_multiple_of(16), w: pack_depthwise(&vec![1i8; c], c, 1), s1k3: false };
            let mut x: Vec<i8> = xs.iter().map(|&v| v as i8).collect();
            x.resize(c + 16, 0);
            let mut out = vec![0i8; c];
            depthwise_row(&x, 0, c, 1, &g, &k, Clamp { zp, lo, hi }, &mut out);
            for j in 0..c {
                let want = rq[j].apply(xs[j].wrapping_add(bias[j])).saturating_add(zp).clamp(lo, hi) as i8;
                prop_assert_eq!(out[j], want, "channel {}", j);
            }
        }
    }

    #[test]
    fn requant_extremes_through_the_vector_path() {
        if skip() {
            return;
        }
        // Accumulators at the i32 edges reach the requantisation through the bias.
        let edges = [i32::MIN, i32::MAX, -1, 0, 1, 1 << 30, -(1 << 30), 1 << 24, -(1 << 24), i32::MIN + 1, 12345, -54321, 3, -3, 7, -7];
        for &(m, s) in &[(1 << 30, 1), (i32::MAX, 30), (1 << 30, -31), (1_500_000_000, -5), (0, 0), (1 << 30, 10), (1_234_567_890, -12)] {
            let rq = vec![Requant { multiplier: m, shift: s }; 16];
            let k = Rq16::new(&edges, &rq);
            let g = DwGeom { tapoff: vec![0], max_tapoff: 0, c: 16, cpad: 16, w: pack_depthwise(&[0i8; 16], 16, 1), s1k3: false };
            let mut out = [0i8; 16];
            depthwise_row(&[0i8; 32], 0, 16, 1, &g, &k, Clamp { zp: 3, lo: -128, hi: 127 }, &mut out);
            for j in 0..16 {
                assert_eq!(out[j], rq[j].apply(edges[j]).saturating_add(3).clamp(-128, 127) as i8, "m {m} s {s} x {}", edges[j]);
            }
        }
    }
}
