//! The hot path does not allocate after start-up: executor, estimator, ladder,
//! governor and energy model in a steady-state loop under a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use scheduler::clock::{micros, millis, secs};
use scheduler::governor::{EnergyModel, Governor, GovernorConfig, PowerSensor, ThermalParams};
use scheduler::*;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if ARMED.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the same arguments; the
// counting is a relaxed atomic add and a thread-local read, which do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_hot_loop_does_not_allocate() {
    let cams: Vec<CameraSpec> = (0..8)
        .map(|i| CameraSpec {
            criticality: [Criticality::High, Criticality::Medium, Criticality::Low][i % 3],
            nominal_fps: 36.0,
            min_fps: 9.0,
        })
        .collect();
    let clock = VirtualClock::new(Instant::from_ticks(1));
    let cfg = ExecutorConfig { cameras: 8, variants: 3, margin: micros(200), watchdog_grace: millis(1) };
    let mut exec = Executor::new(cfg, clock.clone(), OnlineEstimator::new(&[millis(4), millis(2), millis(1)]));
    let mut ladder = Ladder::new(LadderConfig::new(cams, 3)).unwrap();
    let mut energy = EnergyModel::new(8.0, &[0.12, 0.05, 0.02], secs(1));
    let thermal = ThermalParams { ambient_c: 40.0, r_c_per_w: 1.0, tau_s: 20.0, throttle_c: 95.0, margin_c: 5.0, horizon_s: 5.0 };
    let mut gov = Governor::new(GovernorConfig { cap_w: 25.0, window: secs(1), thermal: Some(thermal) });
    let period = Duration::from_ticks(27_777_777);

    let mut frame = 0u64;
    let mut transitions = 0usize;
    let mut run = |iterations: u64, armed: bool| {
        ARMED.with(|a| a.set(armed));
        for _ in 0..iterations {
            frame += 1;
            let capture = Instant::from_ticks(frame * period.ticks());
            clock.set(capture);
            for cam in 0..8 {
                let _ = exec.submit(FrameJob { camera: cam, capture, deadline: capture + millis(30), payload: frame });
            }
            loop {
                match exec.dispatch() {
                    Next::Run(job) => {
                        // A kernel whose time varies with the frame (and sometimes overruns).
                        let cost = micros(500 + (frame * 7919 + job.camera as u64 * 104_729) % 5_000);
                        clock.advance(cost);
                        let status = if job.token.is_cancelled() { JobStatus::Cancelled } else { JobStatus::Finished };
                        let variant = job.variant;
                        let (c, _frame) = exec.complete(job, status);
                        if matches!(c, Completion::OnTime { .. }) {
                            energy.on_job(clock.now(), variant);
                        }
                    }
                    Next::Skip(_) => {}
                    Next::Idle => break,
                }
            }
            if frame.is_multiple_of(4) {
                let now = clock.now();
                let reading = energy.read(now).unwrap();
                let g = gov.update(now, reading);
                let stats = exec.take_stats();
                if ladder.update(now, g.pressure(stats.miss_ratio())).is_some() {
                    transitions += 1;
                    ladder.apply(&mut exec);
                }
                ladder.drain_events(|e| {
                    std::hint::black_box(e);
                });
                let _ = exec.take_degraded();
            }
        }
        ARMED.with(|a| a.set(false));
    };
    run(200, false);
    run(5_000, true);
    let n = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(n, 0, "{n} allocations in the steady-state loop");
    assert!(transitions > 0, "the loop must exercise the ladder too");
}
