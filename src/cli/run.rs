//! `vigil run`: the perception pipeline, live.
//!
//! Camera sources (the synthetic rig, or a log decoded at start-up) deliver into per-camera
//! lock-free rings from a capture thread at their wall-clock capture times; the hot loop
//! (executor -> detector chain -> lift -> fusion -> tracking -> control boundary) runs on the
//! main thread; a 100 Hz control reader, a status printer and (with `--foxglove`) a
//! low-priority viewer run beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kernels::select::BackendChoice;
use pipeline::detector::{Detector, FailoverStats, select_detector};

use crate::cli::plans::{load_plans, stand_in_plans};
use pipeline::live::{LiveInput, LiveSink};
use pipeline::rings::CaptureStats;
use pipeline::runtime::{LatencyHistogram, Runtime, RuntimeConfig, RuntimeStats, StepOutcome};
use rig::{CAMERA_COUNT, Rig};
use scheduler::clock::{Duration, millis};
use scheduler::governor::EnergyModel;
use scheduler::{Clock, MonotonicClock, OnlineEstimator};

/// Arguments of `vigil run`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "Cameras deliver into lock-free rings from a capture thread at their capture times; a \
camera whose buffers are all held by a busy pipeline drops the capture (counted as a capture drop), it never \
waits.\n\n\
The status line shows per-camera processed frame rates (front cameras first), capture-to-publish latency \
p50/p99, modelled or measured power against the cap, the degradation ladder level, frames skipped by the \
executor, captures dropped at the rings, and the backend in use with its fail-overs. The exit summary repeats \
them for the whole run, with the worst snapshot age seen by a 100 Hz control reader.\n\n\
Backends: `auto` tries CUDA (builds with `--features cuda`), then WGSL on a real GPU adapter, never a software \
one such as llvmpipe (builds with `--features wgpu`), then the CPU; the start-up log says which and why. Every \
model variant is prepared on every backend of the chain; a device fault mid-run moves all variants to the next \
backend and re-runs the frame there, without stopping the control boundary.")]
pub struct Args {
    /// Frame source: `synthetic` (the built-in rig and world, a pre-rendered loop), or
    /// `replay:FILE.mcap` (read and decoded once at start-up, refused with the byte offset of
    /// the first problem; played at the recorded rate; the run ends with the log).
    #[arg(long, default_value = "synthetic", value_name = "SOURCE")]
    source: String,
    /// Compute backend: `auto` picks CUDA, then WGSL on a real GPU, then the CPU; `cuda` and
    /// `wgsl` insist on that backend (with the CPU as fail-over); `cpu` runs the CPU alone.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cuda", "wgsl", "cpu"])]
    backend: String,
    /// Directory with compiled `.vplan` variants (full, lite, floor). Without one, an
    /// untrained random-weight plan of the same shape runs (timing only; detections are noise).
    #[arg(long, default_value = "models")]
    model: PathBuf,
    /// Power cap enforced over a 1 s window, watts.
    #[arg(long, default_value_t = 30.0)]
    power_cap_w: f32,
    /// Stop after this many seconds (default: run until Ctrl-C, or the end of a replayed log).
    #[arg(long)]
    duration: Option<f64>,
    /// Camera rate of the synthetic source, frames per second (a replay runs at the log's rate).
    #[arg(long, default_value_t = 36.0)]
    fps: f64,
    /// World seed of the synthetic source.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of synthetic frames pre-rendered at start-up and looped.
    #[arg(long, default_value_t = 1.0)]
    loop_seconds: f64,
    /// Most memory for a replayed log's pre-decoded frames, MiB.
    #[arg(long, default_value_t = 4096)]
    max_frame_memory_mib: u64,
    /// CPU backend worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Also publish snapshots to this shared-memory file (e.g. /dev/shm/vigil).
    #[arg(long)]
    shm: Option<PathBuf>,
    /// Real-time mode: lock memory and run the hot thread SCHED_FIFO (needs CAP_SYS_NICE / root).
    #[arg(long)]
    rt: bool,
    /// Stream live to Foxglove over WebSocket, listening on ADDR (default 127.0.0.1:8765; open
    /// `ws://ADDR` in Foxglove). Per camera: the frame the detector saw, downscaled 2x, at most
    /// 5 per second, with its detections as image annotations; tracked objects as a scene update
    /// 10 times a second in the `vehicle` frame; the status once a second. A slow or absent
    /// viewer never slows the pipeline (what it cannot take is dropped and counted).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8765")]
    foxglove: Option<String>,
    /// vigil config file (TOML). Its `[analytics]` section turns on the fleet analytics: metric
    /// events leave the hot loop through a bounded lock-free ring to a low-priority thread
    /// that aggregates, privatises, spools and uploads them (`vigil analytics --help`).
    /// Default: $VIGIL_CONFIG, else /etc/vigil/vigil.toml; no file means analytics off.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Challenger model evaluated in the champion's shadow: a `.vplan` (e.g. the candidate an
    /// OTA update staged). It runs on the CPU on one sampled frame in `--shadow-every`, only in
    /// spare time (never when a frame is queued or due, nor while degraded); disagreement and
    /// confidence shift go to the analytics.
    #[arg(long, value_name = "PLAN")]
    shadow: Option<PathBuf>,
    /// Sample one champion frame in this many for the shadow challenger.
    #[arg(long, default_value_t = 4, value_name = "N")]
    shadow_every: u32,
}

