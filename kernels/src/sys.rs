//! AVX2 intrinsics and the fixed thread pool (with [`crate::avx512`] and the CUDA backend, the
//! only `unsafe` code of `kernels`).
//!
//! Everything exported here is a *safe* function or type whose preconditions are checked on
//! entry (slice lengths, CPU features), so the rest of the crate stays `#![deny(unsafe_code)]`.
//!
//! * [`Pool`]: `n - 1` worker threads started once; [`Pool::run`] splits an output slice into
//!   disjoint chunks and hands each to one call of a borrowed closure, on the workers and the
//!   calling thread. No allocation, no lock per run (atomics, spin then park).
//! * [`gemm_indirect`], [`requant`]: the portable int8 GEMM micro-kernel (the `Portable`
//!   level of the fast backend) and the requantisation of an accumulator row, with an AVX2
//!   path whose register core (`apply8`) the AVX2 kernels share.
//! * [`depthwise_row_avx2`]: the AVX2 twin of [`crate::avx512::depthwise_row`] (a depthwise
//!   row over a zero-point-padded input with fused requantisation, `vpmaddwd`).
//! * [`dense_tile_avx2`]: a dense convolution tile (4 pixels x 16 channels) over a padded i16
//!   input with fused requantisation, `vpmaddwd`.
//! * [`lookup2_avx2`]: the element-wise add's table lookup with 8-lane gathers.
//! * [`with_avx2`]: runs portable code compiled with AVX2 enabled, so the compiler vectorises it
//!   with 256-bit registers.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// Whether the running CPU has AVX2 (always false off x86-64).
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` inside a function compiled with AVX2 enabled when `avx2` is true (the caller
/// checked [`has_avx2`]), so that `f`, once inlined, is vectorised with 256-bit registers.
#[inline(always)]
pub fn with_avx2<R>(avx2: bool, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn inner<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if avx2 && has_avx2() {
            // SAFETY: the CPU supports AVX2 (checked just above), which is the only
            // precondition of calling a `#[target_feature(enable = "avx2")]` function.
            return unsafe { inner(f) };
        }
    }
    let _ = avx2;
    f()
}

/// The task closure type of [`Pool::run`]: `(scratch, task index, output chunk)`.
pub type Task<'a, S> = dyn Fn(&mut S, usize, &mut [i8]) + Sync + 'a;

struct Job<S: 'static> {
    f: Option<&'static Task<'static, S>>,
    out: *mut i8,
    len: usize,
    chunk: usize,
    tasks: usize,
}

struct Shared<S: 'static> {
    epoch: AtomicU64,
    next: AtomicUsize,
    done: AtomicUsize,
    stop: AtomicBool,
    panicked: AtomicBool,
    job: UnsafeCell<Job<S>>,
}

// SAFETY: `job` is written only by the thread that owns the `Pool` (inside `run`, while no
// worker reads it: every worker has finished the previous epoch and waits for the next), and
// read by workers only between the epoch increment (Release) they observe (Acquire) and their
// `done` increment, during which the owner does not write it. The raw output pointer is only
// dereferenced as disjoint chunks (one task index is claimed by exactly one thread through
// `next.fetch_add`). The closure is `Sync` and the scratch values are owned per thread.
unsafe impl<S: Send + 'static> Sync for Shared<S> {}
// SAFETY: as above; the raw pointer is only used under the epoch protocol.
unsafe impl<S: Send + 'static> Send for Shared<S> {}

/// A fixed pool of worker threads, each owning one scratch value `S`.
pub struct Pool<S: Send + 'static> {
    shared: Arc<Shared<S>>,
    workers: Vec<JoinHandle<()>>,
    local: S,
}

impl<S: Send + 'static> std::fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("threads", &(self.workers.len() + 1)).finish()
    }
}

fn run_tasks<S: 'static>(job: &Job<S>, next: &AtomicUsize, scratch: &mut S) {
    let Some(f) = job.f else { return };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= job.tasks {
            return;
        }
        let start = i * job.chunk;
        let len = job.chunk.min(job.len - start);
        // SAFETY: `out..out+len` is the caller's `&mut [i8]`, alive until every thread has
        // reported `done`; task `i` is claimed by exactly one thread, and chunks of distinct
        // tasks are disjoint, so this is the only live reference to these bytes.
        let chunk = unsafe { std::slice::from_raw_parts_mut(job.out.add(start), len) };
        f(scratch, i, chunk);
    }
}

