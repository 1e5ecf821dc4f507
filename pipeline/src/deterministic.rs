//! Deterministic replay: a recorded log through the real runtime on a virtual clock.
//!
//! [`replay_deterministic`] decodes a log with [`read_log`], puts its cameras on
//! [`InlineRings`] and runs the whole hot loop (executor -> detector -> lift -> fusion ->
//! tracking -> control boundary, under the ladder and the governor) on a
//! [`VirtualClock`] that starts at the log's first capture, so every timestamp of the
//! output is a log time. Execution times and energy come from a fixed per-variant model
//! ([`ExecModel`]), never from the wall clock, so which frames run, on which variant, and
//! what is published depends only on the log, the plans and the options. Because every
//! backend is byte-identical to `cpu-ref` (the integer contract), the output file is too:
//! `cpu-ref`, `cpu` and `wgsl` write the same bytes (`tests/replay_deterministic.rs`).
//!
//! The output is an MCAP file (writer settings fixed as in [`crate::record`]):
//!
//! | topic | schema | one message per |
//! |---|---|---|
//! | `/camera/<name>/annotations` | `foxglove.ImageAnnotations` | on-time result of that camera (log time: when the result was ready; annotation time: the image's) |
//! | `/objects` | `foxglove.SceneUpdate` | published snapshot: tracked objects in the `vehicle` frame |
//! | `/snapshot` | `vigil.Snapshot` (JSON) | published snapshot, as the control loop saw it |
//!
//! and a metadata record `vigil.replay.deterministic` (model, execution model, counts). The
//! backend's name is deliberately not in the file.

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use foxglove::Encode;
use kernels::plan::Plan;
use mcap::records::MessageHeader;
use rig::{CAMERA_COUNT, Rig};
use scheduler::clock::{Duration, Instant};
use scheduler::governor::EnergyModel;
use scheduler::{Clock, ModelledTimes, VirtualClock};

use crate::annotate::{Recorder, SNAPSHOT_SCHEMA, SNAPSHOT_SCHEMA_NAME, image_annotations, scene_update, snapshot_json};
use crate::detector::Detector;
use crate::mcap_io::{Problem, ReadOptions, read_log};
use crate::rings::{InlineRings, from_log};
use crate::runtime::{Runtime, RuntimeConfig, StepOutcome};
use crate::source::ReplaySource;

/// Throughput assumed for a plan without a measured latency: 115 GOP/s, i.e. 30 ms for the
/// 3.46 GOPs full CenterNet-lite variant (the prior `vigil run` starts from on two cores).
pub const REFERENCE_OPS_PER_US: u64 = 115_000;
/// Least modelled cost of one job, microseconds.
pub const MIN_COST_US: u64 = 500;
/// Power drawn above idle while a job runs, for plans without an energy estimate: energy of a
/// job = this x its modelled cost.
pub const ACTIVE_POWER_W: f32 = 15.0;
/// Idle power of the modelled chip, watts.
pub const IDLE_POWER_W: f32 = 4.0;
/// Camera rate assumed when the log's image streams have fewer than two messages each.
pub const DEFAULT_FPS: f32 = 30.0;
/// Topic of the tracked objects.
pub const OBJECTS_TOPIC: &str = "/objects";
/// Topic of the published snapshots.
pub const SNAPSHOT_TOPIC: &str = "/snapshot";
/// Name of the metadata record.
pub const METADATA_NAME: &str = "vigil.replay.deterministic";

/// `/camera/<name>/annotations`.
pub fn annotations_topic(camera: &str) -> String {
    format!("/camera/{camera}/annotations")
}

/// Fixed execution-time and energy model per variant (largest first).
#[derive(Clone, Debug, PartialEq)]
pub struct ExecModel {
    /// Modelled time of one job per variant: the scheduler's prediction and what the virtual
    /// clock advances by.
    pub cost: Vec<Duration>,
    /// Energy of one job per variant above idle, joules.
    pub energy_j: Vec<f32>,
    /// Idle power, watts.
    pub idle_w: f32,
}

