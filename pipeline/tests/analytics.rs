//! The pipeline feeds the analytics service: a synthetic log is recorded, replayed through the
//! whole runtime (rings -> executor -> detector -> fusion -> tracker -> control boundary) on a
//! virtual clock with the metric tap attached, the service releases its windows as DAP reports
//! to an in-process leader and helper on loopback, and the collected aggregate matches what
//! the pipeline did (counted independently, by a sink at the control boundary) within the
//! configured differential-privacy noise.
//!
//! With the network down (a port nothing listens on), the pipeline's output is byte-identical
//! to a run without analytics, nothing blocks, and the report waits in the spool.

use std::path::Path;
use std::time::Duration as StdDuration;

use analytics::config::{AnalyticsConfig, DapConfig};
use analytics::fleet::{InProcessAggregators, LoopbackDap};
use analytics::messages::TaskId;
use analytics::metrics::{Layout, confidence_bucket, latency_bucket};
use analytics::privacy::decode_aggregate;
use analytics::{Analytics, event::confidence_e4};
use control::Snapshot;
use kernels::plan::Plan;
use pipeline::detector::PlanDetector;
use pipeline::mcap_io::{ReadOptions, read_log};
use pipeline::record::{ImageEncoding, RecordOptions, record_synthetic};
use pipeline::rings::{InlineRings, from_log};
use pipeline::runtime::{CameraResult, Runtime, RuntimeConfig, Shadow, SnapshotSink, StepOutcome};
use pipeline::source::ReplaySource;
use rig::Rig;
use scheduler::clock::{Instant, millis};
use scheduler::governor::EnergyModel;
use scheduler::{ModelledTimes, VirtualClock};
use sha2::{Digest, Sha256};

const FPS: f64 = 12.0;
const SECONDS: f64 = 2.0;

/// What the pipeline did, counted at the control boundary (independently of the tap).
#[derive(Default)]
struct Truth {
    hash: Sha256,
    snapshots: u64,
    frames: u64,
    latency: Vec<u64>,
    confidence: Vec<u64>,
}

impl SnapshotSink for Truth {
    fn publish(&mut self, s: &mut Snapshot) {
        self.hash.update(zerocopy::IntoBytes::as_bytes(&*s));
        self.snapshots += 1;
    }
    fn on_result(&mut self, r: &CameraResult<'_>) {
        self.frames += 1;
        let us = (r.done_ns - r.capture_ns) / 1_000;
        self.latency[latency_bucket(us as i64)] += 1;
        for d in r.detections {
            self.confidence[confidence_bucket(i64::from(confidence_e4(d.score)))] += 1;
        }
    }
}

type Rt = Runtime<InlineRings<ReplaySource>, PlanDetector<kernels::cpu::Cpu>, VirtualClock, ModelledTimes, EnergyModel, Truth>;

/// The synthetic log, recorded once per test binary (rendering is the slow part).
fn log() -> &'static [u8] {
    static LOG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        record_log(dir.path())
    })
}

fn record_log(dir: &Path) -> Vec<u8> {
    let t = std::time::Instant::now();
    let path = dir.join("synthetic.mcap");
    let opts = RecordOptions { seconds: SECONDS, seed: 5, fps: FPS, cameras: Vec::new(), images: ImageEncoding::Raw };
    record_synthetic(&Rig::builtin(), &opts, &path, &mut |_, _| {}).expect("recording the synthetic log");
    eprintln!("recorded the log in {:?}", t.elapsed());
    std::fs::read(&path).unwrap()
}

/// A floor-sized random-weight plan for the rig's 640x384 cameras (cheap enough for a test;
/// the integer path is the product's).
fn plan() -> Plan {
    let mut p = kernels::synth::centernet_lite(96, 160, 3).unwrap();
    p.preprocess.src_w = 640;
    p.preprocess.src_h = 384;
    p
}

fn runtime(log: &[u8]) -> Rt {
    // 12 ms per frame against 96 frames/s of demand: a little over full load, so frames are
    // skipped or replaced and the counters other than `frames` move too.
    runtime_at(log, millis(12))
}

fn runtime_at(log: &[u8], cost: scheduler::clock::Duration) -> Rt {
    let rig = Rig::builtin();
    let contents = read_log(log, &ReadOptions::default());
    assert!(contents.problems.is_empty(), "{:?}", contents.problems.first());
    let input = InlineRings::new(from_log(&rig, contents).unwrap(), 0);
    let detector = PlanDetector::new(kernels::cpu::Cpu::new(1), vec![plan()], 1).unwrap();
    let cost = vec![cost];
    let energy = EnergyModel::new(5.0, &[0.05], scheduler::clock::secs(1));
    let truth = Truth { latency: vec![0; Layout::CONFIDENCE - Layout::LATENCY], confidence: vec![0; Layout::LUMA - Layout::CONFIDENCE], ..Default::default() };
    let (rt, _events) = Runtime::new(
        rig,
        RuntimeConfig::new(FPS as f32, 30.0),
        input,
        detector,
        VirtualClock::new(Instant::from_ticks(0)),
        ModelledTimes::new(&cost),
        energy,
        truth,
        cost,
    )
    .unwrap();
    rt
}

