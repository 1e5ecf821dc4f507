//! The live pipeline's edges for `vigil run`: camera input on a capture thread, and the
//! snapshot sink that fans out to the control boundary and, optionally, a live viewer.
//!
//! * Input: [`synthetic`] and [`load_replay`] build per-camera sources and rings;
//!   [`LiveInput::start`] hands them to a [`ThreadedRings`] capture thread that completes each
//!   capture at its wall-clock time (replay plays at the recorded rate), wrapped in a
//!   [`TapInput`] that remembers which pool slot each camera's running job reads.
//! * Output: [`LiveSink`] publishes to the in-process control channel (and shared memory when
//!   asked), marks a Tracy frame per camera result, and feeds a [`ViewSink`]: fixed-size
//!   records pushed into bounded rings for a low-priority viewer thread (see
//!   [`crate::foxglove`]). The hot thread never waits for the viewer: a full ring costs a
//!   counted drop.
//!
//! Nothing here allocates, locks or does I/O on the hot thread after start-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use control::Snapshot;
use rig::{CAMERA_COUNT, ObjectClass, Rig};
use scheduler::Clock;

use crate::mcap_io::{Problem, ReadOptions, read_log};
use crate::perception::Detection;
use crate::pool::FramePool;
use crate::rings::{CaptureStats, RingCamera, ThreadedRings};
use crate::runtime::{CameraResult, FrameInput, FrameRef, SnapshotSink};
use crate::source::{CameraSource, ReplaySource, SyntheticSource};

/// Synthetic cameras of `rig`: `loop_frames` frames of world `seed` rendered at start-up (the
/// only heavy work) and cycled at `fps`, endlessly.
pub fn synthetic(rig: &Rig, seed: u64, fps: f64, loop_frames: usize) -> Vec<RingCamera<SyntheticSource>> {
    crate::rings::synthetic(rig, seed, fps, loop_frames, None)
}

/// Why a log cannot be replayed live. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The log.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The log has problems (corrupt records, bad chunks, undecodable images).
    #[error("{path}: {count} problem(s) in the log; first at {first}")]
    Problems {
        /// The log.
        path: PathBuf,
        /// How many.
        count: usize,
        /// The first, with its byte offset.
        first: Problem,
    },
    /// The log ends before its footer.
    #[error("{path}: the log is incomplete (it ends at byte {size} without a footer)")]
    Incomplete {
        /// The log.
        path: PathBuf,
        /// File size.
        size: u64,
    },
    /// The decoded frames would not fit the memory budget.
    #[error("{path}: decoded frames exceed the frame memory budget of {max_mib} MiB")]
    Budget {
        /// The log.
        path: PathBuf,
        /// The budget.
        max_mib: u64,
    },
    /// The log's cameras do not fit the rig.
    #[error("{path}: {why}")]
    Cameras {
        /// The log.
        path: PathBuf,
        /// What does not fit (names the camera).
        why: String,
    },
}

/// A log read and decoded at start-up, ready to be played.
pub struct ReplayLog {
    /// Its cameras, matched to the rig.
    pub cameras: Vec<RingCamera<ReplaySource>>,
    /// Frame rate of the log (from the median capture period), when it has one.
    pub fps: Option<f64>,
    /// Captures in the log, all cameras together.
    pub captures: u64,
    /// Seconds from the first to the last capture.
    pub seconds: f64,
}

/// Reads `path` once, refuses a log with problems (naming the file and the byte offset of the
/// first problem), decodes every frame into the camera pools (at most `max_decoded_bytes`) and
/// matches the log's cameras to `rig` by name.
pub fn load_replay(rig: &Rig, path: &Path, max_decoded_bytes: u64) -> Result<ReplayLog, LiveError> {
    let bytes = std::fs::read(path).map_err(|source| LiveError::Io { path: path.into(), source })?;
    let log = read_log(&bytes, &ReadOptions { max_decoded_bytes, decode_images: true });
    drop(bytes);
    if let Some(first) = log.problems.first() {
        return Err(LiveError::Problems { path: path.into(), count: log.problems.len(), first: first.clone() });
    }
    if !log.complete {
        return Err(LiveError::Incomplete { path: path.into(), size: log.size });
    }
    if log.budget_exceeded {
        return Err(LiveError::Budget { path: path.into(), max_mib: max_decoded_bytes >> 20 });
    }
    let mut periods: Vec<u64> = log.cameras.iter().map(|c| c.stats.period_ns).filter(|&p| p > 0).collect();
    periods.sort_unstable();
    let fps = periods.get(periods.len() / 2).map(|&p| 1e9 / p as f64);
    let captures = log.cameras.iter().map(|c| c.captures.len() as u64).sum();
    let first = log.cameras.iter().map(|c| c.stats.first_ns).min().unwrap_or(0);
    let last = log.cameras.iter().map(|c| c.stats.last_ns).max().unwrap_or(0);
    let cameras = crate::rings::from_log(rig, log).map_err(|why| LiveError::Cameras { path: path.into(), why })?;
    Ok(ReplayLog { cameras, fps, captures, seconds: last.saturating_sub(first) as f64 * 1e-9 })
}

