//! The steady-state deliver/consume loop allocates nothing: proven with a counting
//! global allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pipeline::passthrough::{drive, Pace};
use pipeline::source::{CameraSource, Delivery, SyntheticSource};

struct Counting;

thread_local! {
    // Const-initialised and without a destructor: reading them never allocates. The count is
    // per thread too: tests of this binary run in parallel, and a shared counter would add
    // another test's counted allocations to this one's window.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; the flag and the counter are const thread-locals without
// destructors, neither of which allocates or unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same layout the caller gave us, forwarded to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump();
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: `ptr`/`layout` come from `alloc` above; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCATIONS.with(Cell::get) - before)
}

#[test]
fn the_counter_sees_allocations() {
    let (v, n) = counted(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(n >= 1, "a Vec allocation must be counted");
}

#[test]
fn steady_state_deliver_and_consume_allocate_nothing() {
    let rig = rig::calib::Rig::builtin();
    let mut cams = SyntheticSource::for_rig(&rig, 5, 36.0, 3, None);
    // Warm up: every slot has been through the rings once.
    for _ in 0..10 {
        for (src, rx) in cams.iter_mut() {
            src.deliver();
            rx.take_newest();
        }
    }
    let (sum, allocs) = counted(|| {
        let mut sum = 0u64;
        for i in 0..2000u32 {
            for (src, rx) in cams.iter_mut() {
                // Every other round the consumer is slow: two deliveries, newest taken.
                if i % 2 == 0 {
                    assert!(matches!(src.deliver(), Delivery::Delivered(_)));
                }
                assert!(matches!(src.deliver(), Delivery::Delivered(_)));
                let f = rx.take_newest().expect("a frame was delivered");
                sum += u64::from(f.pixels[f.pixels.len() / 2]);
            }
        }
        sum
    });
    assert_eq!(allocs, 0, "steady-state loop allocated {allocs} times");
    std::hint::black_box(sum);
    for (_, rx) in &cams {
        assert!(rx.stats().superseded >= 1000, "slow rounds supersede a frame each");
    }
}

#[test]
fn the_drive_stage_loop_allocates_nothing_per_frame() {
    // Allocations of a whole virtual-clock drive do not grow with the number of frames:
    // setup allocates a fixed amount, each frame nothing.
    let rig = rig::calib::Rig::builtin();
    let run = |frames: u64| {
        let (mut srcs, mut rxs): (Vec<_>, Vec<_>) = SyntheticSource::for_rig(&rig, 1, 36.0, 2, Some(frames)).into_iter().unzip();
        let (staged, allocs) = counted(|| {
            let mut staged = 0u64;
            drive(&mut srcs, &mut rxs, Pace::Max, |_, _| staged += 1);
            staged
        });
        assert_eq!(staged, frames * srcs.len() as u64);
        allocs
    };
    let short = run(10);
    let long = run(1000);
    assert_eq!(short, long, "allocations grew with frames: {short} for 10 frames, {long} for 1000");
}
