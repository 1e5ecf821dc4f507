//! Camera rings as the runtime's frame input.
//!
//! Every camera is a [`CameraSource`] (pre-rendered synthetic loop, pre-decoded log) that hands
//! filled pool buffers to its `rtrb` ring; the runtime pops handles from the rings and reads
//! pixels straight out of the pools. Two ways to drive the sources:
//!
//! * [`InlineRings`]: the runtime's own thread completes each capture when the runtime's clock
//!   reaches it. With a [`scheduler::VirtualClock`] this is the deterministic replay: which
//!   frames exist at which instant depends only on the log and the clock, never on the machine.
//! * [`ThreadedRings`]: a capture thread completes each capture at its wall-clock time, as a
//!   camera's DMA engine would, while the runtime runs on its own thread. A stalled runtime
//!   costs dropped captures (counted per camera), never a blocked camera.
//!
//! Capture times are moved from the source's timeline (seconds since the log or world began)
//! onto the runtime's clock by one offset fixed at start-up.
//!
//! Neither [`FrameInput::poll`] nor [`FrameInput::release`] allocates, locks or does I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use rig::{CAMERA_COUNT, Rig};
use scheduler::Clock;

use crate::mcap_io::LogContents;
use crate::pool::FrameReceiver;
use crate::runtime::{FrameInput, FrameRef};
use crate::source::{CameraSource, Delivery, ReplaySource, SyntheticSource};

/// One camera's source and the consumer end of its ring, placed at rig camera `index`.
pub struct RingCamera<S> {
    /// Index of the camera in the rig.
    pub index: usize,
    /// The source (delivers into the ring).
    pub source: S,
    /// The ring's consumer end.
    pub rx: FrameReceiver,
}

/// Synthetic cameras of `rig`: `loop_frames` frames of the world `seed` rendered at start-up
/// and cycled at `fps`; `frame_limit` ends each stream after that many captures.
pub fn synthetic(rig: &Rig, seed: u64, fps: f64, loop_frames: usize, frame_limit: Option<u64>) -> Vec<RingCamera<SyntheticSource>> {
    SyntheticSource::for_rig(rig, seed, fps, loop_frames, frame_limit)
        .into_iter()
        .enumerate()
        .map(|(index, (source, rx))| RingCamera { index, source, rx })
        .collect()
}

/// Cameras of a decoded log, matched to `rig`'s cameras by name and checked against their
/// image size. Errors name the log camera and what does not match.
pub fn from_log(rig: &Rig, log: LogContents) -> Result<Vec<RingCamera<ReplaySource>>, String> {
    let mut out = Vec::new();
    for (source, rx) in log.into_sources() {
        let info = source.info();
        let Some(index) = rig.cameras().iter().position(|c| c.name == info.name) else {
            let names: Vec<&str> = rig.cameras().iter().map(|c| c.name.as_str()).collect();
            return Err(format!("camera {:?} of the log is not in the rig (rig cameras: {})", info.name, names.join(", ")));
        };
        let cam = &rig.cameras()[index];
        if (info.format.width, info.format.height) != (cam.width, cam.height) {
            return Err(format!(
                "camera {:?}: log frames are {}x{} but the rig's calibration says {}x{}",
                info.name, info.format.width, info.format.height, cam.width, cam.height
            ));
        }
        if out.iter().any(|c: &RingCamera<ReplaySource>| c.index == index) {
            return Err(format!("camera {:?} appears twice in the log", info.name));
        }
        out.push(RingCamera { index, source, rx });
    }
    if out.is_empty() {
        return Err("the log has no camera image stream".into());
    }
    Ok(out)
}

/// Earliest first capture over all sources (the origin of the source timeline).
fn first_capture<S: CameraSource>(cams: &[RingCamera<S>]) -> u64 {
    cams.iter().filter_map(|c| c.source.next_capture_ns()).min().unwrap_or(0)
}

/// Maps source time to runtime time.
#[derive(Clone, Copy, Debug)]
struct Timeline {
    src0: u64,
    rt0: u64,
}

impl Timeline {
    fn map(self, t: u64) -> u64 {
        self.rt0.saturating_add(t.saturating_sub(self.src0))
    }
}