/// Runs to the end of the log; returns the longest wall time of one step.
fn run(rt: &mut Rt) -> StdDuration {
    let t0 = std::time::Instant::now();
    let mut worst = StdDuration::ZERO;
    for _ in 0..1_000_000 {
        let t = std::time::Instant::now();
        let out = rt.step();
        worst = worst.max(t.elapsed());
        if out == StepOutcome::Finished {
            eprintln!("ran the pipeline in {:?}", t0.elapsed());
            return worst;
        }
    }
    panic!("the loop did not finish");
}

fn task() -> TaskId {
    TaskId([9u8; 32])
}

fn config(state: &Path, leader: String, helper: String) -> AnalyticsConfig {
    let mut c = AnalyticsConfig { state_dir: state.to_path_buf(), window_secs: 60, ring_capacity: 1 << 16, ..Default::default() };
    c.dap = DapConfig { leader, helper, task_id: task().to_string(), time_precision_secs: 60 };
    c.upload.retry_min_ms = 20;
    c.upload.retry_max_ms = 200;
    c.upload.timeout_ms = 5_000;
    c.privacy.bits = 24;
    // A large epsilon keeps the noise (std about 1.4) small next to the counts, so the
    // comparison below is sharp; the noise is still applied (checked).
    c.privacy.l1_clip = 100_000;
    c.privacy.epsilon_per_report = 100_000.0;
    c.privacy.epsilon_per_day = 100_000.0;
    c
}

#[test]
fn pipeline_on_a_synthetic_log_uploads_an_aggregate_that_matches_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = log();
    let server = LoopbackDap::start(InProcessAggregators::new(task(), 24, Layout::LEN).unwrap()).unwrap();
    let cfg = config(&dir.path().join("vehicle"), server.leader_url(), server.helper_url());
    let svc = Analytics::start(cfg.clone()).unwrap();

    let mut rt = runtime(log);
    rt.set_metrics(svc.tap());
    run(&mut rt);
    assert_eq!(rt.metrics().unwrap().dropped(), 0, "the tap ring overflowed");
    let stats = rt.stats();
    let sum = |a: &[std::sync::atomic::AtomicU64]| a.iter().map(|x| x.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>();
    let (skipped, dropped) = (sum(&stats.skipped), sum(&stats.dropped));
    let truth = std::mem::take(rt.sink_mut());
    drop(rt);

    svc.flush_windows(StdDuration::from_secs(30)).unwrap();
    assert!(svc.wait_uploaded(StdDuration::from_secs(60)), "spool not drained: {:?}", svc.status());
    let st = svc.shutdown();
    assert_eq!(st.windows_released, 1, "{st:?}");
    assert_eq!(st.windows_clipped, 0, "clip bound too small for the test: {st:?}");

    let c = server.with_state(|s| s.aggregators.collect().unwrap());
    assert_eq!(c.reports, 1);
    let params = cfg.privacy_params().unwrap();
    let got = decode_aggregate(&c.sum, c.reports, &params);
    let tol = 7.0 * params.noise_std();

    let frames_total = (SECONDS * FPS) as u64 * 8;
    assert!(truth.frames > frames_total / 3, "only {} of {frames_total} frames processed", truth.frames);
    assert!(skipped > 0, "the test load should make the executor skip frames");
    let mut want = vec![None; Layout::LEN];
    want[Layout::counter("frames").unwrap()] = Some(truth.frames);
    want[Layout::counter("frame_skips").unwrap()] = Some(skipped);
    want[Layout::counter("deadline_misses").unwrap()] = Some(dropped);
    want[Layout::counter("failovers").unwrap()] = Some(0);
    want[Layout::counter("tap_drops").unwrap()] = Some(0);
    for (i, n) in truth.latency.iter().enumerate() {
        want[Layout::LATENCY + i] = Some(*n);
    }
    for (i, n) in truth.confidence.iter().enumerate() {
        want[Layout::CONFIDENCE + i] = Some(*n);
    }
    let luma_frames: i128 = got[Layout::LUMA..Layout::SHIFT].iter().sum();
    let mut exact = 0;
    for (i, w) in want.iter().enumerate() {
        let Some(w) = *w else { continue };
        let err = (got[i] - i128::from(w)) as f64;
        assert!(err.abs() <= tol, "{}: collected {} but the pipeline counted {w} (tolerance {tol:.1})", Layout::name(i), got[i]);
        exact += usize::from(err == 0.0);
    }
    // One input-statistics event per frame that ran (on time or dropped), noise per bucket.
    let ran = (truth.frames + dropped) as f64;
    assert!((luma_frames as f64 - ran).abs() <= tol * (Layout::SHIFT - Layout::LUMA) as f64, "luma histogram holds {luma_frames}, frames run {ran}");
    assert!(exact < want.iter().flatten().count(), "no coordinate carries noise: was DP applied?");
    eprintln!(
        "pipeline: {} frames, {skipped} skipped, {dropped} dropped, {} detections, {} snapshots; collected frames {} (tolerance {tol:.1})",
        truth.frames,
        truth.confidence.iter().sum::<u64>(),
        truth.snapshots,
        got[0]
    );
}