impl ExecModel {
    /// From the plans' metadata: `latency_us` where measured, else `ops_per_frame` at
    /// [`REFERENCE_OPS_PER_US`] (at least [`MIN_COST_US`]); `energy_mj` where estimated, else
    /// [`ACTIVE_POWER_W`] x cost; idle [`IDLE_POWER_W`].
    pub fn from_plans(plans: &[Plan]) -> Self {
        let cost_us: Vec<u64> = plans
            .iter()
            .map(|p| match p.meta.latency_us {
                0 => (p.meta.ops_per_frame / REFERENCE_OPS_PER_US).max(MIN_COST_US),
                us => u64::from(us),
            })
            .collect();
        let energy_j = plans
            .iter()
            .zip(&cost_us)
            .map(|(p, &us)| if p.meta.energy_mj > 0.0 { p.meta.energy_mj / 1000.0 } else { ACTIVE_POWER_W * us as f32 / 1e6 })
            .collect();
        ExecModel { cost: cost_us.iter().map(|&us| Duration::from_ticks(us * 1_000)).collect(), energy_j, idle_w: IDLE_POWER_W }
    }

    /// The same cost for every one of `variants` variants, energy [`ACTIVE_POWER_W`] x cost.
    pub fn uniform(cost: Duration, variants: usize) -> Self {
        let j = ACTIVE_POWER_W * cost.ticks() as f32 / 1e9;
        ExecModel { cost: vec![cost; variants.max(1)], energy_j: vec![j; variants.max(1)], idle_w: IDLE_POWER_W }
    }
}

/// Options of [`replay_deterministic`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The rig the log was recorded with (cameras are matched by name).
    pub rig: Rig,
    /// Execution-time and energy model.
    pub model: ExecModel,
    /// Words naming the model, written into the metadata record (never the backend).
    pub model_name: String,
    /// Power cap, watts.
    pub power_cap_w: f32,
    /// Nominal camera rate; `None`: from the log (the fastest camera's median frame period).
    pub fps: Option<f32>,
    /// How the log is read (frame memory budget).
    pub read: ReadOptions,
}

impl Options {
    /// Defaults for `rig` and `model`: the rate from the log, a 30 W cap, 4 GiB of frames.
    pub fn new(rig: Rig, model: ExecModel) -> Self {
        Options { rig, model, model_name: String::new(), power_cap_w: 30.0, fps: None, read: ReadOptions::default() }
    }
}

/// One camera's part of a [`Summary`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CameraSummary {
    /// Rig camera name.
    pub name: String,
    /// Images of the camera in the log.
    pub captures: u64,
    /// Frames that ran and produced an on-time result (= annotation messages).
    pub run: u64,
    /// Frames skipped before running (decimated, replaced by a newer one, predicted to miss).
    pub skipped: u64,
    /// Frames that ran but missed their deadline (result dropped).
    pub dropped: u64,
    /// Captures lost at the ring (no free buffer).
    pub ring_drops: u64,
}

/// What a deterministic replay did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Cameras of the log, in rig order.
    pub cameras: Vec<CameraSummary>,
    /// Snapshots published.
    pub snapshots: u64,
    /// Detections in on-time results (all cameras).
    pub detections: u64,
    /// Nominal camera rate the runtime was configured with.
    pub fps: f32,
    /// Virtual time from the first capture to the end, nanoseconds.
    pub virtual_ns: u64,
    /// Highest degradation ladder level seen in a snapshot.
    pub max_ladder_level: u16,
    /// Messages written to the output (0 without one).
    pub messages: u64,
}

impl Summary {
    /// A short human-readable table.
    pub fn table(&self) -> String {
        let mut s = format!("{:<20} {:>8} {:>6} {:>8} {:>8} {:>10}\n", "camera", "captures", "run", "skipped", "dropped", "ring drops");
        for c in &self.cameras {
            s += &format!("{:<20} {:>8} {:>6} {:>8} {:>8} {:>10}\n", c.name, c.captures, c.run, c.skipped, c.dropped, c.ring_drops);
        }
        s += &format!(
            "{} snapshots, {} detections, {:.2} s virtual at {:.1} fps, highest ladder level {}, {} messages written\n",
            self.snapshots,
            self.detections,
            self.virtual_ns as f64 / 1e9,
            self.fps,
            self.max_ladder_level,
            self.messages
        );
        s
    }
}

