//! The plan swap at a frame boundary: the pipeline thread polls every frame while the
//! OTA thread publishes new plans; the pipeline only ever runs whole plans, sees every
//! generation in order, and never allocates or frees (counted by a per-thread counting
//! allocator around the system allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ota::client::plan_channel;

struct Counting;

thread_local! {
    static OPS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = OPS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the only addition is a thread-local counter (const
// initialised, no destructor, never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        bump();
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        bump();
        // SAFETY: `p` came from `System` with layout `l`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// A "plan": generation number repeated through a buffer, so a torn plan is detectable.
fn plan(g: u64) -> Vec<u64> {
    vec![g; 4096]
}

#[test]
fn pipeline_swaps_whole_plans_without_allocating() {
    let (mut publisher, mut receiver) = plan_channel::<Vec<u64>>(4);
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let pipeline = std::thread::spawn(move || {
        let mut current = plan(0);
        let mut last = 0u64;
        let mut swaps = 0u64;
        let before = OPS.with(Cell::get);
        let mut frames = 0u64;
        while !d2.load(Ordering::Acquire) || frames < 1000 {
            if receiver.at_frame_boundary(&mut current) {
                swaps += 1;
            }
            // The frame runs on one whole plan.
            let g = current[0];
            assert!(current.iter().all(|&x| x == g), "torn plan at frame {frames}");
            assert!(g >= last, "plan generation went back: {g} after {last}");
            last = g;
            frames += 1;
            std::hint::spin_loop();
        }
        // Take the final plan too.
        receiver.at_frame_boundary(&mut current);
        let allocs = OPS.with(Cell::get) - before;
        (allocs, swaps, current[0], frames)
    });
    let mut published = 0u64;
    for g in 1..=200u64 {
        let mut p = plan(g);
        loop {
            match publisher.publish(p) {
                Ok(_) => break,
                Err(back) => {
                    p = back;
                    std::thread::yield_now();
                }
            }
        }
        published = g;
        if g % 20 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    // Wait until the pipeline runs the last plan.
    while publisher.applied_generation() < published {
        std::thread::yield_now();
    }
    done.store(true, Ordering::Release);
    let (allocs, swaps, final_gen, frames) = pipeline.join().unwrap();
    publisher.collect_garbage();
    assert_eq!(final_gen, 200, "the pipeline ends on the newest plan");
    assert!(swaps > 0 && frames >= 1000);
    assert_eq!(allocs, 0, "the pipeline thread allocated or freed {allocs} times while polling and swapping");
}
