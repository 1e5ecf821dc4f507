//! `vigil eval`: mAP@0.5 per class and overall, and the mean distance error, of an FP32 ONNX
//! model or a compiled `.vplan`, on frames with ground truth. Both paths use the same decode
//! rules (`kernels::eval`), so FP32 and INT8 figures compare fairly.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kernels::backend::Backend;
use kernels::compile::{self, VariantChoice};
use kernels::cpu::Cpu;
use kernels::eval::{Det, Evaluator, Gt, Report};
use kernels::fp32::Interpreter;
use kernels::plan::{Candidates, Plan};
use rig::{Rig, SyntheticRig};

/// Arguments of `vigil eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An FP32 ONNX model (`.onnx`) or a compiled plan (`.vplan`).
    pub model: PathBuf,
    /// Recorded log with ground truth (MCAP from `vigil record synthetic`).
    #[arg(long, conflicts_with = "synthetic")]
    pub data: Option<PathBuf>,
    /// Render frames directly with the synthetic rig instead: `SEED:FRAMES` (one camera image
    /// per rig frame, cycling through the cameras).
    #[arg(long, value_name = "SEED:FRAMES")]
    pub synthetic: Option<String>,
    /// Or a data set directory (`index.jsonl` + `.npy` images, as written by `tools/` and
    /// the `export_dataset` example).
    #[arg(long, conflicts_with_all = ["data", "synthetic"])]
    pub dataset: Option<PathBuf>,
    /// For an ONNX model: which variant's input size to evaluate at (`full`, `lite`, `floor`).
    #[arg(long, default_value = "full")]
    pub variant: String,
    /// Evaluate at most this many camera images (a log's images are taken interleaved across
    /// cameras, so a prefix covers every camera).
    #[arg(long)]
    pub max_frames: Option<usize>,
}

/// One camera image with its ground truth.
pub struct Sample {
    /// Packed RGB8.
    pub rgb: Vec<u8>,
    /// Camera `(w, h)`.
    pub camera: (u32, u32),
    /// Ground truth in this camera.
    pub gts: Vec<Gt>,
}

/// Parses `SEED:FRAMES`.
pub fn parse_synthetic(s: &str) -> anyhow::Result<(u64, usize)> {
    let (a, b) = s.split_once(':').with_context(|| format!("--synthetic {s:?}: expected SEED:FRAMES, e.g. 7:32"))?;
    let seed = a.trim().parse().with_context(|| format!("--synthetic {s:?}: seed {a:?} is not a number"))?;
    let frames = b.trim().parse().with_context(|| format!("--synthetic {s:?}: frame count {b:?} is not a number"))?;
    Ok((seed, frames))
}

/// Renders `frames` rig frames with `rig::synth`, one camera image per frame (camera
/// `frame % cameras`), with that camera's ground truth.
pub fn synthetic_samples(seed: u64, frames: usize) -> Vec<Sample> {
    let rig = Rig::builtin();
    let dims: Vec<(u32, u32)> = rig.cameras().iter().map(|c| (c.width, c.height)).collect();
    let mut world = SyntheticRig::new(rig, seed, 10.0);
    let mut images = vec![Vec::new(); dims.len()];
    let mut out = Vec::with_capacity(frames);
    for i in 0..frames {
        let truth = world.next_frame(&mut images);
        let cam = i % dims.len();
        let gts = truth
            .objects
            .iter()
            .flat_map(|o| {
                o.boxes.iter().filter(|b| usize::from(b.camera) == cam).map(move |b| Gt {
                    class: o.class as u16,
                    bbox: b.bbox,
                    depth: b.depth,
                    visible_fraction: b.visible_fraction,
                })
            })
            .collect();
        out.push(Sample { rgb: std::mem::take(&mut images[cam]), camera: dims[cam], gts });
    }
    out
}

/// Reads every camera image of an MCAP log with its ground truth (a log recorded by `vigil
/// record synthetic`, or any log with the same schemas; images without ground truth count as
/// images with no object, which suits calibration but not evaluation).
fn log_samples(path: &Path, what: &str) -> anyhow::Result<Vec<Sample>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the {what} log {}", path.display()))?;
    let rig = Rig::builtin();
    let frames = pipeline::mcap_io::labelled_frames(&rig, path, &bytes, 8 << 30).map_err(anyhow::Error::msg)?;
    let labelled = frames.iter().filter(|f| f.truth.is_some()).count();
    if what == "evaluation" && labelled == 0 {
        bail!("{}: no /ground_truth message matches a camera image; evaluation needs a labelled log (vigil record synthetic)", path.display());
    }
    Ok(frames
        .into_iter()
        .map(|f| {
            let cam = f.camera;
            let gts = f
                .truth
                .iter()
                .flat_map(|t| t.objects.iter())
                .flat_map(|o| {
                    o.boxes.iter().filter(|b| usize::from(b.camera) == cam).map(move |b| Gt {
                        class: o.class as u16,
                        bbox: b.bbox,
                        depth: b.depth,
                        visible_fraction: b.visible_fraction,
                    })
                })
                .collect();
            Sample { rgb: f.rgb, camera: f.size, gts }
        })
        .collect())
}