fn slots<T>(cams: Vec<RingCamera<T>>) -> Vec<Option<RingCamera<T>>> {
    let mut v: Vec<Option<RingCamera<T>>> = (0..CAMERA_COUNT).map(|_| None).collect();
    for c in cams {
        if c.index < CAMERA_COUNT {
            let i = c.index;
            v[i] = Some(c);
        }
    }
    v
}

/// Sources completed on the runtime's thread, when the runtime's clock reaches each capture.
pub struct InlineRings<S: CameraSource> {
    cams: Vec<Option<RingCamera<S>>>,
    timeline: Timeline,
    drops: [u64; CAMERA_COUNT],
}

impl<S: CameraSource> InlineRings<S> {
    /// The sources' first capture lands at `start_ns` on the runtime's clock.
    pub fn new(cams: Vec<RingCamera<S>>, start_ns: u64) -> Self {
        let timeline = Timeline { src0: first_capture(&cams), rt0: start_ns };
        InlineRings { cams: slots(cams), timeline, drops: [0; CAMERA_COUNT] }
    }

    /// Captures lost per camera (no free buffer or a full ring).
    pub fn drops(&self) -> [u64; CAMERA_COUNT] {
        self.drops
    }

    /// Cameras present (rig indices).
    pub fn cameras(&self) -> impl Iterator<Item = usize> + '_ {
        self.cams.iter().enumerate().filter(|(_, c)| c.is_some()).map(|(i, _)| i)
    }
}

impl<S: CameraSource> FrameInput for InlineRings<S> {
    fn poll(&mut self, camera: u8, now_ns: u64) -> Option<FrameRef> {
        let c = usize::from(camera);
        let cam = self.cams.get_mut(c)?.as_mut()?;
        loop {
            if let Some(h) = cam.rx.pop_oldest() {
                return Some(FrameRef { camera, slot: h.slot, capture_ns: self.timeline.map(h.timestamp_ns) });
            }
            let t = cam.source.next_capture_ns()?;
            if self.timeline.map(t) > now_ns {
                return None;
            }
            match cam.source.deliver() {
                Delivery::Delivered(_) => {}
                Delivery::Dropped { .. } => self.drops[c] += 1,
                Delivery::Ended => return None,
            }
        }
    }

    fn pixels(&self, frame: &FrameRef) -> &[u8] {
        self.cams
            .get(usize::from(frame.camera))
            .and_then(|c| c.as_ref())
            .and_then(|c| c.rx.pixels(frame.slot))
            .unwrap_or(&[])
    }

    fn release(&mut self, frame: FrameRef) {
        if let Some(Some(c)) = self.cams.get_mut(usize::from(frame.camera)) {
            c.rx.return_slot(frame.slot);
        }
    }

    fn next_capture_ns(&self) -> Option<u64> {
        self.cams.iter().flatten().filter_map(|c| c.source.next_capture_ns()).min().map(|t| self.timeline.map(t))
    }
}

/// Counters shared between the capture thread and its readers.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Captures handed to each camera's ring.
    pub delivered: [AtomicU64; CAMERA_COUNT],
    /// Captures lost per camera (no free buffer: the runtime holds them all; or a full ring).
    pub dropped: [AtomicU64; CAMERA_COUNT],
}

