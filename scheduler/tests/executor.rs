//! Executor behaviour, reproduced exactly on a virtual clock.

use scheduler::clock::{micros, millis};
use scheduler::*;

fn cfg(cameras: usize) -> ExecutorConfig {
    ExecutorConfig { cameras, variants: 3, margin: micros(100), watchdog_grace: Duration::from_ticks(0) }
}

fn at(ms: u64) -> Instant {
    Instant::from_ticks(ms * 1_000_000)
}

/// Variant costs: full 10 ms, lite 4 ms, floor 1 ms.
fn model() -> ModelledTimes {
    ModelledTimes::new(&[millis(10), millis(4), millis(1)])
}

fn job(camera: CameraId, capture_ms: u64, deadline_ms: u64) -> FrameJob<u32> {
    FrameJob { camera, capture: at(capture_ms), deadline: at(deadline_ms), payload: (camera as u32) * 1000 + capture_ms as u32 }
}

/// Runs the job to completion in `cost` of virtual time.
fn run(exec: &mut Executor<u32, VirtualClock, ModelledTimes>, clock: &VirtualClock, j: Job<u32, VirtualClock>) -> Completion {
    let cost = exec.model().cost(j.variant);
    clock.advance(cost);
    exec.complete(j, JobStatus::Finished).0
}

#[test]
fn earliest_deadline_first_with_criticality_tie_break() {
    let clock = VirtualClock::new(at(0));
    let mut exec = Executor::new(cfg(4), clock.clone(), model());
    exec.set_policy(2, CameraPolicy { priority: 2, ..CameraPolicy::default() });
    assert_eq!(exec.submit(job(0, 0, 90)), Submitted::Queued);
    assert_eq!(exec.submit(job(1, 0, 30)), Submitted::Queued);
    assert_eq!(exec.submit(job(3, 0, 60)), Submitted::Queued);
    assert_eq!(exec.submit(job(2, 0, 60)), Submitted::Queued);
    let mut order = Vec::new();
    loop {
        match exec.dispatch() {
            Next::Run(j) => {
                order.push(j.camera);
                assert_eq!(run(&mut exec, &clock, j), Completion::OnTime {
                    latency: since_start(&clock),
                    took: millis(10)
                });
            }
            Next::Skip(s) => panic!("unexpected skip {s:?}"),
            Next::Idle => break,
        }
    }
    // Deadlines 30 < 60 = 60 < 90; camera 2 outranks camera 3 on the tie.
    assert_eq!(order, vec![1, 2, 3, 0]);
}

fn since_start(clock: &VirtualClock) -> Duration {
    Duration::from_ticks(clock.now().ticks())
}

#[test]
fn newer_frame_replaces_the_pending_one() {
    let clock = VirtualClock::new(at(0));
    let mut exec = Executor::new(cfg(2), clock.clone(), model());
    assert_eq!(exec.submit(job(0, 0, 50)), Submitted::Queued);
    assert_eq!(exec.submit(job(0, 28, 78)), Submitted::Replaced(0));
    assert_eq!(exec.pending(), 1);
    assert_eq!(exec.submit(job(5, 0, 50)), Submitted::UnknownCamera(5000));
    let Next::Run(j) = exec.dispatch() else { panic!("expected a job") };
    assert_eq!(j.payload, 28, "the newest frame runs");
    assert_eq!(exec.take_stats().replaced, 1);
}