/// Loads the samples named by `--data` / `--synthetic` / `--dataset`.
pub fn load_samples(data: Option<&Path>, synthetic: Option<&str>, dataset: Option<&Path>, what: &str) -> anyhow::Result<Vec<Sample>> {
    let samples = match (data, synthetic) {
        _ if dataset.is_some() => kernels::eval::load_dataset(dataset.unwrap_or(Path::new(".")), None)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|l| Sample { rgb: l.rgb, camera: l.size, gts: l.gts })
            .collect(),
        (_, Some(s)) => {
            let (seed, frames) = parse_synthetic(s)?;
            synthetic_samples(seed, frames)
        }
        (Some(p), None) => log_samples(p, what)?,
        (None, None) => bail!("no {what} data: pass a log, --synthetic SEED:FRAMES or --dataset DIR"),
    };
    if samples.is_empty() {
        bail!("the {what} source gave no frames");
    }
    Ok(samples)
}

/// Prints a report.
pub fn print_report(label: &str, r: &Report) {
    const CLASSES: [&str; 4] = ["car", "truck", "pedestrian", "cyclist"];
    println!("{label}: {} images, {} counted boxes", r.images, r.counted);
    for (k, ap) in r.ap.iter().enumerate() {
        let name = CLASSES.get(k).copied().unwrap_or("class");
        match ap {
            Some(a) => println!("  AP@0.5 {name:<11} {:6.2}", a * 100.0),
            None => println!("  AP@0.5 {name:<11}    n/a (no counted box)"),
        }
    }
    println!("  mAP@0.5            {:6.2}", r.map * 100.0);
    if r.true_positives == 0 {
        println!("  distance error        n/a (no true positive)");
    } else {
        println!("  distance error     {:6.2} m mean absolute, {:5.1} % relative ({} true positives)", r.depth_mae, r.depth_rel * 100.0, r.true_positives);
    }
}

/// Evaluates an ONNX model in FP32 at a variant's input size.
pub fn eval_onnx(bytes: &[u8], choice: &VariantChoice, samples: &[Sample]) -> anyhow::Result<Report> {
    let g = compile::load_graph(bytes, Some(choice.input_hw))?;
    let heads = compile::float_heads(&g, &choice.spec).context("the model has no `heatmap` output (see docs/MODEL.md)")?;
    let hm = g.output_named("heatmap").context("no `heatmap` output")?;
    let bx = g.output_named("box").context("no `box` output")?;
    let interp = Interpreter::new(&g);
    let mut ev = Evaluator::new(4);
    let pb = progress(samples.len() as u64, "FP32 eval");
    for s in samples {
        if s.camera != choice.spec.camera {
            bail!("frame is {}x{}, the variant expects {}x{}", s.camera.0, s.camera.1, choice.spec.camera.0, choice.spec.camera.1);
        }
        let mut all = interp.run_all(compile::float_input(&s.rgb, s.camera, choice.input_hw));
        let dets = kernels::eval::decode_float(&heads, &std::mem::replace(&mut all[hm], kernels::fp32::Tensor::zeros(g.values[hm].shape)), &all[bx]);
        ev.add(&dets, &s.gts);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(ev.report())
}

/// Evaluates a plan with the fast `cpu` backend (bit-exact with `cpu-ref`), 2 threads.
pub fn eval_plan(plan: &Plan, samples: &[Sample]) -> anyhow::Result<Report> {
    let mut be = Cpu::new(2);
    let mut prep = be.prepare(plan, 1)?;
    let mut out = [Candidates::with_capacity(plan.heads.max_candidates as usize)];
    let s_in = plan.tensor(plan.input).w as f32 / plan.preprocess.src_w as f32;
    let mut ev = Evaluator::new(plan.heads.num_classes as usize);
    let pb = progress(samples.len() as u64, &format!("INT8 eval ({})", plan.meta.variant));
    for s in samples {
        be.run(&mut prep, &[&s.rgb], &mut out)?;
        let dets: Vec<Det> = out[0].as_slice().iter().map(|c| Det::from_detection(&plan.heads.decode(plan, c), s_in)).collect();
        ev.add(&dets, &s.gts);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(ev.report())
}

/// A progress bar on stderr.
pub fn progress(len: u64, msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg:>18} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// Entry point of `vigil eval`.
pub fn main(args: Args) -> anyhow::Result<()> {
    let mut samples = load_samples(args.data.as_deref(), args.synthetic.as_deref(), args.dataset.as_deref(), "evaluation")?;
    if let Some(m) = args.max_frames {
        samples.truncate(m.max(1));
    }
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let is_onnx = args.model.extension().is_some_and(|e| e == "onnx");
    if is_onnx {
        let g = kernels::onnx::import(&bytes, Default::default()).with_context(|| format!("{}", args.model.display()))?;
        let s = g.values[g.input].shape;
        let camera = samples[0].camera;
        let choice = compile::standard_variants((s.h, s.w), camera)
            .into_iter()
            .find(|v| v.spec.name == args.variant)
            .with_context(|| format!("--variant {:?}: expected full, lite or floor", args.variant))?;
        let r = eval_onnx(&bytes, &choice, &samples).with_context(|| format!("{}", args.model.display()))?;
        print_report(&format!("{} FP32 ({}, input {}x{})", args.model.display(), choice.spec.name, choice.input_hw.1, choice.input_hw.0), &r);
    } else {
        let plan = super::compile::read_plan(&args.model, &bytes)?;
        let r = eval_plan(&plan, &samples)?;
        let t = plan.tensor(plan.input);
        print_report(&format!("{} INT8 ({}, input {}x{})", args.model.display(), plan.meta.variant, t.w, t.h), &r);
    }
    Ok(())
}
