//! `Cpu::run` does not allocate after `prepare`: a counting global allocator sees zero
//! allocations (on any thread) across several batched runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kernels::backend::Backend;
use kernels::cpu::{Cpu, Isa};
use kernels::plan::Candidates;
use kernels::synth::{centernet_lite, random_frame};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn run_does_not_allocate_after_prepare() {
    let plan = centernet_lite(64, 96, 3).unwrap();
    let frames: Vec<Vec<u8>> = (0..3).map(|i| random_frame(&plan, i)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let mut out = vec![Candidates::with_capacity(plan.heads.max_candidates as usize); 3];
    // Every instruction-set level the CPU has (`with_isa` caps at the detected one).
    for (threads, isa) in [1, 2].into_iter().flat_map(|t| [Isa::Avx512, Isa::Avx2, Isa::Portable].map(|i| (t, i))) {
        let mut be = Cpu::with_isa(threads, isa);
        let mut p = be.prepare(&plan, 3).unwrap();
        be.run(&mut p, &refs, &mut out).unwrap();
        let before = ALLOCS.load(Ordering::SeqCst);
        for _ in 0..5 {
            be.run(&mut p, &refs, &mut out).unwrap();
        }
        let after = ALLOCS.load(Ordering::SeqCst);
        assert_eq!(after - before, 0, "{} allocations during 5 runs on {threads} threads ({:?})", after - before, be.isa());
    }
    assert!(out.iter().any(|o| !o.is_empty()), "the plan produced no candidates; the test would prove little");
}