/// Sources completed by a capture thread at their wall-clock capture times.
pub struct ThreadedRings {
    rx: Vec<Option<FrameReceiver>>,
    timeline: Timeline,
    /// Next capture (runtime time) of the capture thread; `u64::MAX` once every stream ended.
    next: Arc<AtomicU64>,
    stats: Arc<CaptureStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadedRings {
    /// Starts the capture thread; the first capture lands at `start_ns` on `clock`.
    pub fn spawn<S, C>(cams: Vec<RingCamera<S>>, clock: C, start_ns: u64) -> std::io::Result<Self>
    where
        S: CameraSource + 'static,
        C: Clock + Send + 'static,
    {
        let timeline = Timeline { src0: first_capture(&cams), rt0: start_ns };
        let mut rx: Vec<Option<FrameReceiver>> = (0..CAMERA_COUNT).map(|_| None).collect();
        let mut sources: Vec<(usize, S)> = Vec::new();
        for c in cams {
            if c.index < CAMERA_COUNT {
                rx[c.index] = Some(c.rx);
                sources.push((c.index, c.source));
            }
        }
        let next = Arc::new(AtomicU64::new(start_ns));
        let stats = Arc::new(CaptureStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (next, stats, stop) = (Arc::clone(&next), Arc::clone(&stats), Arc::clone(&stop));
            std::thread::Builder::new().name("capture".into()).spawn(move || capture_loop(sources, clock, timeline, &next, &stats, &stop))?
        };
        Ok(ThreadedRings { rx, timeline, next, stats, stop, thread: Some(thread) })
    }

    /// Delivery and drop counters of the capture thread.
    pub fn stats(&self) -> Arc<CaptureStats> {
        Arc::clone(&self.stats)
    }
}

fn capture_loop<S: CameraSource, C: Clock>(
    mut sources: Vec<(usize, S)>,
    clock: C,
    timeline: Timeline,
    next: &AtomicU64,
    stats: &CaptureStats,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let Some((k, t)) = sources.iter().enumerate().filter_map(|(k, (_, s))| s.next_capture_ns().map(|t| (k, t))).min_by_key(|&(_, t)| t)
        else {
            break;
        };
        let due = timeline.map(t);
        next.store(due, Ordering::Release);
        let now = clock.now().ticks();
        if due > now {
            // Sleep in short slices so a stop request is seen promptly.
            std::thread::sleep(std::time::Duration::from_nanos((due - now).min(2_000_000)));
            continue;
        }
        let (cam, src) = &mut sources[k];
        match src.deliver() {
            Delivery::Delivered(_) => stats.delivered[*cam].fetch_add(1, Ordering::Relaxed),
            Delivery::Dropped { .. } => stats.dropped[*cam].fetch_add(1, Ordering::Relaxed),
            Delivery::Ended => 0,
        };
    }
    next.store(u64::MAX, Ordering::Release);
}

impl Drop for ThreadedRings {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FrameInput for ThreadedRings {
    fn poll(&mut self, camera: u8, _now_ns: u64) -> Option<FrameRef> {
        let rx = self.rx.get_mut(usize::from(camera))?.as_mut()?;
        let h = rx.pop_oldest()?;
        Some(FrameRef { camera, slot: h.slot, capture_ns: self.timeline.map(h.timestamp_ns) })
    }

    fn pixels(&self, frame: &FrameRef) -> &[u8] {
        self.rx.get(usize::from(frame.camera)).and_then(|r| r.as_ref()).and_then(|r| r.pixels(frame.slot)).unwrap_or(&[])
    }

    fn release(&mut self, frame: FrameRef) {
        if let Some(Some(r)) = self.rx.get_mut(usize::from(frame.camera)) {
            r.return_slot(frame.slot);
        }
    }