#[test]
fn network_down_leaves_the_hot_path_and_its_output_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let log = log();
    // A port that refuses connections: bind, learn the port, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };

    let mut plain = runtime(log);
    let worst_plain = run(&mut plain);
    let plain_hash = std::mem::take(plain.sink_mut()).hash.finalize();

    let cfg = config(&dir.path().join("offline"), dead.clone(), dead);
    let svc = Analytics::start(cfg).unwrap();
    let mut tapped = runtime(log);
    tapped.set_metrics(svc.tap());
    let worst_tapped = run(&mut tapped);
    assert_eq!(tapped.metrics().unwrap().dropped(), 0);
    let tapped_truth = std::mem::take(tapped.sink_mut());
    assert!(tapped_truth.snapshots > 0);
    assert_eq!(tapped_truth.hash.finalize(), plain_hash, "the control boundary saw different snapshots with analytics attached");

    // The window is released into the spool and stays there: nothing lost, nothing sent.
    svc.flush_windows(StdDuration::from_secs(30)).unwrap();
    assert!(!svc.wait_uploaded(StdDuration::from_millis(300)), "nothing can have been uploaded");
    let st = svc.shutdown();
    assert_eq!(st.windows_released, 1, "{st:?}");
    assert_eq!(st.spool.uploaded, 0, "{st:?}");
    assert!(st.spool_reports >= 1, "the report waits in the spool: {st:?}");
    // Not a timing assertion (CI machines are shared): the worst step with the uploader
    // offline is reported next to the worst without it, for the log.
    eprintln!("worst step: {worst_plain:?} without analytics, {worst_tapped:?} with the uploader offline");
}

/// A challenger in the champion's shadow runs only in spare time: at moderate load it runs on
/// many frames, the champion's published snapshots are byte-identical to a run without it,
/// and its comparison reaches the tap. The challenger here has the champion's own weights, so
/// on the same frame it must agree exactly: a single disagreement would mean it saw another
/// frame or camera than the champion did.
#[test]
fn a_challenger_in_the_shadow_leaves_the_champion_untouched() {
    let log = log();
    // 4 ms per frame against 96 frames/s: about 40 % load, time to spare.
    let mut base = runtime_at(log, millis(4));
    run(&mut base);
    let base_truth = std::mem::take(base.sink_mut());
    drop(base);

    let mut rt = runtime_at(log, millis(4));
    let (tap, mut reader) = analytics::tap::tap_ring(1 << 16);
    rt.set_metrics(tap);
    let challenger = PlanDetector::new(kernels::cpu::Cpu::new(1), vec![plan()], 1).unwrap();
    rt.set_shadow(Shadow::new(Box::new(challenger), 0, 2, millis(3)));
    run(&mut rt);
    let sh = rt.shadow().unwrap();
    let (ran, no_time) = (sh.ran, sh.no_time);
    let truth = std::mem::take(rt.sink_mut());
    drop(rt);

    eprintln!("shadow ran {ran} times, {no_time} sampled frames without spare time; {} frames", truth.frames);
    assert_eq!(truth.frames, base_truth.frames, "the shadow changed how many champion frames ran");
    assert_eq!(truth.snapshots, base_truth.snapshots);
    assert_eq!(truth.hash.finalize(), base_truth.hash.finalize(), "the shadow changed the champion's snapshots");
    // The rig's cameras capture together; the challenger gets one sampled frame per burst, in
    // the gap after the burst's last champion job.
    let bursts = (SECONDS * FPS) as u64;
    assert!(ran >= bursts / 2, "the shadow ran only {ran} times in {bursts} capture bursts at 40 % load");

    let (mut frames, mut compared, mut disagreements, mut shifts) = (0u64, 0u64, 0i64, 0u64);
    let mut cameras = [0u32; 8];
    reader.drain(|e| match e.kind {
        analytics::event::EventKind::ShadowFrame => {
            frames += 1;
            cameras[usize::from(e.camera)] += 1;
            compared += u64::from(e.aux);
            disagreements += e.value;
        }
        analytics::event::EventKind::ShadowConfidenceShift => {
            shifts += 1;
            assert_eq!(e.value, 0, "identical weights shifted confidence: {e:?}");
        }
        _ => {}
    });
    assert_eq!(frames, ran, "one ShadowFrame event per challenger run");
    let covered = cameras.iter().filter(|&&n| n > 0).count();
    assert!(covered >= 4, "the sampler favours some cameras: runs per camera {cameras:?}");
    assert!(compared > 0, "no detection was compared; the test says nothing");
    assert!(shifts > 0);
    assert_eq!(disagreements, 0, "the challenger saw a different frame than the champion");
}