impl<S: Send + 'static> Pool<S> {
    /// Starts `scratch.len() - 1` workers; the first scratch value stays with the caller.
    /// `scratch` must not be empty.
    pub fn new(mut scratch: Vec<S>) -> std::io::Result<Pool<S>> {
        assert!(!scratch.is_empty(), "a pool needs at least the calling thread's scratch");
        let local = scratch.remove(0);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            job: UnsafeCell::new(Job { f: None, out: std::ptr::null_mut(), len: 0, chunk: 1, tasks: 0 }),
        });
        let mut workers = Vec::with_capacity(scratch.len());
        for (n, mut s) in scratch.into_iter().enumerate() {
            let sh = shared.clone();
            let handle = std::thread::Builder::new().name(format!("vigil-cpu-{}", n + 1)).spawn(move || {
                let mut seen = 0u64;
                loop {
                    let mut spins = 0u32;
                    loop {
                        if sh.stop.load(Ordering::Acquire) {
                            return;
                        }
                        let e = sh.epoch.load(Ordering::Acquire);
                        if e != seen {
                            seen = e;
                            break;
                        }
                        spins += 1;
                        if spins < 4096 {
                            std::hint::spin_loop();
                        } else {
                            std::thread::park();
                        }
                    }
                    // SAFETY: see `Shared`: the owner does not write `job` until this thread
                    // increments `done` below.
                    let job = unsafe { &*sh.job.get() };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_tasks(job, &sh.next, &mut s)));
                    if r.is_err() {
                        sh.panicked.store(true, Ordering::Release);
                    }
                    sh.done.fetch_add(1, Ordering::AcqRel);
                }
            })?;
            workers.push(handle);
        }
        Ok(Pool { shared, workers, local })
    }

    /// Number of threads working on a run (workers plus the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Splits `out` into chunks of `chunk` bytes (the last may be shorter) and calls
    /// `f(scratch, task_index, chunk)` once per chunk, spread over all threads. Returns when
    /// every chunk is done. Panics if a task panicked.
    pub fn run(&mut self, out: &mut [i8], chunk: usize, f: &Task<'_, S>) {
        let chunk = chunk.max(1);
        let tasks = out.len().div_ceil(chunk);
        if self.workers.is_empty() || tasks <= 1 {
            for (i, c) in out.chunks_mut(chunk).enumerate() {
                f(&mut self.local, i, c);
            }
            return;
        }
        // SAFETY: only the lifetime is erased; the reference is dropped from `job` (set to
        // None) before this function returns, and no worker reads it after reporting `done`.
        let f_static: &'static Task<'static, S> = unsafe { std::mem::transmute::<&Task<'_, S>, &'static Task<'static, S>>(f) };
        // SAFETY: every worker has reported `done` for the previous epoch (we waited for it),
        // so none reads `job` now.
        unsafe {
            *self.shared.job.get() = Job { f: Some(f_static), out: out.as_mut_ptr(), len: out.len(), chunk, tasks };
        }
        self.shared.next.store(0, Ordering::Relaxed);
        self.shared.done.store(0, Ordering::Relaxed);
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
        for w in &self.workers {
            w.thread().unpark();
        }
        // SAFETY: reading the job we just wrote, on the owning thread.
        let job = unsafe { &*self.shared.job.get() };
        run_tasks(job, &self.shared.next, &mut self.local);
        let mut spins = 0u32;
        while self.shared.done.load(Ordering::Acquire) != self.workers.len() {
            spins += 1;
            if spins < 4096 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: all workers are done with this epoch.
        unsafe {
            (*self.shared.job.get()).f = None;
        }
        assert!(!self.shared.panicked.load(Ordering::Acquire), "a cpu worker task panicked");
    }
}

impl<S: Send + 'static> Drop for Pool<S> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for w in &self.workers {
            w.thread().unpark();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Indirect int8 GEMM micro-kernel for 4 output pixels and `n = blocks * 8` channels:
/// `acc[p * n + j] = Σ_t Σ_i x[offs[4t + p] + i] * W[j][t * seg2 + i]` over `taps` taps and
/// `seg2` (even) values per tap, wrapping i32 sums. Each pixel's tap segment is read from the
/// i16 buffer `x` at its offset (a zero segment stands for padding), so no im2col copy is made.
/// `w` holds, per block of 8 channels, `taps * seg2 / 2` groups of 8 channel pairs:
/// `w[(b * k2 / 2 + kp) * 16 + 2 * c + e]` is the weight of channel `8b + c` at
/// `k = 2kp + e`, with `k2 = taps * seg2`.
pub fn gemm_indirect(x: &[i16], offs: &[usize], taps: usize, seg2: usize, w: &[i16], blocks: usize, acc: &mut [i32]) {
    let k2 = taps * seg2;
    assert!(seg2.is_multiple_of(2) && offs.len() >= 4 * taps && w.len() >= blocks * k2 * 8 && acc.len() >= 4 * blocks * 8, "gemm_indirect: bad slice lengths");
    assert!(offs[..4 * taps].iter().all(|&o| o.checked_add(seg2).is_some_and(|e| e <= x.len())), "gemm_indirect: segment outside x");
    let n = blocks * 8;
    for p in 0..4 {
        for j in 0..n {
            let (b, c) = (j / 8, j % 8);
            let mut s = 0i32;
            for t in 0..taps {
                let seg = &x[offs[4 * t + p]..offs[4 * t + p] + seg2];
                for kp in 0..seg2 / 2 {
                    let wi = (b * k2 / 2 + t * seg2 / 2 + kp) * 16 + 2 * c;
                    s = s.wrapping_add(i32::from(seg[2 * kp]) * i32::from(w[wi]) + i32::from(seg[2 * kp + 1]) * i32::from(w[wi + 1]));
                }
            }
            acc[p * n + j] = s;
        }
    }
}

/// Per-channel requantisation constants in the form the vector path uses.
#[derive(Clone, Debug, Default)]
pub struct RequantVec {
    /// Bias per channel.
    pub bias: Vec<i32>,
    /// Q31 multiplier per channel (non-negative).
    pub mult: Vec<i32>,
    /// Left shift per channel (`max(shift, 0)`).
    pub left: Vec<i32>,
    /// Right shift per channel (`max(-shift, 0)`).
    pub right: Vec<i32>,
}

/// `out[j] = clamp(requant_j(acc[j] + bias[j]) + zp, lo, hi)` for `j < out.len()`, exactly
/// as [`crate::quant::Requant::apply`] with the final saturating zero-point add.
pub fn requant(avx2: bool, acc: &[i32], q: &RequantVec, zp: i32, lo: i32, hi: i32, out: &mut [i8]) {
    let n = out.len();
    assert!(acc.len() >= n && q.bias.len() >= n && q.mult.len() >= n && q.left.len() >= n && q.right.len() >= n, "requant: bad slice lengths");
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx2 && has_avx2() {
        // SAFETY: AVX2 present; the kernel touches indices < n / 8 * 8 <= every length.
        unsafe { requant_avx2(acc, q, zp, lo, hi, out) };
        done = n / 8 * 8;
    }
    let _ = avx2;
    for j in done..n {
        let r = crate::quant::Requant { multiplier: q.mult[j], shift: q.left[j] - q.right[j] };
        let v = r.apply(acc[j].wrapping_add(q.bias[j])).saturating_add(zp);
        out[j] = v.clamp(lo, hi) as i8;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn requant_avx2(acc: &[i32], q: &RequantVec, zp: i32, lo: i32, hi: i32, out: &mut [i8]) {
    use std::arch::x86_64::*;
    let n = out.len() / 8 * 8;
    let ld = |s: &[i32], j: usize| {
        // SAFETY: j + 8 <= n <= s.len() (checked by the caller).
        unsafe { _mm256_loadu_si256(s.as_ptr().add(j) as *const __m256i) }
    };
    let cap_hi = _mm256_set1_epi32(1 << 24);
    let cap_lo = _mm256_set1_epi32(-(1 << 24));
    let (vzp, vlo, vhi) = (_mm256_set1_epi32(zp), _mm256_set1_epi32(lo), _mm256_set1_epi32(hi));
    let mut j = 0;
    while j < n {
        let x = _mm256_add_epi32(ld(acc, j), ld(&q.bias, j));
        let z = apply8(x, ld(&q.mult, j), ld(&q.left, j), ld(&q.right, j), true);
        // |z| beyond 2^24 clamps to the same int8 either way, so capping first makes the
        // zero-point add exact without saturation.
        let z = _mm256_min_epi32(_mm256_max_epi32(z, cap_lo), cap_hi);
        let z = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(z, vzp), vlo), vhi);
        let p16 = _mm256_packs_epi32(z, z);
        let p8 = _mm256_packs_epi16(p16, p16);
        let lo4 = _mm256_cvtsi256_si32(p8);
        let hi4 = _mm256_extract_epi32::<4>(p8);
        let bytes = ((lo4 as u32 as u64) | ((hi4 as u32 as u64) << 32)).to_le_bytes();
        for (k, b) in bytes.iter().enumerate() {
            out[j + k] = *b as i8;
        }
        j += 8;
    }
}

/// [`crate::quant::Requant::apply`] of `x` on 8 lanes: saturating left shift (skipped when
/// `any_left` is false, i.e. every `left` lane is 0), rounding doubling high multiply by a
/// non-negative Q31 multiplier, rounding divide by `2^right`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn apply8(x: std::arch::x86_64::__m256i, m: std::arch::x86_64::__m256i, left: std::arch::x86_64::__m256i, right: std::arch::x86_64::__m256i, any_left: bool) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let one = _mm256_set1_epi32(1);
    let x = if any_left {
        let sh = _mm256_sllv_epi32(x, left);
        let ok = _mm256_cmpeq_epi32(_mm256_srav_epi32(sh, left), x);
        let sat = _mm256_blendv_epi8(_mm256_set1_epi32(i32::MAX), _mm256_set1_epi32(i32::MIN), _mm256_srai_epi32(x, 31));
        _mm256_blendv_epi8(sat, sh, ok)
    } else {
        x
    };
    // Rounding doubling high multiply, multiplier >= 0: sign from x, magnitude via u64.
    let nudge = _mm256_set1_epi64x(1 << 30);
    let neg = _mm256_srai_epi32(x, 31);
    let ax = _mm256_abs_epi32(x);
    let n1 = _mm256_and_si256(neg, one);
    let pe = _mm256_mul_epu32(ax, m);
    let po = _mm256_mul_epu32(_mm256_srli_epi64(ax, 32), _mm256_srli_epi64(m, 32));
    let ne = _mm256_and_si256(n1, _mm256_set1_epi64x(1));
    let no = _mm256_srli_epi64(n1, 32);
    let re = _mm256_srli_epi64(_mm256_add_epi64(pe, _mm256_sub_epi64(nudge, ne)), 31);
    let ro = _mm256_srli_epi64(_mm256_add_epi64(po, _mm256_sub_epi64(nudge, no)), 31);
    let r = _mm256_blend_epi32(re, _mm256_slli_epi64(ro, 32), 0b1010_1010);
    let y = _mm256_sub_epi32(_mm256_xor_si256(r, neg), neg);
    // Rounding divide by 2^right, half away from zero.
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    let rem = _mm256_and_si256(y, mask);
    let thr = _mm256_add_epi32(_mm256_srli_epi32(mask, 1), _mm256_and_si256(_mm256_srai_epi32(y, 31), one));
    _mm256_add_epi32(_mm256_srav_epi32(y, right), _mm256_and_si256(_mm256_cmpgt_epi32(rem, thr), one))
}

