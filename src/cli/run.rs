//! `vigil run`: the perception pipeline, live.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kernels::plan::Plan;
use pipeline::detector::PlanDetector;
use pipeline::feed::LoopFeed;
use pipeline::runtime::{LatencyHistogram, Runtime, RuntimeConfig, RuntimeStats, StepOutcome};
use rig::{CAMERA_COUNT, Rig, SyntheticRig};
use scheduler::clock::{Duration, millis};
use scheduler::governor::EnergyModel;
use scheduler::{Clock, MonotonicClock, OnlineEstimator};

/// Arguments of `vigil run`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "The status line shows per-camera processed frame rates (front cameras first), \
capture-to-publish latency p50/p99, modelled or measured power against the cap, the degradation \
ladder level and the frames skipped so far. The exit summary repeats them for the whole run, with the \
worst snapshot age seen by a 100 Hz control reader.")]
pub struct Args {
    /// Frame source: `synthetic` (the built-in rig and world) or `replay:FILE.mcap`.
    #[arg(long, default_value = "synthetic")]
    source: String,
    /// Compute backend: `auto` picks CUDA, then WGSL on a real GPU, then the CPU.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cuda", "wgsl", "cpu"])]
    backend: String,
    /// Directory with compiled `.vplan` variants (full, lite, floor). Without one, an
    /// untrained random-weight plan of the same shape runs (timing only; detections are noise).
    #[arg(long, default_value = "models")]
    model: PathBuf,
    /// Power cap enforced over a 1 s window, watts.
    #[arg(long, default_value_t = 30.0)]
    power_cap_w: f32,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Camera rate, frames per second.
    #[arg(long, default_value_t = 36.0)]
    fps: f64,
    /// World seed of the synthetic source.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of synthetic frames pre-rendered at start-up and looped.
    #[arg(long, default_value_t = 1.0)]
    loop_seconds: f64,
    /// CPU backend worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also publish snapshots to this shared-memory file (e.g. /dev/shm/vigil).
    #[arg(long)]
    shm: Option<PathBuf>,
    /// Real-time mode: lock memory and run the hot thread SCHED_FIFO (needs CAP_SYS_NICE / root).
    #[arg(long)]
    rt: bool,
    /// Stream images and detections to Foxglove over WebSocket.
    #[arg(long)]
    foxglove: bool,
}

/// Loads `*.vplan` from `dir`, ordered full -> lite -> floor; empty when none exist.
fn load_plans(dir: &Path) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(plans) };
    for e in entries {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "vplan") {
            let plan = kernels::vplan::load(&path).with_context(|| format!("loading {}", path.display()))?;
            plans.push(plan);
        }
    }
    plans.sort_by_key(|p| (p.meta.tier as u32, std::cmp::Reverse(p.meta.ops_per_frame)));
    Ok(plans)
}

/// Random-weight CenterNet-lite plans at three input sizes, for a camera of `w x h`.
fn stand_in_plans(w: u32, h: u32) -> anyhow::Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for (i, (ph, pw)) in [(384, 640), (192, 320), (96, 160)].into_iter().enumerate() {
        let mut p = kernels::synth::centernet_lite(ph, pw, 1).context("building the stand-in plan")?;
        // The tables do not depend on the frame size; only the source geometry changes.
        p.preprocess.src_w = w;
        p.preprocess.src_h = h;
        p.meta.tier = kernels::plan::Tier::from_code(i as u32).unwrap_or(kernels::plan::Tier::Floor);
        plans.push(p);
    }
    Ok(plans)
}

