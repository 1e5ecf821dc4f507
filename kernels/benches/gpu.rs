//! The full plan (preprocess -> network -> peaks and top-K) for a batch of 8 camera frames,
//! on every backend present: cpu-ref, wgsl (any adapter, llvmpipe included), cuda.
//!
//! The plan is `kernels::synth::centernet_lite` (random weights, about 0.4 M parameters, every
//! op kind) for 1280x720 RGB8 camera frames. Input size from `VIGIL_BENCH_INPUT=HxW`
//! (multiples of 32; default 96x160 so the software adapter finishes; 384x640 is the `full`
//! variant for a GPU).
//!
//! `cargo bench -p kernels --bench gpu` (add `--features cuda` on a GPU machine).

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn.

use criterion::{Criterion, criterion_group, criterion_main};
use kernels::backend::Backend;
use kernels::plan::{Candidates, Plan};

fn frames(plan: &Plan, n: usize) -> Vec<Vec<u8>> {
    (0..n as u64).map(|i| kernels::synth::random_frame(plan, 100 + i)).collect()
}

fn bench_backend<B: Backend>(c: &mut Criterion, id: &str, mut backend: B, plan: &Plan) {
    const BATCH: usize = 8;
    let mut prepared = match backend.prepare(plan, BATCH) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED: {id}: {e}");
            return;
        }
    };
    let data = frames(plan, BATCH);
    let refs: Vec<&[u8]> = data.iter().map(|f| f.as_slice()).collect();
    let mut out: Vec<Candidates> = (0..BATCH).map(|_| Candidates::with_capacity(plan.heads.max_candidates as usize)).collect();
    c.bench_function(&format!("full_plan/{id}"), |bch| {
        bch.iter(|| backend.run(&mut prepared, &refs, &mut out).expect("run"));
    });
}

fn input_size() -> (u32, u32) {
    std::env::var("VIGIL_BENCH_INPUT")
        .ok()
        .and_then(|s| {
            let (h, w) = s.split_once('x')?;
            Some((h.parse().ok()?, w.parse().ok()?))
        })
        .unwrap_or((96, 160))
}

fn benches(c: &mut Criterion) {
    let (h, w) = input_size();
    let plan = kernels::synth::centernet_lite(h, w, 7).expect("VIGIL_BENCH_INPUT must be multiples of 32");
    eprintln!("bench plan: input {h}x{w}, {} ops, batch 8", plan.ops.len());
    bench_backend(c, "cpu-ref", kernels::cpu_ref::CpuRef, &plan);
    #[cfg(feature = "wgpu")]
    match kernels::wgsl::WgslBackend::new(&kernels::wgsl::WgslOptions::default()) {
        Ok(b) => {
            eprintln!("wgsl adapter: {}", b.context().report());
            bench_backend(c, "wgsl", b, &plan);
        }
        Err(e) => eprintln!("SKIPPED: wgsl: {e}"),
    }
    #[cfg(feature = "cuda")]
    match kernels::cuda::CudaBackend::new(0) {
        Ok(b) => {
            eprintln!("cuda device: {}", b.describe());
            bench_backend(c, "cuda", b, &plan);
        }
        Err(e) => eprintln!("SKIPPED: cuda: {e}"),
    }
}

criterion_group! {
    name = gpu;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(5));
    targets = benches
}
criterion_main!(gpu);
