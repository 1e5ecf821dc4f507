//! Publishing and reading allocate nothing after start-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use control::*;

struct Counting;
static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator with the same arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn publish_and_read_do_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seg");
    let (mut tx, rx) = channel();
    let mut shm = ShmPublisher::create(&path).unwrap();
    let shm_rx = ShmReader::open(&path).unwrap();
    let mut s = Snapshot::default();
    ARMED.store(true, Ordering::SeqCst);
    for k in 0..10_000u64 {
        s.model_version = k;
        s.publish_ns = now_ns();
        tx.publish(&mut s);
        shm.publish(&mut s);
        let a = rx.read().unwrap();
        let b = shm_rx.read().unwrap();
        assert!(a.sequence == k + 1 && b.sequence == k + 1);
    }
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0);
}