/// Entry point of `vigil run`.
pub fn main(args: Args) -> anyhow::Result<()> {
    if args.foxglove {
        bail!("--foxglove: live streaming is not in this build yet; record with `vigil record` and open the MCAP in Foxglove");
    }
    if !(1.0..=240.0).contains(&args.fps) {
        bail!("--fps {}: must be between 1 and 240", args.fps);
    }
    let rig = Rig::builtin();
    match args.backend.as_str() {
        "cuda" | "wgsl" => bail!("--backend {}: this build runs the CPU backend only; use --backend cpu or auto", args.backend),
        "auto" => tracing::info!("backend: cpu (auto: no GPU backend in this build)"),
        _ => tracing::info!("backend: cpu"),
    }
    let (cam_w, cam_h) = (rig.cameras()[0].width, rig.cameras()[0].height);
    let mut plans = load_plans(&args.model)?;
    let version = plans.first().map(|p| p.meta.model_version).unwrap_or(0);
    if plans.is_empty() {
        tracing::warn!(
            "no .vplan in {}: running random-weight stand-in plans (timing is real, detections are noise); compile a model with `vigil compile`",
            args.model.display()
        );
        plans = stand_in_plans(cam_w, cam_h)?;
    }
    for p in &plans {
        if p.preprocess.src_w != cam_w || p.preprocess.src_h != cam_h {
            bail!("plan {} expects {}x{} frames but the rig's cameras are {cam_w}x{cam_h}", p.meta.variant, p.preprocess.src_w, p.preprocess.src_h);
        }
    }
    let variants: Vec<String> = plans.iter().map(|p| format!("{} ({:.2} GOPs)", p.meta.variant, p.meta.ops_per_frame as f64 / 1e9)).collect();
    tracing::info!("model variants: {}", variants.join(", "));

    // Start-up work: frames.
    let feed = match args.source.as_str() {
        "synthetic" => {
            let frames = (args.loop_seconds * args.fps).ceil().max(1.0) as usize;
            let mut world = SyntheticRig::new(rig.clone(), args.seed, args.fps);
            let bar = ProgressBar::new(frames as u64).with_message("pre-rendering synthetic frames");
            bar.set_style(ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed}]").unwrap_or_else(|_| ProgressStyle::default_bar()));
            let feed = LoopFeed::render(&mut world, frames, |d, _| bar.set_position(d as u64));
            bar.finish_and_clear();
            feed
        }
        s if s.starts_with("replay:") => bail!("--source {s}: use `vigil replay FILE` for recorded logs in this build"),
        s if s.starts_with("v4l2:") => bail!("--source {s}: V4L2 capture is not in this build"),
        s => bail!("--source {s}: expected `synthetic` or `replay:FILE`"),
    };

    let detector = PlanDetector::new(kernels::cpu::Cpu::new(args.threads.max(1)), plans, version).context("preparing the model")?;
    let clock = MonotonicClock;
    let n_var = pipeline::detector::Detector::variants(&detector);
    // Prior execution times (refined online): 30 ms per 3.5 GOPs on two cores.
    let prior: Vec<Duration> = (0..n_var).map(|v| millis([30, 8, 3].get(usize::from(v)).copied().unwrap_or(3))).collect();
    let energy = EnergyModel::new(4.0, &[0.9, 0.25, 0.08][..usize::from(n_var).min(3)], scheduler::clock::secs(1));
    let feed = feed.start_at(clock.now().ticks() + 5_000_000);
    let (publisher, reader) = control::channel();
    let (mut rt, mut events) = match &args.shm {
        Some(path) => {
            let shm = control::ShmPublisher::create(path).with_context(|| format!("creating shared memory {}", path.display()))?;
            let (rt, ev) = Runtime::new(rig.clone(), RuntimeConfig::new(args.fps as f32, args.power_cap_w), feed, detector, clock, OnlineEstimator::new(&prior), energy, (publisher, shm), Vec::new())?;
            (Either::Shm(rt), ev)
        }
        None => {
            let (rt, ev) = Runtime::new(rig.clone(), RuntimeConfig::new(args.fps as f32, args.power_cap_w), feed, detector, clock, OnlineEstimator::new(&prior), energy, publisher, Vec::new())?;
            (Either::Plain(rt), ev)
        }
    };
    let stats = match &rt {
        Either::Plain(r) => r.stats(),
        Either::Shm(r) => r.stats(),
    };
    if args.rt {
        crate::cli::rtmode::enter().context("--rt")?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc_hook(move || stop.store(true, Ordering::SeqCst));
    }
    // The control loop: reads the newest snapshot at 100 Hz and records its age.
    let ctl = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new().name("control-100hz".into()).spawn(move || {
            let mut worst_age_ns = 0u64;
            let mut reads = 0u64;
            let mut torn = 0u64;
            let mut next = StdInstant::now();
            while !stop.load(Ordering::Relaxed) {
                next += StdDuration::from_millis(10);
                match reader.read() {
                    Ok(s) => {
                        reads += 1;
                        if reads > 100 {
                            worst_age_ns = worst_age_ns.max(s.age_ns(MonotonicClock.now().ticks()));
                        }
                    }
                    Err(control::ReadError::Busy) => torn += 1,
                    Err(_) => {}
                }
                std::thread::sleep(next.saturating_duration_since(StdInstant::now()));
            }
            (worst_age_ns, reads, torn)
        })?
    };
    // Status and ladder events: another thread; the hot loop only touches atomics and a ring.
    let status = {
        let stop = Arc::clone(&stop);
        let stats = Arc::clone(&stats);
        let rig = rig.clone();
        std::thread::Builder::new().name("status".into()).spawn(move || {
            let start = StdInstant::now();
            let mut last = frames_of(&stats);
            let mut last_t = StdInstant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(StdDuration::from_millis(250));
                while let Ok(e) = events.pop() {
                    tracing::info!("ladder {} -> {}: {:?} because {:?}", e.from, e.to, e.step, e.reason);
                }
                if last_t.elapsed() >= StdDuration::from_secs(1) {
                    let now = frames_of(&stats);
                    let dt = last_t.elapsed().as_secs_f64();
                    let fps: Vec<String> = (0..CAMERA_COUNT).map(|c| format!("{:.0}", (now[c] - last[c]) as f64 / dt)).collect();
                    eprintln!("[{:6.1}s] {}", start.elapsed().as_secs_f64(), status_line(&stats, &fps, &rig));
                    last = now;
                    last_t = StdInstant::now();
                }
            }
        })?
    };

    let started = StdInstant::now();
    let deadline = args.duration.map(StdDuration::from_secs_f64);
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let out = match &mut rt {
            Either::Plain(r) => r.step(),
            Either::Shm(r) => r.step(),
        };
        match out {
            StepOutcome::Finished => break,
            StepOutcome::Idle => std::thread::sleep(StdDuration::from_micros(200)),
            _ => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (worst_age_ns, reads, torn) = ctl.join().map_err(|_| anyhow::anyhow!("control reader thread panicked"))?;
    status.join().map_err(|_| anyhow::anyhow!("status thread panicked"))?;
    let secs = started.elapsed().as_secs_f64();
    let frames = frames_of(&stats);
    eprintln!("\nsummary over {secs:.1} s ({} backend):", "cpu");
    for (c, cam) in rig.cameras().iter().enumerate() {
        eprintln!(
            "  {:<22} {:6.1} fps processed  skipped {:6}  dropped {:4}",
            cam.name,
            frames[c] as f64 / secs,
            stats.skipped[c].load(Ordering::Relaxed),
            stats.dropped[c].load(Ordering::Relaxed)
        );
    }
    let counts = stats.latency_us.counts();
    let p = |q| LatencyHistogram::percentile_ms(&counts, q).map(|v| format!("{v:.1} ms")).unwrap_or_else(|| "-".into());
    eprintln!("  latency capture->publish p50 {} p99 {}", p(0.5), p(0.99));
    eprintln!(
        "  snapshots published {}  control reads {} (busy, retried next tick: {})  worst snapshot age {:.1} ms",
        stats.published.load(Ordering::Relaxed),
        reads,
        torn,
        worst_age_ns as f64 / 1e6
    );
    eprintln!(
        "  ladder level at exit {}  backend failures {}  lost ladder events {}",
        stats.ladder_level.load(Ordering::Relaxed),
        stats.failures.load(Ordering::Relaxed),
        stats.lost_events.load(Ordering::Relaxed)
    );
    Ok(())
}

