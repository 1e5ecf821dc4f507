//! Hot-path cost of `MetricsTap::record` (target: <= 50 ns median).
//!
//! `record/push`: the ring has room (the normal case); the ring is drained outside the
//! timed region. `record/full`: the ring is full, so every call takes the counted-drop path.

#![allow(missing_docs)] // reason: criterion_group! generates an undocumented public function.

use std::hint::black_box;
use std::time::{Duration, Instant};

use analytics::Event;
use analytics::tap::tap_ring;
use criterion::{Criterion, criterion_group, criterion_main};

const BATCH: u64 = 4096;

fn bench_record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.bench_function("push", |b| {
        let (mut tap, mut reader) = tap_ring(BATCH as usize);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                let start = Instant::now();
                for i in 0..n {
                    black_box(tap.record(black_box(Event::frame_latency(i, 3, 0, 18_000))));
                }
                total += start.elapsed();
                reader.drain(|e| {
                    black_box(e);
                });
                left -= n;
            }
            total
        });
    });
    g.bench_function("full", |b| {
        let (mut tap, _reader) = tap_ring(16);
        for i in 0..16 {
            tap.record(Event::frame_skip(i, 0));
        }
        b.iter(|| black_box(tap.record(black_box(Event::frame_latency(1, 3, 0, 18_000)))));
    });
    g.finish();
}

criterion_group!(benches, bench_record);
criterion_main!(benches);
