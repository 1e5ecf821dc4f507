//! cpu-ref vs cpu (1 and 2 threads) on a CenterNet-lite shaped random plan, one frame per
//! iteration (preprocess from a 1280x720 RGB8 frame, the network, peak decode).
//!
//! Throughput is reported in elements/s where one element is one operation (2 per MAC), so
//! criterion's `Gelem/s` reads as GOP/s and compares directly with the ONNX Runtime peer figure
//! in docs/perf/kernels.md.
//!
//! `cargo bench -p kernels --bench cpu` (add `-- --quick` for a short run).

#![allow(missing_docs)] // reason: criterion's macros generate undocumented functions.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernels::backend::Backend;
use kernels::cpu::Cpu;
use kernels::cpu_ref::CpuRef;
use kernels::plan::Candidates;
use kernels::synth::{centernet_lite, random_frame};

fn bench(c: &mut Criterion) {
    for (h, w) in [(384u32, 640u32), (192, 320)] {
        let plan = centernet_lite(h, w, 42).expect("plan");
        let frame = random_frame(&plan, 7);
        let frames = [frame.as_slice()];
        let mut out = vec![Candidates::with_capacity(plan.heads.max_candidates as usize)];
        let ops = plan.meta.ops_per_frame;
        eprintln!("centernet-lite {h}x{w}: {:.3} GOPs/frame, {} ops", ops as f64 / 1e9, plan.ops.len());
        let mut g = c.benchmark_group(format!("centernet_lite_{h}x{w}"));
        g.throughput(Throughput::Elements(ops));
        g.sample_size(10);

        let mut r = CpuRef;
        let mut rp = r.prepare(&plan, 1).expect("prepare");
        g.bench_function("cpu-ref", |b| b.iter(|| r.run(&mut rp, &frames, &mut out).expect("run")));
        for threads in [1usize, 2] {
            let mut be = Cpu::new(threads);
            let mut p = be.prepare(&plan, 1).expect("prepare");
            g.bench_function(format!("cpu-{threads}t"), |b| b.iter(|| be.run(&mut p, &frames, &mut out).expect("run")));
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