/// Which pool slot each camera's running job reads: written by [`TapInput::pixels`] just before
/// the detector runs, read by [`ViewSink::on_result`] for the same job (both on the hot thread).
#[derive(Debug, Default)]
pub struct FrameTap {
    capture_ns: [AtomicU64; CAMERA_COUNT],
    slot: [AtomicU64; CAMERA_COUNT],
}

impl FrameTap {
    /// The slot of `camera`'s frame captured at `capture_ns`, if it is the one last read.
    pub fn slot_of(&self, camera: u8, capture_ns: u64) -> Option<u32> {
        let c = usize::from(camera);
        if self.capture_ns.get(c)?.load(Ordering::Relaxed) != capture_ns {
            return None;
        }
        Some(self.slot[c].load(Ordering::Relaxed) as u32)
    }
}

/// A [`FrameInput`] that notes, per camera, the slot of the frame whose pixels were last read.
pub struct TapInput<I> {
    inner: I,
    tap: Arc<FrameTap>,
}

impl<I: FrameInput> TapInput<I> {
    /// Wraps `inner`.
    pub fn new(inner: I) -> Self {
        TapInput { inner, tap: Arc::new(FrameTap::default()) }
    }

    /// The shared tap (give it to a [`ViewSink`]).
    pub fn tap(&self) -> Arc<FrameTap> {
        Arc::clone(&self.tap)
    }

    /// The wrapped input.
    pub fn inner(&self) -> &I {
        &self.inner
    }
}

impl<I: FrameInput> FrameInput for TapInput<I> {
    fn poll(&mut self, camera: u8, now_ns: u64) -> Option<FrameRef> {
        self.inner.poll(camera, now_ns)
    }

    fn pixels(&self, frame: &FrameRef) -> &[u8] {
        let c = usize::from(frame.camera);
        if c < CAMERA_COUNT {
            self.tap.slot[c].store(u64::from(frame.slot), Ordering::Relaxed);
            self.tap.capture_ns[c].store(frame.capture_ns, Ordering::Relaxed);
        }
        self.inner.pixels(frame)
    }

    fn release(&mut self, frame: FrameRef) {
        self.inner.release(frame);
    }

    fn next_capture_ns(&self) -> Option<u64> {
        self.inner.next_capture_ns()
    }
}

/// Camera sources ready to run, with their pools (for a viewer that reads pixels by slot).
pub struct LiveInput {
    /// Each rig camera's pool (`None` for a camera the source does not have).
    pub pools: Vec<Option<Arc<FramePool>>>,
    /// The capture thread and the rings, tapped.
    pub input: TapInput<ThreadedRings>,
    /// The capture thread's delivery and drop counters.
    pub capture: Arc<CaptureStats>,
}

impl LiveInput {
    /// Starts the capture thread on `clock`; the first capture lands at `start_ns`.
    pub fn start<S, C>(cams: Vec<RingCamera<S>>, clock: C, start_ns: u64) -> std::io::Result<LiveInput>
    where
        S: CameraSource + 'static,
        C: Clock + Send + 'static,
    {
        let mut pools: Vec<Option<Arc<FramePool>>> = (0..CAMERA_COUNT).map(|_| None).collect();
        for c in &cams {
            if let Some(p) = pools.get_mut(c.index) {
                *p = Some(Arc::clone(c.rx.pool()));
            }
        }
        let rings = ThreadedRings::spawn(cams, clock, start_ns)?;
        let capture = rings.stats();
        Ok(LiveInput { pools, input: TapInput::new(rings), capture })
    }
}

/// Most detections a [`ResultRecord`] carries (the highest-scoring come first from the head).
pub const VIEW_MAX_DETECTIONS: usize = 32;

/// Slot value of a [`ResultRecord`] whose frame is unknown.
pub const NO_SLOT: u32 = u32::MAX;

const NO_DETECTION: Detection = Detection { camera: 0, class: ObjectClass::Car, score: 0.0, bbox: [0.0; 4], depth: 0.0 };