/// One output row of a depthwise convolution with AVX2, the same contract as
/// [`crate::avx512::depthwise_row`] (inputs padded with the zero point, `-zp Σ w` folded into
/// the bias, [`crate::avx512::pack_depthwise`] weights): pixel `p < n` reads its taps at
/// `x[base + p * pstride + tapoff[t] ..][.. c]` and writes `c` channels to `out[p * c..]`.
/// Panics when the CPU lacks AVX2 or a read or write would leave its slice.
#[allow(clippy::too_many_arguments)] // reason: one call per output row.
pub fn depthwise_row_avx2(x: &[i8], base: usize, pstride: usize, n: usize, g: &crate::avx512::DwGeom, rq: &crate::avx512::Rq16, clamp: crate::avx512::Clamp, out: &mut [i8]) {
    assert!(has_avx2(), "depthwise_row_avx2: no AVX2");
    if n == 0 {
        return;
    }
    assert!(base + (n - 1) * pstride + g.max_tapoff + g.cpad <= x.len(), "depthwise_row_avx2: input read outside x");
    assert!(g.w.len() >= g.tapoff.len() * g.cpad && rq.len() >= g.cpad && g.c <= g.cpad && g.cpad.is_multiple_of(8), "depthwise_row_avx2: weights or constants too short");
    assert!(out.len() >= n * g.c, "depthwise_row_avx2: output too short");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 present (asserted); 8-byte reads at channel `c0 < c` (a multiple of 8, so
    // `c0 + 8 <= cpad`) stay below `base + (n-1) pstride + max_tapoff + cpad <= x.len()`;
    // weights and constants cover `cpad` lanes per tap; pixel `p < n` stores `min(8, c - c0)`
    // bytes at `p c + c0`, inside `out` (asserted `n c` bytes).
    unsafe {
        if g.tapoff.len() == 9 && g.s1k3 && pstride == g.c {
            dw8_s1k3(x, base, n, g, rq, clamp, out)
        } else {
            dw8_any(x, base, pstride, n, g, rq, clamp, out)
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Rq8 {
    bias: std::arch::x86_64::__m256i,
    mult: std::arch::x86_64::__m256i,
    left: std::arch::x86_64::__m256i,
    right: std::arch::x86_64::__m256i,
    any_left: bool,
    lo_m_zp: std::arch::x86_64::__m256i,
    hi_m_zp: std::arch::x86_64::__m256i,
    zp: std::arch::x86_64::__m256i,
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn rq8(rq: &crate::avx512::Rq16, ch: usize, c: crate::avx512::Clamp) -> Rq8 {
    use std::arch::x86_64::*;
    assert!(ch + 8 <= rq.len());
    // SAFETY: `ch + 8 <= len` for every array (all have `rq.len()` entries).
    let ld = |v: &[i32]| unsafe { _mm256_loadu_si256(v.as_ptr().add(ch) as *const __m256i) };
    Rq8 {
        bias: ld(&rq.bias),
        mult: ld(&rq.mult),
        left: ld(&rq.left),
        right: ld(&rq.right),
        any_left: rq.any_left,
        lo_m_zp: _mm256_set1_epi32(c.lo - c.zp),
        hi_m_zp: _mm256_set1_epi32(c.hi - c.zp),
        zp: _mm256_set1_epi32(c.zp),
    }
}

/// Requantises `acc + bias`, clamps, and stores `lanes <= 8` bytes at `dst`.
///
/// # Safety
/// `dst` is valid for `lanes` bytes of writes and the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store8(acc: std::arch::x86_64::__m256i, k: &Rq8, dst: *mut i8, lanes: usize) {
    use std::arch::x86_64::*;
    let z = apply8(_mm256_add_epi32(acc, k.bias), k.mult, k.left, k.right, k.any_left);
    let z = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(z, k.lo_m_zp), k.hi_m_zp), k.zp);
    // Lanes are in [-128, 127]: the saturating packs are exact; 128-bit lanes interleave, so
    // bytes 0..4 and 16..20 hold channels 0..4 and 4..8.
    let p16 = _mm256_packs_epi32(z, z);
    let p8 = _mm256_packs_epi16(p16, p16);
    let lo4 = _mm256_cvtsi256_si32(p8) as u32 as u64;
    let hi4 = _mm256_extract_epi32::<4>(p8) as u32 as u64;
    let v = lo4 | (hi4 << 32);
    if lanes == 8 {
        // SAFETY: the caller guarantees 8 writable bytes at `dst`.
        unsafe { std::ptr::write_unaligned(dst as *mut u64, v.to_le()) };
    } else {
        for (i, b) in v.to_le_bytes().into_iter().take(lanes).enumerate() {
            // SAFETY: `i < lanes`, writable by the caller's guarantee.
            unsafe { dst.add(i).write(b as i8) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // reason: the row's whole context, passed once.
#[target_feature(enable = "avx2")]
unsafe fn dw8_any(x: &[i8], base: usize, ps: usize, n: usize, g: &crate::avx512::DwGeom, rq: &crate::avx512::Rq16, c: crate::avx512::Clamp, out: &mut [i8]) {
    use std::arch::x86_64::*;
    // SAFETY (whole function): bounds were checked by `depthwise_row_avx2`.
    let xp = unsafe { x.as_ptr().add(base) };
    let op = out.as_mut_ptr();
    let mut c0 = 0;
    while c0 < g.c {
        let k = rq8(rq, c0, c);
        let lanes = (g.c - c0).min(8);
        for p in 0..n {
            // SAFETY: pixel `p < n` at channel `c0 < c`: inside the range `depthwise_row_avx2` checked.
            let px = unsafe { xp.add(p * ps + c0) };
            let mut acc = _mm256_setzero_si256();
            for (t, &o) in g.tapoff.iter().enumerate() {
                let v = _mm256_cvtepi8_epi32(unsafe { _mm_loadl_epi64(px.add(o) as *const __m128i) });
                // SAFETY: tap `t`, lanes `c0..c0 + 8 <= cpad`: inside the packed weights (checked).
                let wv = unsafe { _mm256_loadu_si256(g.w.as_ptr().add(t * g.cpad + c0) as *const __m256i) };
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(v, wv));
            }
            // SAFETY: `p c + c0 + lanes <= n c <= out.len()` (checked).
            unsafe { store8(acc, &k, op.add(p * g.c + c0), lanes) };
        }
        c0 += 8;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // reason: the row's whole context, passed once.
#[target_feature(enable = "avx2")]
unsafe fn dw8_s1k3(x: &[i8], base: usize, n: usize, g: &crate::avx512::DwGeom, rq: &crate::avx512::Rq16, c: crate::avx512::Clamp, out: &mut [i8]) {
    use std::arch::x86_64::*;
    let (r1, r2) = (g.tapoff[3], g.tapoff[6]);
    // SAFETY (whole function): bounds were checked by `depthwise_row_avx2`; column `p + 2` of
    // rows 0..3 is tap (ky, 2) of pixel `p`, inside the checked range.
    let xp = unsafe { x.as_ptr().add(base) };
    let op = out.as_mut_ptr();
    let col = |px: *const i8| unsafe {
        [
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(px as *const __m128i)),
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(px.add(r1) as *const __m128i)),
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(px.add(r2) as *const __m128i)),
        ]
    };
    let mut c0 = 0;
    while c0 < g.c {
        let wv: [__m256i; 9] = std::array::from_fn(|t| unsafe { _mm256_loadu_si256(g.w.as_ptr().add(t * g.cpad + c0) as *const __m256i) });
        let k = rq8(rq, c0, c);
        let lanes = (g.c - c0).min(8);
        // SAFETY: `c0 < c <= cpad`: inside the checked input range.
        let px = unsafe { xp.add(c0) };
        let mut a = col(px);
        let mut b = col(unsafe { px.add(g.c) });
        for p in 0..n {
            let cc = col(unsafe { px.add((p + 2) * g.c) });
            let s0 = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(a[0], wv[0]), _mm256_madd_epi16(a[1], wv[3])), _mm256_madd_epi16(a[2], wv[6]));
            let s1 = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(b[0], wv[1]), _mm256_madd_epi16(b[1], wv[4])), _mm256_madd_epi16(b[2], wv[7]));
            let s2 = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(cc[0], wv[2]), _mm256_madd_epi16(cc[1], wv[5])), _mm256_madd_epi16(cc[2], wv[8]));
            // SAFETY: `p c + c0 + lanes <= n c <= out.len()` (checked).
            unsafe { store8(_mm256_add_epi32(_mm256_add_epi32(s0, s1), s2), &k, op.add(p * g.c + c0), lanes) };
            a = b;
            b = cc;
        }
        c0 += 8;
    }
}

