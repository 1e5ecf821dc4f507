//! The only module of `kernels` with `unsafe` code: AVX2 intrinsics and the fixed thread pool.
//!
//! Everything exported here is a *safe* function or type whose preconditions are checked on
//! entry (slice lengths, CPU features), so the rest of the crate stays `#![deny(unsafe_code)]`.
//!
//! * [`Pool`]: `n - 1` worker threads started once; [`Pool::run`] splits an output slice into
//!   disjoint chunks and hands each to one call of a borrowed closure, on the workers and the
//!   calling thread. No allocation, no lock per run (atomics, spin then park).
//! * [`gemm_indirect`], [`requant`]: the int8 GEMM micro-kernel and the vector requantisation, with
//!   an AVX2 path chosen at run time and a portable path with identical results.
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
pub fn gemm_indirect(avx2: bool, x: &[i16], offs: &[usize], taps: usize, seg2: usize, w: &[i16], blocks: usize, acc: &mut [i32]) {
    let k2 = taps * seg2;
    assert!(seg2.is_multiple_of(2) && offs.len() >= 4 * taps && w.len() >= blocks * k2 * 8 && acc.len() >= 4 * blocks * 8, "gemm_indirect: bad slice lengths");
    assert!(offs[..4 * taps].iter().all(|&o| o.checked_add(seg2).is_some_and(|e| e <= x.len())), "gemm_indirect: segment outside x");
    #[cfg(target_arch = "x86_64")]
    if avx2 && has_avx2() {
        // SAFETY: AVX2 is present; every segment `offs[i]..offs[i] + seg2` lies in `x` and
        // the weight and accumulator lengths were checked above; the kernel stays inside them.
        unsafe { gemm_indirect_avx2(x, offs, taps, seg2, w, blocks, acc) };
        return;
    }
    let _ = avx2;
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gemm_indirect_avx2(x: &[i16], offs: &[usize], taps: usize, seg2: usize, w: &[i16], blocks: usize, acc: &mut [i32]) {
    use std::arch::x86_64::*;
    let k2 = taps * seg2;
    let kh = k2 / 2;
    let sh = seg2 / 2;
    let n = blocks * 8;
    let xp = x.as_ptr();
    let wp = w.as_ptr();
    let ap = acc.as_mut_ptr();
    let bc = |base: *const i16, k: usize| {
        // SAFETY: `base` is a checked segment start and k < seg2 / 2, so the 4 bytes at 2k
        // are inside the segment.
        unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(base.add(2 * k) as *const i32)) }
    };
    let mut b = 0;
    while b + 2 <= blocks {
        let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
        let (mut b0, mut b1, mut b2, mut b3) = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
        for t in 0..taps {
            // SAFETY: offsets were checked against `x` by the caller.
            let (p0, p1, p2, p3) = unsafe { (xp.add(offs[4 * t]), xp.add(offs[4 * t + 1]), xp.add(offs[4 * t + 2]), xp.add(offs[4 * t + 3])) };
            for k in 0..sh {
                let kk = t * sh + k;
                // SAFETY: blocks b and b+1 exist and kk < k2 / 2, inside the checked `w`.
                let (wa, wb) = unsafe { (_mm256_loadu_si256(wp.add((b * kh + kk) * 16) as *const __m256i), _mm256_loadu_si256(wp.add(((b + 1) * kh + kk) * 16) as *const __m256i)) };
                let v = bc(p0, k);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(v, wa));
                b0 = _mm256_add_epi32(b0, _mm256_madd_epi16(v, wb));
                let v = bc(p1, k);
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(v, wa));
                b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(v, wb));
                let v = bc(p2, k);
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(v, wa));
                b2 = _mm256_add_epi32(b2, _mm256_madd_epi16(v, wb));
                let v = bc(p3, k);
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(v, wa));
                b3 = _mm256_add_epi32(b3, _mm256_madd_epi16(v, wb));
            }
        }
        // SAFETY: p * n + b * 8 + 16 <= 4 * n <= acc.len().
        unsafe {
            for (p, (ra, rb)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].into_iter().enumerate() {
                _mm256_storeu_si256(ap.add(p * n + b * 8) as *mut __m256i, ra);
                _mm256_storeu_si256(ap.add(p * n + b * 8 + 8) as *mut __m256i, rb);
            }
        }
        b += 2;
    }
    if b < blocks {
        let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
        for t in 0..taps {
            // SAFETY: offsets were checked against `x` by the caller.
            let (p0, p1, p2, p3) = unsafe { (xp.add(offs[4 * t]), xp.add(offs[4 * t + 1]), xp.add(offs[4 * t + 2]), xp.add(offs[4 * t + 3])) };
            for k in 0..sh {
                // SAFETY: block b exists; index inside the checked `w`.
                let wa = unsafe { _mm256_loadu_si256(wp.add((b * kh + t * sh + k) * 16) as *const __m256i) };
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(bc(p0, k), wa));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(bc(p1, k), wa));
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(bc(p2, k), wa));
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(bc(p3, k), wa));
            }
        }
        // SAFETY: p * n + b * 8 + 8 <= 4 * n <= acc.len().
        unsafe {
            for (p, r) in [a0, a1, a2, a3].into_iter().enumerate() {
                _mm256_storeu_si256(ap.add(p * n + b * 8) as *mut __m256i, r);
            }
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
    let one = _mm256_set1_epi32(1);
    let imax = _mm256_set1_epi32(i32::MAX);
    let imin = _mm256_set1_epi32(i32::MIN);
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even64 = _mm256_set1_epi64x(1);
    let cap_hi = _mm256_set1_epi32(1 << 24);
    let cap_lo = _mm256_set1_epi32(-(1 << 24));
    let (vzp, vlo, vhi) = (_mm256_set1_epi32(zp), _mm256_set1_epi32(lo), _mm256_set1_epi32(hi));
    let mut j = 0;
    while j < n {
        let x = _mm256_add_epi32(ld(acc, j), ld(&q.bias, j));
        let (m, left, right) = (ld(&q.mult, j), ld(&q.left, j), ld(&q.right, j));
        // Saturating left shift.
        let sh = _mm256_sllv_epi32(x, left);
        let ok = _mm256_cmpeq_epi32(_mm256_srav_epi32(sh, left), x);
        let sat = _mm256_blendv_epi8(imax, imin, _mm256_srai_epi32(x, 31));
        let x = _mm256_blendv_epi8(sat, sh, ok);
        // Rounding doubling high multiply, multiplier >= 0: sign from x, magnitude via u64.
        let neg = _mm256_srai_epi32(x, 31);
        let ax = _mm256_abs_epi32(x);
        let n1 = _mm256_and_si256(neg, one);
        let pe = _mm256_mul_epu32(ax, m);
        let po = _mm256_mul_epu32(_mm256_srli_epi64(ax, 32), _mm256_srli_epi64(m, 32));
        let ne = _mm256_and_si256(n1, even64);
        let no = _mm256_srli_epi64(n1, 32);
        let re = _mm256_srli_epi64(_mm256_add_epi64(pe, _mm256_sub_epi64(nudge, ne)), 31);
        let ro = _mm256_srli_epi64(_mm256_add_epi64(po, _mm256_sub_epi64(nudge, no)), 31);
        let r = _mm256_blend_epi32(re, _mm256_slli_epi64(ro, 32), 0b1010_1010);
        let y = _mm256_sub_epi32(_mm256_xor_si256(r, neg), neg);
        // Rounding divide by 2^right, half away from zero.
        let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
        let rem = _mm256_and_si256(y, mask);
        let thr = _mm256_add_epi32(_mm256_srli_epi32(mask, 1), _mm256_and_si256(_mm256_srai_epi32(y, 31), one));
        let z = _mm256_add_epi32(_mm256_srav_epi32(y, right), _mm256_and_si256(_mm256_cmpgt_epi32(rem, thr), one));
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
        fn avx2_indirect_gemm_equals_portable(taps in 1usize..10, seg_half in 1usize..20, blocks in 1usize..5, seed in any::<u64>()) {
            let seg2 = 2 * seg_half;
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            // Segments at scattered offsets (overlapping is fine: read-only).
            let x: Vec<i16> = (0..64 + seg2 * 6).map(|_| (next() % 511) as i16 - 255).collect();
            let offs: Vec<usize> = (0..4 * taps).map(|_| next() as usize % (x.len() - seg2 + 1)).collect();
            let w: Vec<i16> = (0..blocks * taps * seg2 * 8).map(|_| (next() % 256) as i16 - 128).collect();
            let mut a = vec![0i32; 4 * blocks * 8];
            let mut b = vec![0i32; 4 * blocks * 8];
            gemm_indirect(true, &x, &offs, taps, seg2, &w, blocks, &mut a);
            gemm_indirect(false, &x, &offs, taps, seg2, &w, blocks, &mut b);
            prop_assert_eq!(a, b);
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
