//! Times one compiled plan (`.vplan`) on the fast CPU backend: the side-by-side speed bench
//! against ONNX Runtime (`benches/ort_peer.sh`) runs this and ONNX Runtime on the same frame.
//!
//! ```text
//! cargo run --release -p kernels --example plan_bench -- models/full.vplan --threads 2 --iters 200 [--frame F.npy] [--backend cpu|cpu-ref] [--isa best|avx512|avx2|portable]
//! ```
//!
//! `--isa` caps the fast backend's instruction set (an AVX-512 machine can then also time the
//! AVX2 path that AVX2-only machines run); a level the CPU lacks is an error.
//!
//! One iteration is one whole frame: preprocessing (resize, normalise, quantise the camera
//! frame), the network and peak decoding. Prints one JSON object: median, p10, p90 and min
//! milliseconds per frame over `--iters` frames after `--warmup` frames, and the plan's GOPs.
//! `--frame` takes a `uint8` `H x W x 3` `.npy` of the plan's camera size (what
//! `export_dataset` writes); without it the frame is deterministic noise.

use std::time::Instant;

use kernels::backend::Backend;
use kernels::cpu::{Cpu, Isa};
use kernels::cpu_ref::CpuRef;
use kernels::plan::{Candidates, Plan};

struct Opts {
    plan: String,
    threads: usize,
    iters: usize,
    warmup: usize,
    frame: Option<String>,
    backend: String,
    isa: Isa,
}

fn usage() -> &'static str {
    "usage: plan_bench PLAN.vplan [--threads N] [--iters N] [--warmup N] [--frame F.npy] [--backend cpu|cpu-ref] [--isa best|avx512|avx2|portable]"
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts { plan: String::new(), threads: 1, iters: 100, warmup: 10, frame: None, backend: "cpu".into(), isa: Isa::detect() };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value\n{}", usage()));
        match a.as_str() {
            "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--iters" => o.iters = val()?.parse().map_err(|e| format!("--iters: {e}"))?,
            "--warmup" => o.warmup = val()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--frame" => o.frame = Some(val()?),
            "--backend" => o.backend = val()?,
            "--isa" => {
                let v = val()?;
                o.isa = match v.as_str() {
                    "best" => Isa::detect(),
                    "avx512" => Isa::Avx512,
                    "avx2" => Isa::Avx2,
                    "portable" => Isa::Portable,
                    _ => return Err(format!("--isa {v}: expected best, avx512, avx2 or portable")),
                };
                if o.isa > Isa::detect() {
                    return Err(format!("--isa {v}: this CPU's best is {:?}", Isa::detect()));
                }
            }
            "-h" | "--help" => return Err(usage().into()),
            s if !s.starts_with('-') && o.plan.is_empty() => o.plan = s.into(),
            s => return Err(format!("unknown argument {s}\n{}", usage())),
        }
    }
    if o.plan.is_empty() {
        return Err(usage().into());
    }
    o.iters = o.iters.max(1);
    Ok(o)
}

fn frame(plan: &Plan, path: Option<&str>) -> Result<Vec<u8>, String> {
    let (w, h) = (plan.preprocess.src_w, plan.preprocess.src_h);
    let Some(path) = path else {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        return Ok((0..plan.preprocess.frame_bytes())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 56) as u8
            })
            .collect());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let (rgb, fh, fw) = kernels::eval::parse_npy_rgb(&bytes).map_err(|e| format!("{path}: {e}"))?;
    if (fw, fh) != (w, h) {
        return Err(format!("{path}: frame is {fw}x{fh}, the plan wants camera frames of {w}x{h}"));
    }
    Ok(rgb)
}

fn time<F: FnMut()>(o: &Opts, mut f: F) -> Vec<f64> {
    for _ in 0..o.warmup {
        f();
    }
    let mut ms: Vec<f64> = (0..o.iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let run = || -> Result<(Vec<f64>, Plan), String> {
        let plan = kernels::vplan::load(std::path::Path::new(&o.plan)).map_err(|e| format!("{}: {e}", o.plan))?;
        let fr = frame(&plan, o.frame.as_deref())?;
        let frames = [fr.as_slice()];
        let mut out = vec![Candidates::with_capacity(plan.heads.max_candidates as usize)];
        let ms = match o.backend.as_str() {
            "cpu-ref" => {
                let mut b = CpuRef;
                let mut p = b.prepare(&plan, 1).map_err(|e| e.to_string())?;
                time(&o, || b.run(&mut p, &frames, &mut out).expect("run"))
            }
            "cpu" => {
                let mut b = Cpu::with_isa(o.threads, o.isa);
                let mut p = b.prepare(&plan, 1).map_err(|e| e.to_string())?;
                time(&o, || b.run(&mut p, &frames, &mut out).expect("run"))
            }
            other => return Err(format!("--backend {other}: expected cpu or cpu-ref")),
        };
        Ok((ms, plan))
    };
    match run() {
        Ok((ms, plan)) => {
            let q = |f: f64| ms[((ms.len() - 1) as f64 * f).round() as usize];
            let input = plan.tensor(plan.input);
            println!(
                "{{\"plan\":\"{}\",\"backend\":\"{}\",\"isa\":\"{:?}\",\"threads\":{},\"input\":\"{}x{}\",\"gops\":{:.4},\"iters\":{},\"median_ms\":{:.3},\"p10_ms\":{:.3},\"p90_ms\":{:.3},\"min_ms\":{:.3}}}",
                o.plan,
                o.backend,
                o.isa,
                o.threads,
                input.h,
                input.w,
                plan.meta.ops_per_frame as f64 / 1e9,
                ms.len(),
                q(0.5),
                q(0.1),
                q(0.9),
                ms[0]
            );
        }
        Err(e) => {
            eprintln!("plan_bench: {e}");
            std::process::exit(1);
        }
    }
}
