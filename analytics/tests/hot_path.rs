//! The hot path allocates nothing: a counting global allocator watches the recording thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use analytics::Event;
use analytics::shadow::{ShadowCompare, ShadowDet};
use analytics::tap::tap_ring;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counter is a relaxed atomic and the thread-local is a `const` Cell without destructor,
// so neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHED.with(|w| w.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHED.with(|w| w.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn watched<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCS.load(Ordering::Relaxed);
    WATCHED.with(|w| w.set(true));
    let r = f();
    WATCHED.with(|w| w.set(false));
    (r, ALLOCS.load(Ordering::Relaxed) - before)
}

#[test]
fn record_and_shadow_compare_do_not_allocate() {
    let (mut tap, mut reader) = tap_ring(1024);
    let champ: Vec<ShadowDet> = (0..20).map(|i| ShadowDet { class: i % 3, confidence: 0.8, bbox: [i as f32 * 20.0, 0.0, i as f32 * 20.0 + 15.0, 15.0] }).collect();
    let chall = champ.clone();
    let cmp = ShadowCompare::default();
    let ((pushed, dropped), allocs) = watched(|| {
        let mut pushed = 0;
        // 4000 events into a 1024 ring: both the push and the counted-drop path run.
        for i in 0..4000u64 {
            pushed += tap.record(Event::frame_latency(i, (i % 8) as u8, 0, 18_000)) as u32;
            if i % 100 == 0 {
                let r = cmp.compare(&champ, &chall);
                for e in r.events(i, 0, 1) {
                    tap.record(e);
                }
            }
        }
        (pushed, tap.dropped())
    });
    assert_eq!(allocs, 0, "the hot path allocated {allocs} times");
    // 4000 latency events + 40 comparisons x 2 events, 1024 fit.
    assert!(pushed <= 1024);
    assert_eq!(dropped, 4000 + 80 - 1024);
    let mut n = 0;
    reader.drain(|_| n += 1);
    assert_eq!(n, 1024);
    // Room again after draining.
    assert!(tap.record(Event::frame_skip(1, 1)));
}