/// One camera result for the viewer: fixed size, copied into a ring by the hot thread.
#[derive(Clone, Copy, Debug)]
pub struct ResultRecord {
    /// Camera index.
    pub camera: u8,
    /// Variant that ran.
    pub variant: u8,
    /// Pool slot of the frame ([`NO_SLOT`] when unknown).
    pub slot: u32,
    /// Capture time, ns on the runtime's clock.
    pub capture_ns: u64,
    /// Result time, ns on the runtime's clock.
    pub done_ns: u64,
    /// Valid entries of `detections`.
    pub count: u8,
    /// Detections in camera pixels.
    pub detections: [Detection; VIEW_MAX_DETECTIONS],
}

impl ResultRecord {
    /// The valid detections.
    pub fn detections(&self) -> &[Detection] {
        &self.detections[..usize::from(self.count).min(VIEW_MAX_DETECTIONS)]
    }
}

/// How often the hot thread hands the viewer a camera result and a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct ViewRates {
    /// Per camera: at most one result (with its image) per this many ns.
    pub image_period_ns: u64,
    /// At most one snapshot per this many ns.
    pub snapshot_period_ns: u64,
}

impl Default for ViewRates {
    /// 5 images per camera per second, 10 snapshots per second.
    fn default() -> Self {
        ViewRates { image_period_ns: 200_000_000, snapshot_period_ns: 100_000_000 }
    }
}

/// Records the viewer could not take (its rings were full), and what was handed over.
#[derive(Debug, Default)]
pub struct ViewStats {
    /// Camera results handed to the viewer.
    pub results: AtomicU64,
    /// Camera results dropped: the viewer was behind.
    pub results_dropped: AtomicU64,
    /// Snapshots handed to the viewer.
    pub snapshots: AtomicU64,
    /// Snapshots dropped: the viewer was behind.
    pub snapshots_dropped: AtomicU64,
}

/// The viewer's ends of the rings (see [`view_channel`]).
pub struct ViewReceivers {
    /// Camera results.
    pub results: rtrb::Consumer<ResultRecord>,
    /// Snapshots.
    pub snapshots: rtrb::Consumer<Snapshot>,
    /// Shared counters.
    pub stats: Arc<ViewStats>,
}

/// The hot thread's side of the live viewer: rate-limits and copies results and snapshots into
/// bounded rings. Never blocks, never allocates.
pub struct ViewSink {
    results: rtrb::Producer<ResultRecord>,
    snapshots: rtrb::Producer<Snapshot>,
    stats: Arc<ViewStats>,
    tap: Option<Arc<FrameTap>>,
    rates: ViewRates,
    next_result: [u64; CAMERA_COUNT],
    next_snapshot: u64,
}

/// Rings of `depth` results and `depth` snapshots between a [`ViewSink`] and a viewer thread.
pub fn view_channel(depth: usize, rates: ViewRates, tap: Option<Arc<FrameTap>>) -> (ViewSink, ViewReceivers) {
    let (rp, rc) = rtrb::RingBuffer::new(depth.max(1));
    let (sp, sc) = rtrb::RingBuffer::new(depth.max(1));
    let stats = Arc::new(ViewStats::default());
    let sink = ViewSink {
        results: rp,
        snapshots: sp,
        stats: Arc::clone(&stats),
        tap,
        rates,
        next_result: [0; CAMERA_COUNT],
        next_snapshot: 0,
    };
    (sink, ViewReceivers { results: rc, snapshots: sc, stats })
}

