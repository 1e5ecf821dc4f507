//! Executor overhead per frame job: submit + dispatch (EDF + admission) + complete, with
//! an empty job, on the monotonic clock and on the virtual clock. Target: <= 5 us.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use scheduler::clock::{micros, millis};
use scheduler::*;

const CAMERAS: usize = 8;

fn config() -> ExecutorConfig {
    ExecutorConfig { cameras: CAMERAS, variants: 3, margin: micros(200), watchdog_grace: millis(1) }
}

/// One pass over 8 cameras: 8 submits, 8 dispatches, 8 completions.
fn pass<C: Clock + Clone>(exec: &mut Executor<u64, C, OnlineEstimator>, now: Instant, frame: u64) -> u64 {
    for cam in 0..CAMERAS {
        let _ = exec.submit(FrameJob { camera: cam, capture: now, deadline: now + millis(50), payload: frame });
    }
    let mut done = 0;
    loop {
        match exec.dispatch() {
            Next::Run(job) => {
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
            black_box(pass(&mut exec, clock.now(), frame))
        })
    });

    let vclock = VirtualClock::new(Instant::from_ticks(1));
    let mut vexec = Executor::new(config(), vclock.clone(), OnlineEstimator::new(&[millis(4), millis(2), millis(1)]));
    g.bench_function("8 jobs, virtual clock", |b| {
        b.iter_batched(
            || vclock.advance(millis(1)),
            |now| {
                frame += 1;
                black_box(pass(&mut vexec, now, frame))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