/// `out[i] = table[(a[i] + 128) * 256 + (b[i] + 128)]` for every `i < out.len()` with 8-lane
/// AVX2 gathers (the element-wise add through its exact 64K table). Panics when the CPU lacks
/// AVX2, the table is shorter than 65536 + 3 bytes or an input is shorter than `out`.
pub fn lookup2_avx2(a: &[i8], b: &[i8], table: &[i8], out: &mut [i8]) {
    assert!(has_avx2(), "lookup2_avx2: no AVX2");
    assert!(table.len() >= 65536 + 3, "lookup2_avx2: the table needs 65536 entries and 3 readable bytes after them");
    assert!(a.len() >= out.len() && b.len() >= out.len(), "lookup2_avx2: inputs shorter than the output");
    let n8 = out.len() / 8 * 8;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 present (asserted); 8-byte loads and stores at `i + 8 <= n8 <= out.len()`
    // stay inside `a`, `b` and `out`; every gathered index is below 65536 and reads 4 bytes,
    // inside `table` (asserted 65539 bytes).
    unsafe {
        lookup2_avx2_body(a, b, table, out, n8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let n8 = 0;
    for i in n8..out.len() {
        out[i] = table[((i32::from(a[i]) + 128) as usize) << 8 | (i32::from(b[i]) + 128) as usize];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lookup2_avx2_body(a: &[i8], b: &[i8], table: &[i8], out: &mut [i8], n8: usize) {
    use std::arch::x86_64::*;
    let flip = _mm_set1_epi8(i8::MIN);
    let low = _mm256_set1_epi32(0xFF);
    let tp = table.as_ptr() as *const i32;
    let mut i = 0;
    while i < n8 {
        // SAFETY: `i + 8 <= n8`, inside both inputs and the output (checked by the caller).
        let (va, vb) = unsafe { (_mm_loadl_epi64(a.as_ptr().add(i) as *const __m128i), _mm_loadl_epi64(b.as_ptr().add(i) as *const __m128i)) };
        let ia = _mm256_cvtepu8_epi32(_mm_xor_si128(va, flip));
        let ib = _mm256_cvtepu8_epi32(_mm_xor_si128(vb, flip));
        let idx = _mm256_or_si256(_mm256_slli_epi32::<8>(ia), ib);
        // SAFETY: idx < 65536 and the table has 3 bytes of slack after entry 65535.
        let v = _mm256_and_si256(unsafe { _mm256_i32gather_epi32::<1>(tp, idx) }, low);
        // Lanes hold 0..=255: the unsigned packs are exact; bytes 0..4 and 16..20 are the
        // 8 results (128-bit lanes interleave).
        let p16 = _mm256_packus_epi32(v, v);
        let p8 = _mm256_packus_epi16(p16, p16);
        let w = (_mm256_cvtsi256_si32(p8) as u32 as u64) | ((_mm256_extract_epi32::<4>(p8) as u32 as u64) << 32);
        // SAFETY: as above.
        unsafe { std::ptr::write_unaligned(out.as_mut_ptr().add(i) as *mut u64, w.to_le()) };
        i += 8;
    }
}

/// Pixels per AVX2 dense tile.
pub const TILE2: usize = 4;

/// A dense (or grouped) convolution over a padded `i16` input holding `x - zp` (padding 0),
/// prepared for [`dense_tile_avx2`].
#[derive(Clone, Debug)]
pub struct Dense8Geom {
    /// Element offset of each tap from a pixel's base.
    pub tapoff: Vec<usize>,
    /// Largest tap offset.
    pub max_tapoff: usize,
    /// Pairs of input channels read per tap.
    pub q2: usize,
    /// Blocks of 8 output channels.
    pub blocks: usize,
    /// Output channels of the group.
    pub ocg: usize,
}

/// Packs one group's OHWI weights (`ocg x taps x icg`) into the [`dense_tile_avx2`] layout:
/// `[block][tap * q2 + pair][8 lanes][2]` i16, zero beyond `ocg` and `icg`.
pub fn pack_dense8(w: &[i8], ocg: usize, taps: usize, icg: usize) -> Vec<i16> {
    let q2 = icg.div_ceil(2);
    let blocks = ocg.div_ceil(8);
    let kq = taps * q2;
    let mut out = vec![0i16; blocks * kq * 16];
    for o in 0..ocg {
        let (b, lane) = (o / 8, o % 8);
        for t in 0..taps {
            for i in 0..icg {
                out[((b * kq + t * q2 + i / 2) * 8 + lane) * 2 + i % 2] = i16::from(w[(o * taps + t) * icg + i]);
            }
        }
    }
    out
}

/// Computes `n <= 4` output pixels of one group with AVX2 (`vpmaddwd`, exact): pixel `p`
/// reads its taps at `x[bases[p] + tapoff[t] ..][.. 2 * q2]`, multiplies by the packed
/// weights `w` ([`pack_dense8`]), requantises with `rq` (bias as prepared: no zero-point term,
/// the input already holds `x - zp`) and `clamp`, and writes its `ocg` channels to
/// `out[outs[p]..]`. Panics when the CPU lacks AVX2 or a read or write would leave its slice.
#[allow(clippy::too_many_arguments)] // reason: one call per tile; a struct would be rebuilt per tile.
pub fn dense_tile_avx2(x: &[i16], bases: &[usize; TILE2], n: usize, g: &Dense8Geom, w: &[i16], rq: &crate::avx512::Rq16, clamp: crate::avx512::Clamp, out: &mut [i8], outs: &[usize; TILE2]) {
    let taps = g.tapoff.len();
    assert!((1..=TILE2).contains(&n) && has_avx2(), "dense_tile_avx2: bad tile or no AVX2");
    let maxb = bases.iter().max().copied().unwrap_or(0);
    assert!(maxb + g.max_tapoff + 2 * g.q2 <= x.len(), "dense_tile_avx2: input read outside x");
    assert!(w.len() >= g.blocks * taps * g.q2 * 16 && rq.len() >= g.blocks * 8 && g.ocg <= g.blocks * 8, "dense_tile_avx2: weights or constants too short");
    assert!(outs[..n].iter().all(|&o| o + g.ocg <= out.len()), "dense_tile_avx2: output write outside out");
    #[cfg(target_arch = "x86_64")]
    {
        let mut b0 = 0;
        while b0 < g.blocks {
            // SAFETY: AVX2 present (asserted); every input read is below
            // `maxb + max_tapoff + 2 q2 <= x.len()`, weights and constants cover `blocks`
            // blocks, and each store writes at most `ocg - 8 b` channels from `outs[p] + 8 b`,
            // inside `out` (asserted).
            unsafe {
                if g.blocks - b0 >= 2 {
                    dense8_pass::<2>(x, bases, n, g, w, rq, clamp, out, outs, b0);
                } else {
                    dense8_pass::<1>(x, bases, n, g, w, rq, clamp, out, outs, b0);
                }
            }
            b0 += 2;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)] // reason: the tile's whole context, passed once.
#[target_feature(enable = "avx2")]
unsafe fn dense8_pass<const B: usize>(x: &[i16], bases: &[usize; TILE2], n: usize, g: &Dense8Geom, w: &[i16], rq: &crate::avx512::Rq16, c: crate::avx512::Clamp, out: &mut [i8], outs: &[usize; TILE2], b0: usize) {
    use std::arch::x86_64::*;
    let kq = g.tapoff.len() * g.q2;
    let xp = x.as_ptr();
    // SAFETY (whole function): bounds were checked by `dense_tile_avx2`.
    let mut wt = unsafe { w.as_ptr().add(b0 * kq * 16) };
    let mut acc = [[_mm256_setzero_si256(); B]; TILE2];
    for &off in &g.tapoff {
        let ptrs: [*const i16; TILE2] = std::array::from_fn(|p| unsafe { xp.add(bases[p] + off) });
        for i in 0..g.q2 {
            let wv: [__m256i; B] = std::array::from_fn(|b| unsafe { _mm256_loadu_si256(wt.add(b * kq * 16 + i * 16) as *const __m256i) });
            for p in 0..TILE2 {
                let a = _mm256_set1_epi32(unsafe { std::ptr::read_unaligned(ptrs[p].add(2 * i) as *const i32) });
                for b in 0..B {
                    acc[p][b] = _mm256_add_epi32(acc[p][b], _mm256_madd_epi16(a, wv[b]));
                }
            }
        }
        wt = wt.wrapping_add(g.q2 * 16);
    }
    let op = out.as_mut_ptr();
    for (b, ch) in (b0..b0 + B).map(|blk| blk * 8).enumerate() {
        let k = rq8(rq, ch, c);
        let lanes = g.ocg.saturating_sub(ch).min(8);
        for p in 0..n {
            // SAFETY: `outs[p] + ch + lanes <= outs[p] + ocg <= out.len()` (checked).
            unsafe { store8(acc[p][b], &k, op.add(outs[p] + ch), lanes) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Requant;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn vector_requant_equals_scalar(xs in prop::collection::vec(any::<i32>(), 1..40), reals in prop::collection::vec(1e-6f64..8.0, 40), bias in prop::collection::vec(-100_000i32..100_000, 40), zp in -128i32..128, lo in -128i32..0, hi in 0i32..128) {
            let n = xs.len();
            let rq: Vec<Requant> = reals[..n].iter().map(|&r| Requant::from_real(r)).collect();
            let q = RequantVec {
                bias: bias[..n].to_vec(),
                mult: rq.iter().map(|r| r.multiplier).collect(),
                left: rq.iter().map(|r| r.shift.max(0)).collect(),
                right: rq.iter().map(|r| (-r.shift).max(0)).collect(),
            };
            let mut fast = vec![0i8; n];
            let mut slow = vec![0i8; n];
            requant(true, &xs, &q, zp, lo, hi, &mut fast);
            requant(false, &xs, &q, zp, lo, hi, &mut slow);
            prop_assert_eq!(&fast, &slow);
            for j in 0..n {
                let want = rq[j].apply(xs[j].wrapping_add(bias[j])).saturating_add(zp).clamp(lo, hi) as i8;
                prop_assert_eq!(slow[j], want);
            }
        }

        #[test]
        fn avx2_table_lookup_equals_indexing(a in prop::collection::vec(any::<i8>(), 0..70), seed in any::<u64>()) {
            if !has_avx2() {
                eprintln!("skipped: this CPU lacks AVX2, so the AVX2 lookup cannot run here");
                return Ok(());
            }
            let b: Vec<i8> = a.iter().rev().map(|&v| v.wrapping_mul(3)).collect();
            let mut s = seed | 1;
            let table: Vec<i8> = (0..65536 + 3).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as i8 }).collect();
            let mut out = vec![0i8; a.len()];
            lookup2_avx2(&a, &b, &table, &mut out);
            for i in 0..a.len() {
                prop_assert_eq!(out[i], table[((i32::from(a[i]) + 128) as usize) << 8 | (i32::from(b[i]) + 128) as usize], "element {}", i);
            }
        }
    }

    #[test]
    fn requant_extremes() {
        let xs = [i32::MIN, i32::MAX, -1, 0, 1, 1 << 30, -(1 << 30), 12345, -54321, i32::MIN + 1, 7, -7, 1 << 24, -(1 << 24), 3, -3];
        for &(m, s) in &[(1 << 30, 1), (i32::MAX, 30), (1 << 30, -31), (1_500_000_000, -5), (0, 0), (1 << 30, 10)] {
            let q = RequantVec { bias: vec![0; 16], mult: vec![m; 16], left: vec![s.max(0); 16], right: vec![(-s).max(0); 16] };
            let mut fast = vec![0i8; 16];
            let mut slow = vec![0i8; 16];
            requant(true, &xs, &q, 3, -128, 127, &mut fast);
            requant(false, &xs, &q, 3, -128, 127, &mut slow);
            assert_eq!(fast, slow, "m {m} s {s}");
        }
    }

    #[test]
    fn pool_covers_every_chunk_once() {
        let mut pool = Pool::new(vec![0u64; 3]).unwrap();
        assert_eq!(pool.threads(), 3);
        let mut out = vec![0i8; 1000];
        for round in 0..50 {
            pool.run(&mut out, 7, &|count, i, chunk| {
                *count += 1;
                for b in chunk.iter_mut() {
                    *b = ((i % 100) as i8).wrapping_add(round as i8);
                }
            });
            for (k, b) in out.iter().enumerate() {
                assert_eq!(*b, (((k / 7) % 100) as i8).wrapping_add(round as i8));
            }
        }
    }
}
