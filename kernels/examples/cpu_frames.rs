//! Runs N frames of the CenterNet-lite plan on one backend and prints the wall time per frame.
//! Run under `/usr/bin/time` to get CPU seconds per frame on a busy machine:
//!
//! `/usr/bin/time -f "%U user %S sys %e wall" target/release/examples/cpu_frames 384 640 cpu 1 20`

use kernels::backend::Backend;
use kernels::cpu::Cpu;
use kernels::cpu_ref::CpuRef;
use kernels::plan::Candidates;
use kernels::synth::{centernet_lite, random_frame};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let h: u32 = arg(1, "384").parse().expect("height");
    let w: u32 = arg(2, "640").parse().expect("width");
    let backend = arg(3, "cpu");
    let threads: usize = arg(4, "1").parse().expect("threads");
    let n: usize = arg(5, "10").parse().expect("frames");
    let plan = centernet_lite(h, w, 42).expect("plan");
    let frame = random_frame(&plan, 7);
    let mut out = vec![Candidates::with_capacity(plan.heads.max_candidates as usize)];
    let t0 = std::time::Instant::now();
    match backend.as_str() {
        "cpu-ref" => {
            let mut b = CpuRef;
            let mut p = b.prepare(&plan, 1).expect("prepare");
            for _ in 0..n {
                b.run(&mut p, &[&frame], &mut out).expect("run");
            }
        }
        _ => {
            let mut b = Cpu::new(threads);
            let mut p = b.prepare(&plan, 1).expect("prepare");
            let t1 = std::time::Instant::now();
            for _ in 0..n {
                b.run(&mut p, &[&frame], &mut out).expect("run");
            }
            eprintln!("prepare {:.1} ms", (t1 - t0).as_secs_f64() * 1e3);
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    println!("{backend} {threads}t {h}x{w}: {:.3} GOPs/frame, {n} frames, {:.2} ms/frame wall (incl. prepare), {} candidates", plan.meta.ops_per_frame as f64 / 1e9, dt * 1e3 / n as f64, out[0].len());
}
