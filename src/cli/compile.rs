//! `vigil compile`: ONNX model + calibration frames -> one `.vplan` per variant of the tier
//! matrix (`full`, `lite`, `floor`), plus `report.json` with the per-layer quantisation error.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use kernels::backend::Backend;
use kernels::compile::{self, Compiled};
use kernels::cpu::Cpu;
use kernels::plan::{Candidates, Plan};
use kernels::quantize::Method;

/// Arguments of `vigil compile`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// FP32 ONNX model (static input shape; see docs/MODEL.md for the head contract).
    pub model: PathBuf,
    /// Calibration log (MCAP from `vigil record synthetic`).
    #[arg(long, conflicts_with = "synthetic")]
    pub calib: Option<PathBuf>,
    /// Render calibration frames with the synthetic rig instead: `SEED:FRAMES`.
    #[arg(long, value_name = "SEED:FRAMES")]
    pub synthetic: Option<String>,
    /// Or calibrate on a data set directory (`index.jsonl` + `.npy` images).
    #[arg(long, conflicts_with_all = ["calib", "synthetic"])]
    pub dataset: Option<PathBuf>,
    /// Use at most this many calibration frames.
    #[arg(long)]
    pub max_frames: Option<usize>,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Activation range calibration method.
    #[arg(long, default_value = "minmax", value_parser = ["minmax", "percentile", "entropy", "mse"])]
    pub method: String,
    /// Variants to build (comma-separated subset of full,lite,floor).
    #[arg(long, default_value = "full,lite,floor", value_delimiter = ',')]
    pub variants: Vec<String>,
    /// Frames timed per variant for the latency field (fast `cpu` backend, 2 threads).
    #[arg(long, default_value_t = 5)]
    pub time_frames: usize,
}

/// Energy model of the `energy_mj` field: picojoules per INT8 operation on the reference CPU.
/// An estimate for the scheduler until a power sensor measures it.
pub const PJ_PER_OP: f64 = 5.0;

/// Reads a `.vplan` with errors naming the file.
pub fn read_plan(path: &Path, bytes: &[u8]) -> anyhow::Result<Plan> {
    kernels::vplan::from_bytes(bytes).with_context(|| format!("{}", path.display()))
}

fn time_plan(plan: &Plan, frames: &[&[u8]], n: usize) -> anyhow::Result<u32> {
    if n == 0 {
        return Ok(0);
    }
    let mut be = Cpu::new(2);
    let mut prep = be.prepare(plan, 1)?;
    let mut out = [Candidates::with_capacity(plan.heads.max_candidates as usize)];
    be.run(&mut prep, &frames[..1], &mut out)?; // warm-up
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        be.run(&mut prep, &frames[i % frames.len()..i % frames.len() + 1], &mut out)?;
        times.push(t.elapsed().as_micros() as u32);
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

fn layer_json(c: &Compiled) -> serde_json::Value {
    serde_json::json!(c.layers.iter().map(|l| serde_json::json!({
        "tensor": l.name, "op": l.op, "shape": l.shape, "scale": l.scale, "zero_point": l.zero_point,
        "sqnr_db": if l.sqnr_db.is_finite() { serde_json::json!((l.sqnr_db * 100.0).round() / 100.0) } else { serde_json::json!("inf") },
    })).collect::<Vec<_>>())
}

/// Entry point of `vigil compile`.
pub fn main(args: Args) -> anyhow::Result<()> {
    let method = Method::parse(&args.method).with_context(|| format!("--method {:?}", args.method))?;
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let g = kernels::onnx::import(&bytes, Default::default()).with_context(|| format!("{}", args.model.display()))?;
    let mut samples = super::eval::load_samples(args.calib.as_deref(), args.synthetic.as_deref(), args.dataset.as_deref(), "calibration")?;
    if let Some(m) = args.max_frames {
        samples.truncate(m.max(1));
    }
    let camera = samples[0].camera;
    if let Some(s) = samples.iter().find(|s| s.camera != camera) {
        bail!("calibration frames mix camera sizes {}x{} and {}x{}", camera.0, camera.1, s.camera.0, s.camera.1);
    }
    let frames: Vec<Vec<u8>> = samples.into_iter().map(|s| s.rgb).collect();
    let inp = g.values[g.input].shape;
    let all = compile::standard_variants((inp.h, inp.w), camera);
    let mut chosen = Vec::new();
    for name in &args.variants {
        let v = all.iter().find(|v| &v.spec.name == name).with_context(|| format!("--variants: unknown variant {name:?} (full, lite, floor)"))?;
        chosen.push(v.clone());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let pb = super::eval::progress((chosen.len() * frames.len()) as u64, "calibrating");
    let mut report = Vec::new();
    for choice in &chosen {
        pb.set_message(format!("calibrate {}", choice.spec.name));
        let mut c = compile::compile_variant(&bytes, choice, &frames, method, &mut |_, _| pb.inc(1))
            .with_context(|| format!("{} variant {}", args.model.display(), choice.spec.name))?;
        pb.set_message(format!("time {}", choice.spec.name));
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        c.plan.meta.latency_us = time_plan(&c.plan, &refs, args.time_frames)?;
        c.plan.meta.energy_mj = (c.plan.meta.ops_per_frame as f64 * PJ_PER_OP * 1e-9) as f32;
        let path = args.out.join(format!("{}.vplan", choice.spec.name));
        kernels::vplan::save(&c.plan, &path).with_context(|| format!("writing {}", path.display()))?;
        let min_sqnr = c.layers.iter().map(|l| l.sqnr_db).fold(f64::INFINITY, f64::min);
        pb.suspend(|| println!(
            "{:<6} {}x{}  {:.3} GOPs  {} params  latency {:.1} ms (cpu, 2 threads)  energy ~{:.1} mJ  min layer SQNR {:.1} dB -> {}",
            choice.spec.name,
            choice.input_hw.1,
            choice.input_hw.0,
            c.plan.meta.ops_per_frame as f64 / 1e9,
            c.params,
            f64::from(c.plan.meta.latency_us) / 1e3,
            c.plan.meta.energy_mj,
            min_sqnr,
            path.display()
        ));
        report.push(serde_json::json!({
            "variant": choice.spec.name, "tier": c.plan.meta.tier.name(), "input": [choice.input_hw.0, choice.input_hw.1],
            "camera": [camera.0, camera.1], "ops_per_frame": c.plan.meta.ops_per_frame, "params": c.params,
            "latency_us": c.plan.meta.latency_us, "energy_mj": c.plan.meta.energy_mj, "method": method.name(),
            "calibration_frames": frames.len(), "plan": path.file_name().map(|f| f.to_string_lossy().into_owned()),
            "layers": layer_json(&c),
        }));
    }
    pb.finish_and_clear();
    let rp = args.out.join("report.json");
    std::fs::write(&rp, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", rp.display()))?;
    println!("wrote {} variant(s) and {}", chosen.len(), rp.display());
    Ok(())
}
