//! Executor overhead per frame job: submit + dispatch (EDF + admission) + complete, with
//! an empty job, on the monotonic clock and on the virtual clock. Target: <= 5 us.
#![allow(missing_docs)] // reason: criterion_group! generates an undocumented pub fn.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use scheduler::clock::{micros, millis};
use scheduler::*;

const CAMERAS: usize = 8;

fn config() -> ExecutorConfig {
    ExecutorConfig { cameras: CAMERAS, variants: 3, margin: micros(200), watchdog_grace: millis(1) }
}

/// One pass over 8 cameras: 8 submits, 8 dispatches, 8 completions; `work` stands for
/// the job itself.
fn pass<C: Clock + Clone, M: ExecTimeModel>(
    exec: &mut Executor<u64, C, M>,
    now: Instant,
    frame: u64,
    mut work: impl FnMut(usize),
) -> u64 {
    for cam in 0..CAMERAS {
        let _ = exec.submit(FrameJob { camera: cam, capture: now, deadline: now + millis(50), payload: frame });
    }
    let mut done = 0;
    loop {
        match exec.dispatch() {
            Next::Run(job) => {
                work(job.camera);
                let (c, p) = exec.complete(job, JobStatus::Finished);
                black_box((c, p));
                done += 1;
            }
            Next::Skip(s) => {
                black_box(s);
            }
            Next::Idle => break,
        }
    }
    done
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("executor");
    g.throughput(criterion::Throughput::Elements(CAMERAS as u64));

    let clock = MonotonicClock;
    let mut exec = Executor::new(config(), clock, OnlineEstimator::new(&[millis(4), millis(2), millis(1)]));
    let mut frame = 0u64;
    g.bench_function("8 jobs, monotonic clock", |b| {
        b.iter(|| {
            frame += 1;
            black_box(pass(&mut exec, clock.now(), frame, |_| {}))
        })
    });

    let mut mexec = Executor::new(config(), clock, ModelledTimes::new(&[millis(4), millis(2), millis(1)]));
    g.bench_function("8 jobs, monotonic clock, modelled times (no estimator)", |b| {
        b.iter(|| {
            frame += 1;
            black_box(pass(&mut mexec, clock.now(), frame, |_| {}))
        })
    });

    let vclock = VirtualClock::new(Instant::from_ticks(1));
    let mut vexec = Executor::new(config(), vclock.clone(), OnlineEstimator::new(&[millis(4), millis(2), millis(1)]));
    g.bench_function("8 jobs, virtual clock", |b| {
        b.iter_batched(
            || vclock.advance(millis(1)),
            |now| {
                frame += 1;
                // Modelled job times that vary, so the estimator's percentile does real work.
                let f = frame;
                black_box(pass(&mut vexec, now, frame, |cam| {
                    vclock.advance(micros(100 + (f * 31 + cam as u64 * 7) % 900));
                }))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // What one clock read costs here (the executor reads the clock twice per job).
    let mut g = c.benchmark_group("clock");
    g.bench_function("MonotonicClock::now (rustix CLOCK_MONOTONIC)", |b| b.iter(|| black_box(MonotonicClock.now())));
    g.bench_function("std::time::Instant::now (peer)", |b| b.iter(|| black_box(std::time::Instant::now())));
    g.bench_function("VirtualClock::now", |b| b.iter(|| black_box(vclock.now())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