enum Either<A, B> {
    Plain(A),
    Shm(B),
}

fn frames_of(stats: &RuntimeStats) -> [u64; CAMERA_COUNT] {
    std::array::from_fn(|c| stats.frames[c].load(Ordering::Relaxed))
}

fn status_line(stats: &RuntimeStats, fps: &[String], _rig: &Rig) -> String {
    let counts = stats.latency_us.counts();
    let p50 = LatencyHistogram::percentile_ms(&counts, 0.5).unwrap_or(0.0);
    let p99 = LatencyHistogram::percentile_ms(&counts, 0.99).unwrap_or(0.0);
    let skipped: u64 = stats.skipped.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    let temp = stats.temp_mc.load(Ordering::Relaxed);
    format!(
        "fps {} | lat p50 {p50:.1} p99 {p99:.1} ms | power {:.1} W{} | ladder {} | skipped {skipped}",
        fps.join("/"),
        f64::from(stats.power_mw.load(Ordering::Relaxed)) / 1000.0,
        if temp > 0 { format!(" {:.0} C", f64::from(temp) / 1000.0) } else { String::new() },
        stats.ladder_level.load(Ordering::Relaxed)
    )
}

/// Ctrl-C stops the run cleanly (the summary still prints).
fn ctrlc_hook(f: impl Fn() + Send + 'static) {
    if let Err(e) = ctrlc::set_handler(f) {
        tracing::warn!("Ctrl-C handler not installed: {e}");
    }
}