#[test]
fn admission_degrades_then_skips_exactly_at_the_boundary() {
    let clock = VirtualClock::new(at(0));
    let mut exec = Executor::new(cfg(1), clock.clone(), model());

    // 20 ms left: the full variant (10 ms + 0.1 ms margin) fits.
    exec.submit(job(0, 0, 20));
    let Next::Run(j) = exec.dispatch() else { panic!() };
    assert_eq!((j.variant, j.degraded()), (VariantId(0), false));
    run(&mut exec, &clock, j); // now = 10 ms

    // Deadline 20.099 ms: 10.099 ms left < 10.1 ms needed -> lite (4.1 ms) instead.
    exec.submit(FrameJob { camera: 0, capture: at(10), deadline: Instant::from_ticks(20_099_000), payload: 1 });
    let Next::Run(j) = exec.dispatch() else { panic!() };
    assert_eq!((j.variant, j.preferred, j.degraded()), (VariantId(1), VariantId(0), true));
    run(&mut exec, &clock, j); // now = 14 ms

    // Exactly 10.1 ms left: the full variant fits (deadline inclusive).
    exec.submit(FrameJob { camera: 0, capture: at(14), deadline: Instant::from_ticks(24_100_000), payload: 2 });
    let Next::Run(j) = exec.dispatch() else { panic!() };
    assert_eq!(j.variant, VariantId(0));
    run(&mut exec, &clock, j); // now = 24 ms

    // 1.099 ms left: even the floor variant (1.1 ms) misses -> skipped before it starts.
    exec.submit(FrameJob { camera: 0, capture: at(24), deadline: Instant::from_ticks(25_099_000), payload: 3 });
    match exec.dispatch() {
        Next::Skip(s) => assert_eq!(s, Skipped { camera: 0, reason: SkipReason::PredictedMiss, payload: 3 }),
        other => panic!("expected a skip, got {other:?}"),
    }
    // Deadline already passed -> expired.
    exec.submit(job(0, 20, 24));
    match exec.dispatch() {
        Next::Skip(s) => assert_eq!(s.reason, SkipReason::Expired),
        other => panic!("expected expiry, got {other:?}"),
    }
    let st = exec.take_stats();
    assert_eq!((st.on_time, st.degraded, st.predicted_miss, st.expired), (3, 1, 1, 1));
    assert!((st.miss_ratio() - 0.4).abs() < 1e-6);
    assert_eq!(exec.take_stats(), LoadStats::default(), "take_stats resets");
}

#[test]
fn ladder_policy_caps_the_variant_and_decimates_the_rate() {
    let clock = VirtualClock::new(at(0));
    let mut exec = Executor::new(cfg(1), clock.clone(), model());
    // Preferred lite; 18 fps: frames at 36 fps are taken every other one.
    exec.set_policy(0, CameraPolicy { variant: VariantId(1), min_interval: Duration::from_ticks(55_555_555), priority: 0 });
    let mut ran = Vec::new();
    for k in 0..8u64 {
        let capture = Instant::from_ticks(k * 27_777_777);
        clock.set(capture);
        match exec.submit(FrameJob { camera: 0, capture, deadline: capture + millis(50), payload: k as u32 }) {
            Submitted::Queued => {}
            Submitted::Decimated(p) => {
                assert_eq!(p, k as u32);
                continue;
            }
            other => panic!("{other:?}"),
        }
        let Next::Run(j) = exec.dispatch() else { panic!() };
        assert_eq!(j.variant, VariantId(1), "never larger than the ladder allows");
        ran.push(j.payload);
        run(&mut exec, &clock, j);
    }
    assert_eq!(ran, vec![0, 2, 4, 6]);
    assert_eq!(exec.take_stats().decimated, 4);
}

#[test]
fn watchdog_drops_an_overrun_and_does_not_delay_the_next_job() {
    let clock = VirtualClock::new(at(0));
    let mut exec = Executor::new(cfg(2), clock.clone(), model());
    exec.submit(job(0, 0, 15));
    exec.submit(job(1, 0, 40));
    let Next::Run(j) = exec.dispatch() else { panic!() };
    assert_eq!(j.camera, 0);
    assert_eq!(j.token.kill_at(), at(15));
    // The kernel is 10x slower than modelled: it polls its token every millisecond.
    let mut polls = 0;
    while !j.token.is_cancelled() {
        clock.advance(millis(1));
        polls += 1;
        assert!(polls < 1000, "token never fired");
    }
    assert_eq!(clock.now(), at(15), "the token fires exactly at the deadline");
    let (c, payload) = exec.complete(j, JobStatus::Cancelled);
    assert_eq!(c, Completion::Dropped { reason: DropReason::Cancelled, took: millis(15) });
    assert_eq!(payload, 0);
    assert!(exec.take_degraded(), "the snapshot is marked degraded");
    assert!(!exec.take_degraded());

    // The next job starts now, with its own full budget.
    let Next::Run(j) = exec.dispatch() else { panic!() };
    assert_eq!((j.camera, j.started, j.variant), (1, at(15), VariantId(0)));
    assert_eq!(run(&mut exec, &clock, j), Completion::OnTime { latency: millis(25), took: millis(10) });
}