/// Where frames come from, decided from `--source`.
enum Source {
    Synthetic,
    Replay(PathBuf),
}

fn parse_source(s: &str) -> anyhow::Result<Source> {
    match s {
        "synthetic" => Ok(Source::Synthetic),
        s if s.starts_with("replay:") => {
            let path = &s["replay:".len()..];
            if path.is_empty() {
                bail!("--source {s}: name the log, e.g. replay:drive.mcap");
            }
            Ok(Source::Replay(PathBuf::from(path)))
        }
        s if s.starts_with("v4l2:") => bail!(
            "--source {s}: V4L2 capture is not in this build; record with another tool to MCAP and use replay:FILE.mcap"
        ),
        s => bail!("--source {s}: expected `synthetic` or `replay:FILE.mcap`"),
    }
}

fn spinner(msg: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(msg);
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(StdDuration::from_millis(120));
    bar
}

/// Everything the status and summary print reads: atomics shared with the hot loop.
#[derive(Clone)]
struct Counters {
    run: Arc<RuntimeStats>,
    capture: Arc<CaptureStats>,
    failover: Arc<FailoverStats>,
    chain: Vec<&'static str>,
    #[cfg(feature = "foxglove")]
    view: Option<Arc<pipeline::live::ViewStats>>,
}

impl Counters {
    fn backend(&self) -> &'static str {
        self.chain.get(self.failover.active.load(Ordering::Relaxed)).copied().unwrap_or("?")
    }

    fn capture_dropped(&self) -> u64 {
        self.capture.dropped.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    fn view_dropped(&self) -> u64 {
        #[cfg(feature = "foxglove")]
        if let Some(v) = &self.view {
            return v.results_dropped.load(Ordering::Relaxed) + v.snapshots_dropped.load(Ordering::Relaxed);
        }
        0
    }
}