/// Why a deterministic replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The log has problems; the first one names its byte offset.
    #[error("{first} ({count} problem(s) in the log)")]
    Log {
        /// First problem, in file order.
        first: Problem,
        /// Problems found.
        count: usize,
    },
    /// The log ends before its footer (truncated).
    #[error("the log is incomplete: no footer and end magic after byte offset {size}")]
    Incomplete {
        /// File size.
        size: u64,
    },
    /// The decoded frames do not fit the memory budget.
    #[error("decoded frames exceed the budget of {0} MiB")]
    Budget(u64),
    /// The log's cameras do not fit the rig, or there are none.
    #[error("{0}")]
    Cameras(String),
    /// The runtime could not be built.
    #[error("building the runtime: {0}")]
    Runtime(String),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Write(String),
    /// The loop ran far more steps than the log has frames (a bug; never loops forever).
    #[error("the replay did not finish within {0} steps")]
    Runaway(u64),
}

fn werr(e: impl std::fmt::Display) -> ReplayError {
    ReplayError::Write(e.to_string())
}

/// The MCAP output and its channels.
struct Out<'w, W: Write + Seek> {
    w: mcap::Writer<&'w mut W>,
    annotations: [Option<(u16, u32)>; CAMERA_COUNT],
    objects: (u16, u32),
    snapshot: (u16, u32),
    buf: Vec<u8>,
    messages: u64,
}

impl<'w, W: Write + Seek> Out<'w, W> {
    fn new(out: &'w mut W, rig: &Rig, cameras: &[usize]) -> Result<Self, ReplayError> {
        let mut w = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .compression_level(3)
            .compression_threads(0)
            .chunk_size(Some(crate::record::CHUNK_SIZE))
            .profile("")
            .library(crate::record::LIBRARY)
            .create(out)
            .map_err(werr)?;
        let none = BTreeMap::new();
        let mut schema = |s: Option<foxglove::Schema>| -> Result<u16, ReplayError> {
            let s = s.ok_or_else(|| werr("foxglove type without schema"))?;
            w.add_schema(&s.name, &s.encoding, &s.data).map_err(werr)
        };
        let ann = schema(foxglove::messages::ImageAnnotations::get_schema())?;
        let scene = schema(foxglove::messages::SceneUpdate::get_schema())?;
        let snap = w.add_schema(SNAPSHOT_SCHEMA_NAME, "jsonschema", SNAPSHOT_SCHEMA.as_bytes()).map_err(werr)?;
        let mut annotations = [None; CAMERA_COUNT];
        for &i in cameras {
            let topic = annotations_topic(&rig.cameras()[i].name);
            annotations[i] = Some((w.add_channel(ann, &topic, "protobuf", &none).map_err(werr)?, 0));
        }
        let objects = (w.add_channel(scene, OBJECTS_TOPIC, "protobuf", &none).map_err(werr)?, 0);
        let snapshot = (w.add_channel(snap, SNAPSHOT_TOPIC, "json", &none).map_err(werr)?, 0);
        Ok(Out { w, annotations, objects, snapshot, buf: Vec::with_capacity(1 << 16), messages: 0 })
    }

    fn write(&mut self, ch: (u16, u32), time: u64) -> Result<(), ReplayError> {
        let h = MessageHeader { channel_id: ch.0, sequence: ch.1, log_time: time, publish_time: time };
        self.w.write_to_known_channel(&h, &self.buf).map_err(werr)?;
        self.messages += 1;
        Ok(())
    }

    /// Writes what the recorder holds (one step's output) and clears it.
    fn drain(&mut self, rec: &Recorder) -> Result<(), ReplayError> {
        for r in &rec.results {
            let Some(ch) = self.annotations.get_mut(usize::from(r.camera)).and_then(|c| c.as_mut()) else { continue };
            let ch_now = *ch;
            ch.1 = ch.1.wrapping_add(1);
            self.buf.clear();
            image_annotations(r.capture_ns, r.variant, r.done_ns, rec.detections_of(r)).encode(&mut self.buf).map_err(werr)?;
            self.write(ch_now, r.done_ns)?;
        }
        for s in &rec.snapshots {
            self.buf.clear();
            scene_update(s).encode(&mut self.buf).map_err(werr)?;
            let ch = self.objects;
            self.objects.1 = ch.1.wrapping_add(1);
            self.write(ch, s.publish_ns)?;
            self.buf.clear();
            serde_json::to_writer(&mut self.buf, &snapshot_json(s)).map_err(werr)?;
            let ch = self.snapshot;
            self.snapshot.1 = ch.1.wrapping_add(1);
            self.write(ch, s.publish_ns)?;
        }
        Ok(())
    }