#[test]
fn a_result_after_the_watchdog_instant_is_dropped_even_if_the_job_ignored_its_token() {
    let cfg = ExecutorConfig { watchdog_grace: millis(2), ..cfg(1) };
    let clock2 = VirtualClock::new(at(0));
    let mut exec2 = Executor::new(cfg, clock2.clone(), OnlineEstimator::new(&[millis(5), millis(2), millis(1)]));
    exec2.submit(job(0, 0, 10));
    let Next::Run(j) = exec2.dispatch() else { panic!() };
    clock2.advance(millis(11));
    assert!(matches!(exec2.complete(j, JobStatus::Finished).0, Completion::OnTime { .. }), "within grace");
    exec2.submit(job(0, 20, 40));
    clock2.set(at(20));
    let Next::Run(j) = exec2.dispatch() else { panic!() };
    clock2.advance(millis(50));
    let (c, _) = exec2.complete(j, JobStatus::Finished);
    assert_eq!(c, Completion::Dropped { reason: DropReason::Watchdog, took: millis(50) });
    // The overrun teaches the estimator: the next full-variant prediction is pessimistic.
    assert_eq!(exec2.model().p95(VariantId(0)), millis(50));
}

#[test]
fn a_supervisor_thread_can_fire_the_watchdog() {
    let clock = VirtualClock::new(at(0));
    let mut exec = Executor::new(cfg(1), clock.clone(), model());
    let wd = exec.watchdog();
    assert!(!wd.check(at(100)), "nothing armed");
    exec.submit(job(0, 0, 15));
    let Next::Run(j) = exec.dispatch() else { panic!() };
    // A token that does not consult the clock any more (the instant has not come) ...
    assert!(!j.token.is_cancelled());
    let handle = std::thread::spawn(move || wd.check(at(15)));
    assert!(handle.join().unwrap(), "the supervisor saw the kill instant pass");
    // ... is cancelled by the supervisor even though the job's clock is still at 0.
    assert!(j.token.is_cancelled());
    let (c, _) = exec.complete(j, JobStatus::Cancelled);
    assert!(matches!(c, Completion::Dropped { reason: DropReason::Cancelled, .. }));
}

#[test]
fn a_failed_backend_is_a_drop() {
    let clock = VirtualClock::new(at(0));
    let mut exec = Executor::new(cfg(1), clock.clone(), model());
    exec.submit(job(0, 0, 50));
    let Next::Run(j) = exec.dispatch() else { panic!() };
    let (c, _) = exec.complete(j, JobStatus::Failed);
    assert!(matches!(c, Completion::Dropped { reason: DropReason::Failed, .. }));
    assert_eq!(exec.take_stats().dropped, 1);
}

/// The same inputs on the virtual clock give the same decisions, run after run.
#[test]
fn decisions_replay_exactly() {
    fn trace() -> Vec<(usize, u8, u64)> {
        let clock = VirtualClock::new(at(0));
        let mut exec = Executor::new(cfg(8), clock.clone(), model());
        let mut out = Vec::new();
        for frame in 0..200u64 {
            let capture = Instant::from_ticks(frame * 27_777_777);
            clock.set(capture);
            for cam in 0..8 {
                let _ = exec.submit(FrameJob { camera: cam, capture, deadline: capture + millis(25), payload: 0u32 });
            }
            loop {
                match exec.dispatch() {
                    Next::Run(j) => {
                        out.push((j.camera, j.variant.0, j.started.ticks()));
                        run(&mut exec, &clock, j);
                    }
                    Next::Skip(s) => out.push((s.camera, 255, clock.now().ticks())),
                    Next::Idle => break,
                }
                if clock.now() >= capture + Duration::from_ticks(27_777_777) {
                    break;
                }
            }
        }
        out
    }
    let a = trace();
    for v in [0, 1, 255] {
        assert!(a.iter().any(|x| x.1 == v), "the load mixes variants and skips: {:?}", &a[..20]);
    }
    assert_eq!(a, trace());
}