/// Entry point of `vigil run`.
pub fn main(args: Args) -> anyhow::Result<()> {
    if !(1.0..=240.0).contains(&args.fps) {
        bail!("--fps {}: must be between 1 and 240", args.fps);
    }
    let source = parse_source(&args.source)?;
    let choice: BackendChoice = args.backend.parse().map_err(anyhow::Error::msg)?;
    #[cfg(not(feature = "foxglove"))]
    if args.foxglove.is_some() {
        bail!("--foxglove: this build has no live view (rebuild with the default `foxglove` feature)");
    }
    #[cfg(feature = "foxglove")]
    let foxglove_addr: Option<std::net::SocketAddr> = match &args.foxglove {
        Some(a) => Some(a.parse().with_context(|| format!("--foxglove {a}: expected HOST:PORT, e.g. 127.0.0.1:8765"))?),
        None => None,
    };
    scheduler::trace::start_client();
    let rig = Rig::builtin();
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

    // Start-up work: the detector chain (every variant prepared on every backend).
    let (mut detector, why) = select_detector(choice, &plans, version, args.threads.max(1))
        .with_context(|| format!("--backend {}: preparing the model", args.backend))?;
    let chain = detector.chain();
    tracing::info!("backend: {} ({why}); fail-over chain: {}", detector.backend_name(), chain.join(" -> "));
    let mut faults = detector.take_faults();
    let failover = detector.stats();

    // Start-up work: frames.
    let clock = MonotonicClock;
    let (input, fps) = match &source {
        Source::Synthetic => {
            let frames = (args.loop_seconds * args.fps).ceil().max(1.0) as usize;
            let bar = spinner(format!("pre-rendering {frames} synthetic frames per camera"));
            let cams = pipeline::live::synthetic(&rig, args.seed, args.fps, frames);
            bar.finish_and_clear();
            let input = LiveInput::start(cams, clock, clock.now().ticks() + 5_000_000).context("starting the capture thread")?;
            (input, args.fps)
        }
        Source::Replay(path) => {
            let bar = spinner(format!("reading and decoding {}", path.display()));
            let log = pipeline::live::load_replay(&rig, path, args.max_frame_memory_mib.saturating_mul(1 << 20));
            bar.finish_and_clear();
            let log = log?;
            let fps = log.fps.unwrap_or(args.fps);
            let names: Vec<&str> = log.cameras.iter().map(|c| rig.cameras()[c.index].name.as_str()).collect();
            tracing::info!(
                "replay {}: {} captures over {:.1} s at {fps:.1} fps from {} camera(s) ({})",
                path.display(),
                log.captures,
                log.seconds,
                log.cameras.len(),
                names.join(", ")
            );
            let input = LiveInput::start(log.cameras, clock, clock.now().ticks() + 5_000_000).context("starting the capture thread")?;
            (input, fps)
        }
    };
    let LiveInput { pools, input, capture } = input;
    #[cfg(not(feature = "foxglove"))]
    let _ = pools;

    let n_var = detector.variants();
    // Prior execution times (refined online): 30 ms per 3.5 GOPs on two cores.
    let prior: Vec<Duration> = (0..n_var).map(|v| millis([30, 8, 3].get(usize::from(v)).copied().unwrap_or(3))).collect();
    let energy = EnergyModel::new(4.0, &[0.9, 0.25, 0.08][..usize::from(n_var).min(3)], scheduler::clock::secs(1));
    let (publisher, reader) = control::channel();
    let shm = match &args.shm {
        Some(path) => Some(control::ShmPublisher::create(path).with_context(|| format!("creating shared memory {}", path.display()))?),
        None => None,
    };
    #[cfg(feature = "foxglove")]
    let (view, view_rx) = match foxglove_addr {
        Some(_) => {
            let (sink, rx) = pipeline::live::view_channel(64, pipeline::live::ViewRates::default(), Some(input.tap()));
            (Some(sink), Some(rx))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "foxglove"))]
    let view = None;
    let sink = LiveSink { publisher, shm, view };
    let cfg = RuntimeConfig::new(fps as f32, args.power_cap_w);
    let (mut rt, mut events) = Runtime::new(rig.clone(), cfg, input, detector, clock, OnlineEstimator::new(&prior), energy, sink, Vec::new())?;
    let analytics = crate::cli::analytics::start_for_pipeline(args.config.as_deref())?;
    if let Some(svc) = &analytics {
        rt.set_metrics(svc.tap());
    }
    if let Some(path) = &args.shadow {
        let plan = kernels::vplan::load(path).with_context(|| format!("--shadow {}", path.display()))?;
        if plan.preprocess.src_w != cam_w || plan.preprocess.src_h != cam_h {
            bail!("--shadow {}: expects {}x{} frames but the rig's cameras are {cam_w}x{cam_h}", path.display(), plan.preprocess.src_w, plan.preprocess.src_h);
        }
        let cost = millis(match plan.meta.tier as u32 { 0 => 30, 1 => 8, _ => 3 });
        let (name, ver) = (plan.meta.variant.clone(), plan.meta.model_version);
        let challenger = pipeline::detector::PlanDetector::new(kernels::cpu::Cpu::new(args.threads.max(1)), vec![plan], ver.into())
            .with_context(|| format!("--shadow {}: preparing the challenger", path.display()))?;
        rt.set_shadow(pipeline::runtime::Shadow::new(Box::new(challenger), 0, args.shadow_every, cost));
        tracing::info!("shadow: challenger {} ({name}) on one frame in {}, in spare time", path.display(), args.shadow_every.max(1));
    }
    let counters = Counters {
        run: rt.stats(),
        capture,
        failover,
        chain,
        #[cfg(feature = "foxglove")]
        view: view_rx.as_ref().map(|r| Arc::clone(&r.stats)),
    };
    let started = StdInstant::now();

    #[cfg(feature = "foxglove")]
    let live_view = match (foxglove_addr, view_rx) {
        (Some(addr), Some(rx)) => {
            let opts = pipeline::foxglove::LiveViewOptions { addr, ..Default::default() };
            let c = counters.clone();
            let status = Box::new(move || status_json(&c, started));
            let unix_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
            let offset = unix_now - i128::from(MonotonicClock.now().ticks());
            let view = pipeline::foxglove::LiveView::start(&opts, &rig, pools, rx, status, offset).context("--foxglove")?;
            tracing::info!("foxglove: live view on ws://{} (open it in Foxglove: Open connection -> Foxglove WebSocket)", view.addr());
            Some(view)
        }
        _ => None,
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
    // Status, ladder events and backend faults: another thread; the hot loop only touches
    // atomics and bounded rings.
    let status = {
        let stop = Arc::clone(&stop);
        let c = counters.clone();
        std::thread::Builder::new().name("status".into()).spawn(move || {
            let mut last = frames_of(&c.run);
            let mut last_t = StdInstant::now();
            loop {
                let stopping = stop.load(Ordering::Relaxed);
                while let Ok(e) = events.pop() {
                    tracing::info!("ladder {} -> {}: {:?} because {:?}", e.from, e.to, e.step, e.reason);
                }
                if let Some(f) = &mut faults {
                    while let Ok(msg) = f.pop() {
                        tracing::warn!("backend fault: {msg}; every variant now runs on {}", c.backend());
                    }
                }
                if stopping {
                    break;
                }
                std::thread::sleep(StdDuration::from_millis(250));
                if last_t.elapsed() >= StdDuration::from_secs(1) {
                    let now = frames_of(&c.run);
                    let dt = last_t.elapsed().as_secs_f64();
                    let fps: Vec<String> = (0..CAMERA_COUNT).map(|k| format!("{:.0}", (now[k] - last[k]) as f64 / dt)).collect();
                    eprintln!("[{:6.1}s] {}", started.elapsed().as_secs_f64(), status_line(&c, &fps));
                    last = now;
                    last_t = StdInstant::now();
                }
            }
        })?
    };

    let deadline = args.duration.map(StdDuration::from_secs_f64);
    let mut ended = false;
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        match rt.step() {
            StepOutcome::Finished => {
                ended = true;
                break;
            }
            StepOutcome::Idle => std::thread::sleep(StdDuration::from_micros(200)),
            _ => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (worst_age_ns, reads, torn) = ctl.join().map_err(|_| anyhow::anyhow!("control reader thread panicked"))?;
    status.join().map_err(|_| anyhow::anyhow!("status thread panicked"))?;
    #[cfg(feature = "foxglove")]
    let view_clients = live_view.map(|v| {
        let n = v.clients();
        v.stop();
        n
    });
    let secs = started.elapsed().as_secs_f64();
    let stats = &counters.run;
    let frames = frames_of(stats);
    let how = if ended { ", end of the log" } else { "" };
    eprintln!("\nsummary over {secs:.1} s ({} backend{how}):", counters.backend());
    for (c, cam) in rig.cameras().iter().enumerate() {
        eprintln!(
            "  {:<22} {:6.1} fps processed  skipped {:6}  dropped {:4}  captured {:6}  capture drops {:4}",
            cam.name,
            frames[c] as f64 / secs,
            stats.skipped[c].load(Ordering::Relaxed),
            stats.dropped[c].load(Ordering::Relaxed),
            counters.capture.delivered[c].load(Ordering::Relaxed),
            counters.capture.dropped[c].load(Ordering::Relaxed),
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
        "  ladder level at exit {}  backend failures {}  fail-overs {} (chain {}; re-run frames {})  lost ladder events {}",
        stats.ladder_level.load(Ordering::Relaxed),
        stats.failures.load(Ordering::Relaxed),
        counters.failover.failovers.load(Ordering::Relaxed),
        counters.chain.join(" -> "),
        counters.failover.reruns.load(Ordering::Relaxed),
        stats.lost_events.load(Ordering::Relaxed)
    );
    if let Some(sh) = rt.shadow() {
        eprintln!("  shadow challenger: ran on {} frames, {} sampled frames had no spare time", sh.ran, sh.no_time);
    }
    if let Some(m) = rt.metrics() {
        let dropped = m.dropped();
        drop(rt);
        if let Some(svc) = analytics {
            let st = svc.shutdown();
            eprintln!(
                "  analytics: events folded {} (dropped at the tap {dropped}), windows released {} refused for budget {}, spool {} reports, epsilon left today {:.2}",
                st.events_folded, st.windows_released, st.windows_refused_budget, st.spool_reports, st.budget_left_epsilon
            );
        }
    }
    #[cfg(feature = "foxglove")]
    if let (Some(clients), Some(v)) = (view_clients, &counters.view) {
        eprintln!(
            "  foxglove: results sent {} dropped {}, snapshots sent {} dropped {}, clients at exit {clients}",
            v.results.load(Ordering::Relaxed),
            v.results_dropped.load(Ordering::Relaxed),
            v.snapshots.load(Ordering::Relaxed),
            v.snapshots_dropped.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

fn frames_of(stats: &RuntimeStats) -> [u64; CAMERA_COUNT] {
    std::array::from_fn(|c| stats.frames[c].load(Ordering::Relaxed))
}

fn status_line(c: &Counters, fps: &[String]) -> String {
    let stats = &c.run;
    let counts = stats.latency_us.counts();
    let p50 = LatencyHistogram::percentile_ms(&counts, 0.5).unwrap_or(0.0);
    let p99 = LatencyHistogram::percentile_ms(&counts, 0.99).unwrap_or(0.0);
    let skipped: u64 = stats.skipped.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    let temp = stats.temp_mc.load(Ordering::Relaxed);
    let failovers = c.failover.failovers.load(Ordering::Relaxed);
    let view = match c.view_dropped() {
        0 => String::new(),
        n => format!(" | view drops {n}"),
    };
    format!(
        "fps {} | lat p50 {p50:.1} p99 {p99:.1} ms | power {:.1} W{} | ladder {} | skipped {skipped} | capture drops {} | {}{}{view}",
        fps.join("/"),
        f64::from(stats.power_mw.load(Ordering::Relaxed)) / 1000.0,
        if temp > 0 { format!(" {:.0} C", f64::from(temp) / 1000.0) } else { String::new() },
        stats.ladder_level.load(Ordering::Relaxed),
        c.capture_dropped(),
        c.backend(),
        if failovers > 0 { format!(" (fail-overs {failovers})") } else { String::new() },
    )
}

/// The status as the JSON object of the live view's `/status` topic.
#[cfg(feature = "foxglove")]
fn status_json(c: &Counters, started: StdInstant) -> String {
    let stats = &c.run;
    let counts = stats.latency_us.counts();
    let fps: Vec<f64> = stats.frames.iter().map(|f| f.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64().max(1e-3)).collect();
    let temp = stats.temp_mc.load(Ordering::Relaxed);
    serde_json::json!({
        "uptime_s": started.elapsed().as_secs_f64(),
        "fps_avg": fps,
        "latency_p50_ms": LatencyHistogram::percentile_ms(&counts, 0.5).unwrap_or(0.0),
        "latency_p99_ms": LatencyHistogram::percentile_ms(&counts, 0.99).unwrap_or(0.0),
        "power_w": f64::from(stats.power_mw.load(Ordering::Relaxed)) / 1000.0,
        "temperature_c": if temp > 0 { Some(f64::from(temp) / 1000.0) } else { None },
        "ladder_level": stats.ladder_level.load(Ordering::Relaxed),
        "skipped": stats.skipped.iter().map(|s| s.load(Ordering::Relaxed)).sum::<u64>(),
        "capture_dropped": c.capture_dropped(),
        "backend": c.backend(),
        "failovers": c.failover.failovers.load(Ordering::Relaxed),
        "view_dropped": c.view_dropped(),
    })
    .to_string()
}

/// Ctrl-C stops the run cleanly (the summary still prints).
fn ctrlc_hook(f: impl Fn() + Send + 'static) {
    if let Err(e) = ctrlc::set_handler(f) {
        tracing::warn!("Ctrl-C handler not installed: {e}");
    }
}
