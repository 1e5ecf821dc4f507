//! `vigil replay`: drive the camera sources from a recording and report on it, or, with
//! `--deterministic`, run the whole pipeline over it on a virtual clock and write what it
//! detected, tracked and published (`pipeline::deterministic`).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use pipeline::detector::PlanDetector;
use pipeline::deterministic::{replay_deterministic, replay_summary, ExecModel, Options, Summary};
use pipeline::passthrough::Pace;
use pipeline::replay::{replay, ReplayOptions};

/// Clock to replay on.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Rate {
    /// At the recorded capture times, on the real clock.
    Recorded,
    /// As fast as possible, on a virtual clock (reproducible).
    Max,
}

/// Arguments of `vigil replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The MCAP recording (vigil's own, or any MCAP with the same Foxglove schemas).
    file: PathBuf,
    /// Replay rate.
    #[arg(long, value_enum, default_value_t = Rate::Max)]
    rate: Rate,
    /// Write what the pipeline stage saw to this MCAP file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the report as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Most memory for pre-decoded frames, MiB.
    #[arg(long, default_value_t = 4096)]
    max_frame_memory_mib: u64,
    /// Run the real pipeline (executor, detector, fusion, tracking, control boundary) on a
    /// virtual clock with fixed per-variant execution times: the output depends only on the
    /// log and the model, never on the machine or the backend. `--out` then gets image
    /// annotations per camera, tracked objects and snapshots (docs/FORMATS.md).
    #[arg(long, conflicts_with = "rate")]
    deterministic: bool,
    /// Backend of `--deterministic`: `cpu-ref` (the specification), `cpu` (fast), `wgsl`
    /// (builds with `--features wgpu`; software adapters allowed). All give identical bytes.
    #[arg(long, default_value = "cpu", value_parser = ["cpu-ref", "cpu", "wgsl"], requires = "deterministic")]
    backend: String,
    /// Directory with compiled `.vplan` variants (`--deterministic`). Without one, an untrained
    /// random-weight plan of the same shape runs (detections are noise).
    #[arg(long, default_value = "models", requires = "deterministic")]
    model: PathBuf,
    /// Power cap of `--deterministic`, watts (against the per-variant energy model).
    #[arg(long, default_value_t = 30.0, requires = "deterministic")]
    power_cap_w: f32,
    /// CPU backend worker threads (`--backend cpu`; the output does not depend on it).
    #[arg(long, default_value_t = 2, requires = "deterministic")]
    threads: usize,
}

/// Entry point of `vigil replay`.
pub fn main(args: Args) -> anyhow::Result<()> {
    if args.deterministic {
        return deterministic(&args);
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(format!("checking and decoding {}", args.file.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let opts = ReplayOptions {
        pace: match args.rate {
            Rate::Recorded => Pace::Recorded,
            Rate::Max => Pace::Max,
        },
        max_decoded_bytes: args.max_frame_memory_mib.saturating_mul(1 << 20),
    };
    let report = replay(&bytes, &opts);
    spinner.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(out) = &args.out {
        report.write_mcap(out).map_err(anyhow::Error::msg)?;
        eprintln!("wrote {} ({} staged frames)", out.display(), report.staged.len());
    }
    let file = args.file.display();
    if let Some(first) = report.problems.first() {
        bail!("{file}: {} problem(s) in the recording; first at {first}", report.problems.len());
    }
    if report.budget_exceeded {
        bail!("{file}: decoded frames exceed --max-frame-memory-mib {}; raise it", args.max_frame_memory_mib);
    }
    if !report.complete {
        bail!("{file}: the recording is incomplete");
    }
    if report.cameras.is_empty() {
        bail!("{file}: no camera image channel (foxglove.RawImage or foxglove.CompressedImage) in the recording");
    }
    Ok(())
}

/// `vigil replay FILE --deterministic`.
fn deterministic(args: &Args) -> anyhow::Result<()> {
    let file = args.file.display();
    let rig = rig::Rig::builtin();
    let (w, h) = (rig.cameras()[0].width, rig.cameras()[0].height);
    let (plans, version, model_name) = crate::cli::plans::plans_for(&args.model, w, h)?;
    let model = ExecModel::from_plans(&plans);
    let mut opts = Options::new(rig, model);
    opts.model_name = model_name;
    opts.power_cap_w = args.power_cap_w;
    opts.read.max_decoded_bytes = args.max_frame_memory_mib.saturating_mul(1 << 20);
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {file}"))?;
    let costs: Vec<String> = opts.model.cost.iter().map(|d| format!("{:.1} ms", d.ticks() as f64 / 1e6)).collect();
    // The backend goes to stderr only: the output file is the same for every backend.
    eprintln!("replay {file}: model {} (version {version}); modelled cost per variant {}", opts.model_name, costs.join(", "));
    let summary = match args.backend.as_str() {
        "cpu-ref" => go(args, &bytes, PlanDetector::new(kernels::cpu_ref::CpuRef, plans, version), &opts),
        "cpu" => go(args, &bytes, PlanDetector::new(kernels::cpu::Cpu::new(args.threads.max(1)), plans, version), &opts),
        "wgsl" => wgsl(args, &bytes, plans, version, &opts),
        other => bail!("--backend {other}: expected cpu-ref, cpu or wgsl"),
    }?;
    eprint!("{}", summary.table());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if let Some(out) = &args.out {
        eprintln!("wrote {} ({} messages)", out.display(), summary.messages);
    }
    Ok(())
}

#[cfg(feature = "wgpu")]
fn wgsl(args: &Args, bytes: &[u8], plans: Vec<kernels::plan::Plan>, version: u64, opts: &Options) -> anyhow::Result<Summary> {
    let backend = kernels::wgsl::WgslBackend::new(&kernels::wgsl::WgslOptions::default())
        .map_err(|e| anyhow::anyhow!("--backend wgsl: {e}"))?;
    eprintln!("wgsl adapter: {}", backend.context().report());
    go(args, bytes, PlanDetector::new(backend, plans, version), opts)
}

#[cfg(not(feature = "wgpu"))]
fn wgsl(_args: &Args, _bytes: &[u8], _plans: Vec<kernels::plan::Plan>, _version: u64, _opts: &Options) -> anyhow::Result<Summary> {
    bail!("--backend wgsl: this build has no `wgpu` feature (build with --features wgpu)")
}

/// Prepares the detector, replays, writes `--out` (through `FILE.partial`, renamed when complete).
fn go<B: kernels::backend::Backend>(
    args: &Args,
    bytes: &[u8],
    detector: Result<PlanDetector<B>, kernels::backend::BackendError>,
    opts: &Options,
) -> anyhow::Result<Summary> {
    let detector = detector.with_context(|| format!("--backend {}: preparing the model", args.backend))?;
    eprintln!("backend: {}", args.backend);
    let file = args.file.display();
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% of the log [{elapsed} < {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = |done: u64, total: u64| bar.set_position((done * 1000).checked_div(total).unwrap_or(1000));
    let result = match &args.out {
        None => replay_summary(bytes, detector, opts, &mut progress).with_context(|| file.to_string()),
        Some(out) => {
            let partial = pipeline::record::partial_path(out);
            let f = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let r = replay_deterministic(bytes, detector, opts, &mut w, &mut progress).with_context(|| file.to_string());
            drop(w);
            match r {
                Ok(s) => {
                    std::fs::rename(&partial, out).with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
                    Ok(s)
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    Err(e)
                }
            }
        }
    };
    bar.finish_and_clear();
    result
}