    fn finish(mut self, meta: BTreeMap<String, String>) -> Result<u64, ReplayError> {
        self.w.write_metadata(&mcap::records::Metadata { name: METADATA_NAME.into(), metadata: meta }).map_err(werr)?;
        self.w.finish().map_err(werr)?;
        let inner = self.w.into_inner();
        inner.flush().map_err(werr)?;
        Ok(self.messages)
    }
}

/// Replays `log` (a whole MCAP file) through the runtime with `detector`, writing the output
/// MCAP to `out` (see the module docs). `progress(done_ns, total_ns)` is called now and then
/// with the virtual time covered so far and the log's span.
pub fn replay_deterministic<D: Detector, W: Write + Seek>(
    log: &[u8],
    detector: D,
    opts: &Options,
    out: &mut W,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ReplayError> {
    run(log, detector, opts, Some(out), progress)
}

/// [`replay_deterministic`] without an output file: the summary only.
pub fn replay_summary<D: Detector>(log: &[u8], detector: D, opts: &Options, progress: &mut dyn FnMut(u64, u64)) -> Result<Summary, ReplayError> {
    run::<D, std::io::Cursor<Vec<u8>>>(log, detector, opts, None, progress)
}

type Rt<D> = Runtime<InlineRings<ReplaySource>, D, VirtualClock, ModelledTimes, EnergyModel, Recorder>;

fn run<D: Detector, W: Write + Seek>(
    log: &[u8],
    detector: D,
    opts: &Options,
    out: Option<&mut W>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Summary, ReplayError> {
    let contents = read_log(log, &opts.read);
    if let Some(first) = contents.problems.first() {
        return Err(ReplayError::Log { first: first.clone(), count: contents.problems.len() });
    }
    if !contents.complete {
        return Err(ReplayError::Incomplete { size: contents.size });
    }
    if contents.budget_exceeded {
        return Err(ReplayError::Budget(opts.read.max_decoded_bytes >> 20));
    }
    let fps = opts.fps.unwrap_or_else(|| {
        contents.cameras.iter().map(|c| c.stats.period_ns).filter(|&p| p > 0).min().map_or(DEFAULT_FPS, |p| (1e9 / p as f64) as f32)
    });
    let captures: BTreeMap<String, u64> = contents.cameras.iter().map(|c| (c.name.clone(), c.captures.len() as u64)).collect();
    let first = contents.cameras.iter().filter_map(|c| c.captures.first()).map(|c| c.timestamp_ns).min().unwrap_or(0);
    let last = contents.cameras.iter().filter_map(|c| c.captures.last()).map(|c| c.timestamp_ns).max().unwrap_or(first);
    let total_captures: u64 = captures.values().sum();
    let cams = from_log(&opts.rig, contents).map_err(ReplayError::Cameras)?;
    let input = InlineRings::new(cams, first);
    let present: Vec<usize> = input.cameras().collect();

    let m = &opts.model;
    let version = detector.model_version();
    let variants = usize::from(detector.variants().max(1));
    let pad = |v: &[Duration]| -> Vec<Duration> { (0..variants).map(|i| v.get(i).or(v.last()).copied().unwrap_or(Duration::from_ticks(1_000_000))).collect() };
    let cost = pad(&m.cost);
    let energy_j: Vec<f32> = (0..variants).map(|i| m.energy_j.get(i).or(m.energy_j.last()).copied().unwrap_or(0.0)).collect();
    let energy = EnergyModel::new(m.idle_w, &energy_j, scheduler::clock::secs(1));
    let cfg = RuntimeConfig::new(fps, opts.power_cap_w);
    let (mut rt, _events): (Rt<D>, _) = Runtime::new(
        opts.rig.clone(),
        cfg,
        input,
        detector,
        VirtualClock::new(Instant::from_ticks(first)),
        ModelledTimes::new(&cost),
        energy,
        Recorder::new(),
        cost.clone(),
    )
    .map_err(|e| ReplayError::Runtime(e.to_string()))?;

    let mut out = match out {
        Some(w) => Some(Out::new(w, &opts.rig, &present)?),
        None => None,
    };
    let span = last - first;
    let limit = total_captures.saturating_mul(8) + 10_000;
    let mut max_level = 0u16;
    let mut steps = 0u64;
    progress(0, span);
    loop {
        let outcome = rt.step();
        steps += 1;
        let rec = rt.sink_mut();
        for s in &rec.snapshots {
            max_level = max_level.max(s.degradation_level);
        }
        if let Some(o) = out.as_mut() {
            o.drain(rec)?;
        }
        rec.clear();
        if outcome == StepOutcome::Finished {
            break;
        }
        if steps >= limit {
            return Err(ReplayError::Runaway(steps));
        }
        if steps.is_multiple_of(64) {
            progress(rt.clock().now().ticks().saturating_sub(first).min(span), span);
        }
    }
    let end = rt.clock().now().ticks();
    progress(span, span);

    let stats = rt.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let drops = rt.input_mut().drops();
    let cameras: Vec<CameraSummary> = present
        .iter()
        .map(|&i| {
            let name = opts.rig.cameras()[i].name.clone();
            CameraSummary {
                captures: captures.get(&name).copied().unwrap_or(0),
                run: load(&stats.frames[i]),
                skipped: load(&stats.skipped[i]),
                dropped: load(&stats.dropped[i]),
                ring_drops: drops[i],
                name,
            }
        })
        .collect();
    let rec = rt.sink_mut();
    let mut summary = Summary {
        cameras,
        snapshots: rec.published(),
        detections: rec.detections_seen(),
        fps,
        virtual_ns: end.saturating_sub(first),
        max_ladder_level: max_level,
        messages: 0,
    };
    if let Some(o) = out {
        let mut meta = BTreeMap::new();
        meta.insert("model".to_string(), opts.model_name.clone());
        meta.insert("model_version".to_string(), version.to_string());
        meta.insert("variants".to_string(), variants.to_string());
        let us: Vec<String> = cost.iter().map(|d| (d.ticks() / 1_000).to_string()).collect();
        meta.insert("cost_us".to_string(), us.join(" "));
        let mj: Vec<String> = energy_j.iter().map(|j| format!("{}", (f64::from(*j) * 1e3).round() as u64)).collect();
        meta.insert("energy_mj".to_string(), mj.join(" "));
        meta.insert("idle_w".to_string(), m.idle_w.to_string());
        meta.insert("power_cap_w".to_string(), opts.power_cap_w.to_string());
        meta.insert("fps".to_string(), fps.to_string());
        meta.insert("input_bytes".to_string(), log.len().to_string());
        meta.insert("snapshots".to_string(), summary.snapshots.to_string());
        meta.insert("detections".to_string(), summary.detections.to_string());
        for (i, c) in summary.cameras.iter().enumerate() {
            meta.insert(
                format!("camera.{i}"),
                format!("{} captures={} run={} skipped={} dropped={} ring_drops={}", c.name, c.captures, c.run, c.skipped, c.dropped, c.ring_drops),
            );
        }
        summary.messages = o.finish(meta)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_come_from_measured_latency_else_from_ops() {
        let mut a = kernels::synth::centernet_lite(96, 160, 1).unwrap();
        let mut b = a.clone();
        a.meta.latency_us = 2_500;
        a.meta.energy_mj = 40.0;
        b.meta.ops_per_frame = 3_450_000_000;
        let m = ExecModel::from_plans(&[a, b]);
        assert_eq!(m.cost, vec![Duration::from_ticks(2_500_000), Duration::from_ticks(30_000_000)]);
        assert!((m.energy_j[0] - 0.04).abs() < 1e-6 && (m.energy_j[1] - 0.45).abs() < 1e-6, "{:?}", m.energy_j);
        let mut tiny = kernels::synth::centernet_lite(96, 160, 1).unwrap();
        tiny.meta.ops_per_frame = 1;
        assert_eq!(ExecModel::from_plans(&[tiny]).cost[0], Duration::from_ticks(MIN_COST_US * 1_000));
    }

    #[test]
    fn a_truncated_log_is_refused_with_a_byte_offset() {
        let rig = Rig::builtin();
        let plan = kernels::synth::centernet_lite(96, 160, 1).unwrap();
        let det = crate::detector::PlanDetector::new(kernels::cpu_ref::CpuRef, vec![plan], 1).unwrap();
        let mut bytes = mcap::MAGIC.to_vec();
        bytes.extend_from_slice(&[0x01, 200, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
        let err = replay_summary(&bytes, det, &Options::new(rig, ExecModel::uniform(scheduler::clock::millis(5), 1)), &mut |_, _| {}).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("byte offset"), "{msg}");
    }
}