impl SnapshotSink for ViewSink {
    fn publish(&mut self, s: &mut Snapshot) {
        if s.publish_ns < self.next_snapshot {
            return;
        }
        self.next_snapshot = s.publish_ns.saturating_add(self.rates.snapshot_period_ns);
        if self.snapshots.push(*s).is_ok() {
            self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.snapshots_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_result(&mut self, r: &CameraResult<'_>) {
        let c = usize::from(r.camera);
        let Some(next) = self.next_result.get_mut(c) else { return };
        if r.capture_ns < *next {
            return;
        }
        *next = r.capture_ns.saturating_add(self.rates.image_period_ns);
        let mut rec = ResultRecord {
            camera: r.camera,
            variant: r.variant,
            slot: self.tap.as_ref().and_then(|t| t.slot_of(r.camera, r.capture_ns)).unwrap_or(NO_SLOT),
            capture_ns: r.capture_ns,
            done_ns: r.done_ns,
            count: 0,
            detections: [NO_DETECTION; VIEW_MAX_DETECTIONS],
        };
        for (dst, d) in rec.detections.iter_mut().zip(r.detections) {
            *dst = *d;
            rec.count += 1;
        }
        if self.results.push(rec).is_ok() {
            self.stats.results.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.results_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `vigil run`'s snapshot sink: the in-process control channel, shared memory when asked, the
/// live viewer when asked, and a Tracy frame mark per camera result.
pub struct LiveSink {
    /// The in-process control boundary.
    pub publisher: control::Publisher,
    /// The shared-memory control boundary.
    pub shm: Option<control::ShmPublisher>,
    /// The live viewer's rings.
    pub view: Option<ViewSink>,
}

impl SnapshotSink for LiveSink {
    fn publish(&mut self, s: &mut Snapshot) {
        self.publisher.publish(s);
        if let Some(shm) = &mut self.shm {
            shm.publish(s);
        }
        if let Some(v) = &mut self.view {
            v.publish(s);
        }
    }

    fn on_result(&mut self, r: &CameraResult<'_>) {
        scheduler::trace::frame_mark(usize::from(r.camera));
        if let Some(v) = &mut self.view {
            v.on_result(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result<'a>(camera: u8, capture_ns: u64, dets: &'a [Detection]) -> CameraResult<'a> {
        CameraResult { camera, variant: 1, capture_ns, done_ns: capture_ns + 5, detections: dets, objects: &[] }
    }

    #[test]
    fn view_sink_rate_limits_copies_and_counts_drops() {
        let rates = ViewRates { image_period_ns: 100, snapshot_period_ns: 1000 };
        let (mut sink, mut rx) = view_channel(2, rates, None);
        let det = Detection { camera: 3, class: ObjectClass::Pedestrian, score: 0.9, bbox: [1.0, 2.0, 3.0, 4.0], depth: 7.0 };
        let many = vec![det; VIEW_MAX_DETECTIONS + 5];
        sink.on_result(&result(3, 1000, &many));
        sink.on_result(&result(3, 1050, &many)); // within the period: not handed over
        sink.on_result(&result(4, 1050, &[])); // another camera has its own period
        sink.on_result(&result(3, 1100, &[det])); // ring of 2 is full: dropped
        let st = &rx.stats;
        assert_eq!(st.results.load(Ordering::Relaxed), 2);
        assert_eq!(st.results_dropped.load(Ordering::Relaxed), 1);
        let a = rx.results.pop().unwrap();
        assert_eq!((a.camera, a.capture_ns, a.slot), (3, 1000, NO_SLOT));
        assert_eq!(a.detections().len(), VIEW_MAX_DETECTIONS, "truncated to the record's room");
        assert_eq!(a.detections()[0], det);
        assert_eq!(rx.results.pop().unwrap().camera, 4);
        assert!(rx.results.pop().is_err());

        let mut s = Snapshot { publish_ns: 5000, ..Snapshot::default() };
        sink.publish(&mut s);
        s.publish_ns = 5500;
        sink.publish(&mut s); // rate-limited
        s.publish_ns = 6000;
        sink.publish(&mut s);
        s.publish_ns = 7000;
        sink.publish(&mut s); // full
        assert_eq!(st.snapshots.load(Ordering::Relaxed), 2);
        assert_eq!(st.snapshots_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(rx.snapshots.pop().unwrap().publish_ns, 5000);
    }

    #[test]
    fn the_tap_names_the_slot_of_the_frame_the_job_read() {
        let rig = Rig::builtin();
        let cams = crate::rings::synthetic(&rig, 1, 36.0, 3, Some(3));
        let mut input = TapInput::new(crate::rings::InlineRings::new(cams, 0));
        let tap = input.tap();
        let (mut sink, mut rx) = view_channel(8, ViewRates { image_period_ns: 0, snapshot_period_ns: 0 }, Some(tap));
        let _first = input.poll(2, u64::MAX).unwrap();
        let second = input.poll(2, u64::MAX).unwrap();
        assert_eq!(second.slot, 1);
        let px = input.pixels(&second).to_vec();
        sink.on_result(&result(2, second.capture_ns, &[]));
        sink.on_result(&result(2, second.capture_ns + 1, &[])); // not the frame last read
        let rec = rx.results.pop().unwrap();
        assert_eq!(rec.slot, 1);
        assert_eq!(rx.results.pop().unwrap().slot, NO_SLOT);
        // A viewer reading the pool by slot sees exactly the pixels the detector saw.
        let pools: Vec<_> = crate::rings::synthetic(&rig, 1, 36.0, 3, Some(3)).into_iter().map(|c| Arc::clone(c.rx.pool())).collect();
        assert_eq!(pools[2].slot(rec.slot).unwrap(), &px[..]);
    }
}