    fn next_capture_ns(&self) -> Option<u64> {
        if self.rx.iter().flatten().any(|r| r.queued() > 0) {
            return Some(0);
        }
        match self.next.load(Ordering::Acquire) {
            u64::MAX => None,
            t => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{FrameFormat, FramePool};
    use crate::source::{CameraInfo, ReplayCapture};

    fn replay_cam(index: usize, times: &[u64], slots: usize) -> RingCamera<ReplaySource> {
        let format = FrameFormat { width: 2, height: 1 };
        let mut pool = FramePool::new(format, slots);
        for s in 0..slots as u32 {
            pool.slot_mut(s).unwrap().fill(s as u8 + 10 * index as u8);
        }
        let schedule = times
            .iter()
            .enumerate()
            .map(|(k, &t)| ReplayCapture { slot: (k % slots) as u32, sequence: k as u64, timestamp_ns: t })
            .collect();
        let (source, rx) = ReplaySource::new(CameraInfo { index, name: format!("c{index}"), format }, pool, schedule);
        RingCamera { index, source, rx }
    }

    #[test]
    fn inline_rings_deliver_each_capture_when_the_clock_reaches_it() {
        let cams = vec![replay_cam(0, &[1_000, 2_000, 3_000], 3), replay_cam(3, &[1_500], 1)];
        let mut input = InlineRings::new(cams, 100);
        // Source time 1000 is runtime time 100.
        assert_eq!(input.next_capture_ns(), Some(100));
        assert_eq!(input.poll(0, 99), None);
        let a = input.poll(0, 100).unwrap();
        assert_eq!((a.slot, a.capture_ns), (0, 100));
        assert_eq!(input.pixels(&a), &[0u8; 6][..]);
        assert_eq!(input.poll(0, 100), None);
        // Two captures due at once come out oldest first.
        let b = input.poll(0, 5_000).unwrap();
        let c = input.poll(0, 5_000).unwrap();
        assert_eq!((b.capture_ns, c.capture_ns), (1_100, 2_100));
        assert_eq!(input.pixels(&c), &[2u8; 6][..]);
        let d = input.poll(3, 5_000).unwrap();
        assert_eq!((d.camera, d.capture_ns), (3, 600));
        assert_eq!(input.pixels(&d), &[30u8; 6][..]);
        assert_eq!(input.poll(1, 5_000), None, "no such camera");
        for f in [a, b, c, d] {
            input.release(f);
        }
        assert_eq!(input.next_capture_ns(), None);
        assert_eq!(input.drops(), [0; CAMERA_COUNT]);
    }

    #[test]
    fn a_consumer_holding_every_buffer_costs_drops_not_a_stall() {
        // Two buffers, four captures: while both are held, the third capture has nowhere to go.
        let mut input = InlineRings::new(vec![replay_cam(0, &[0, 10, 20, 30], 2)], 0);
        let a = input.poll(0, 10).unwrap();
        let b = input.poll(0, 10).unwrap();
        assert_eq!(input.poll(0, 20), None, "capture 20 is dropped: both buffers are held");
        assert_eq!(input.drops()[0], 1);
        input.release(a);
        input.release(b);
        let d = input.poll(0, 30).unwrap();
        assert_eq!((d.slot, d.capture_ns), (1, 30));
        input.release(d);
    }

    fn stream(name: &str, width: u32, height: u32) -> crate::mcap_io::CameraStream {
        let mut s = crate::mcap_io::CameraStream::default();
        s.name = name.into();
        s.format = Some(FrameFormat { width, height });
        s
    }

    #[test]
    fn log_cameras_map_to_rig_cameras_by_name() {
        let rig = Rig::builtin();
        let mut log = LogContents::default();
        let cam = &rig.cameras()[2];
        log.cameras.push(stream(&cam.name, cam.width, cam.height));
        let cams = from_log(&rig, log).unwrap();
        assert_eq!(cams.len(), 1);
        assert_eq!(cams[0].index, 2);

        let mut log = LogContents::default();
        log.cameras.push(stream("roof_cam", 4, 4));
        let err = from_log(&rig, log).err().unwrap();
        assert!(err.contains("\"roof_cam\"") && err.contains("not in the rig"), "{err}");

        let mut log = LogContents::default();
        log.cameras.push(stream(&cam.name, 4, 4));
        let err = from_log(&rig, log).err().unwrap();
        assert!(err.contains("4x4"), "{err}");
    }

    #[test]
    fn threaded_rings_deliver_at_wall_clock_times() {
        let clock = scheduler::MonotonicClock;
        let start = clock.now().ticks() + 2_000_000;
        let times: Vec<u64> = (0..5).map(|k| k * 1_000_000).collect();
        let mut input = ThreadedRings::spawn(vec![replay_cam(1, &times, 5)], clock, start).unwrap();
        let mut got = Vec::new();
        let t0 = std::time::Instant::now();
        while got.len() < 5 && t0.elapsed() < std::time::Duration::from_secs(10) {
            if let Some(f) = input.poll(1, 0) {
                // Never delivered before its capture time.
                assert!(clock.now().ticks() >= f.capture_ns);
                got.push(f.capture_ns);
                input.release(f);
            } else {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        let want: Vec<u64> = times.iter().map(|t| start + t).collect();
        assert_eq!(got, want);
        let t0 = std::time::Instant::now();
        while input.next_capture_ns().is_some() && t0.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(input.next_capture_ns(), None, "the stream ended");
        assert_eq!(input.stats().delivered[1].load(Ordering::Relaxed), 5);
    }
}
