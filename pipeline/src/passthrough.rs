//! Driving camera sources into a stage: the hook where the executor plugs in.
//!
//! [`drive`] paces every [`CameraSource`] on a clock, lets each one hand its buffers to its
//! ring, and calls the stage with the newest frame of every camera that has one. Today the
//! stage is a pass-through (replay statistics); the deadline-scheduled executor takes its
//! place later with the same shape: `stage(camera, frame)` on the consumer side of the rings.
//!
//! Two clocks:
//! * [`Pace::Max`]: a virtual clock. One thread steps the sources in capture-time order
//!   (ties by camera index) and the stage runs after each capture instant, so every frame
//!   reaches the stage and a run is reproducible exactly.
//! * [`Pace::Recorded`]: the real clock. One thread per source sleeps until each capture's
//!   recorded time (relative to the first) and delivers; the calling thread polls the rings
//!   and takes the newest frame per camera, so a slow stage sees frames superseded, as on
//!   the vehicle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::pool::{FrameReceiver, FrameRef, SendError};
use crate::source::{CameraInfo, CameraSource, Delivery};

/// How fast to drive the sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// At the recorded capture times, on the real (monotonic) clock.
    Recorded,
    /// As fast as possible, on a virtual clock that jumps from capture to capture.
    Max,
}

/// Counters of one camera after a drive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CameraRun {
    /// Camera name.
    pub name: String,
    /// Buffers handed to the ring.
    pub delivered: u64,
    /// Captures dropped because the ring was full.
    pub dropped_ring_full: u64,
    /// Captures dropped because their buffer was still held by the consumer.
    pub dropped_slot_busy: u64,
    /// Frames the stage received.
    pub staged: u64,
    /// Frames superseded in the ring before the stage looked.
    pub superseded: u64,
}

/// What [`drive`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriveReport {
    /// Per camera, in source order.
    pub cameras: Vec<CameraRun>,
    /// Wall-clock time the drive took.
    pub wall: Duration,
    /// Span of capture times driven (last minus first), nanoseconds.
    pub span_ns: u64,
}

#[derive(Default)]
struct Tally {
    delivered: u64,
    ring_full: u64,
    slot_busy: u64,
}

impl Tally {
    fn count(&mut self, d: Delivery) {
        match d {
            Delivery::Delivered(_) => self.delivered += 1,
            Delivery::Dropped { reason: SendError::RingFull, .. } => self.ring_full += 1,
            Delivery::Dropped { .. } => self.slot_busy += 1,
            Delivery::Ended => {}
        }
    }
}

/// Drives `sources` (each paired with the receiver at the same index) into `stage` until
/// every stream ends. `stage(camera, frame)` is called on the calling thread with the newest
/// frame of a camera; it must follow the hot-path rules (no allocation, no blocking, no I/O).
pub fn drive<S, F>(sources: &mut [S], receivers: &mut [FrameReceiver], pace: Pace, mut stage: F) -> DriveReport
where
    S: CameraSource,
    F: FnMut(&CameraInfo, FrameRef<'_>),
{
    let infos: Vec<CameraInfo> = sources.iter().map(|s| s.info().clone()).collect();
    let first = sources.iter().filter_map(|s| s.next_capture_ns()).min().unwrap_or(0);
    let mut tallies: Vec<Tally> = sources.iter().map(|_| Tally::default()).collect();
    let started = Instant::now();
    let mut last = first;
    let n = sources.len().min(receivers.len());
    match pace {
        Pace::Max => loop {
            let Some(t) = sources[..n].iter().filter_map(|s| s.next_capture_ns()).min() else { break };
            last = last.max(t);
            for (s, tally) in sources[..n].iter_mut().zip(&mut tallies) {
                if s.next_capture_ns() == Some(t) {
                    tally.count(s.deliver());
                }
            }
            for (info, rx) in infos.iter().zip(receivers[..n].iter_mut()) {
                if let Some(f) = rx.take_newest() {
                    stage(info, f);
                }
            }
        },
        Pace::Recorded => {
            let running = AtomicUsize::new(n);
            let lasts: Vec<u64> = std::thread::scope(|scope| {
                let handles: Vec<_> = sources[..n]
                    .iter_mut()
                    .zip(tallies.iter_mut())
                    .map(|(s, tally)| {
                        let running = &running;
                        scope.spawn(move || {
                            let mut last = first;
                            while let Some(t) = s.next_capture_ns() {
                                let due = started + Duration::from_nanos(t.saturating_sub(first));
                                let now = Instant::now();
                                if due > now {
                                    std::thread::sleep(due - now);
                                }
                                last = t;
                                tally.count(s.deliver());
                            }
                            running.fetch_sub(1, Ordering::Release);
                            last
                        })
                    })
                    .collect();
                loop {
                    let done = running.load(Ordering::Acquire) == 0;
                    let mut any = false;
                    for (info, rx) in infos.iter().zip(receivers[..n].iter_mut()) {
                        if let Some(f) = rx.take_newest() {
                            any = true;
                            stage(info, f);
                        }
                    }
                    if done && !any {
                        break;
                    }
                    if !any {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                handles.into_iter().map(|h| h.join().unwrap_or(first)).collect()
            });
            last = lasts.into_iter().max().unwrap_or(first);
        }
    }
    for rx in receivers[..n].iter_mut() {
        rx.release();
    }
    let cameras = infos
        .iter()
        .zip(&tallies)
        .zip(receivers.iter())
        .map(|((info, t), rx)| CameraRun {
            name: info.name.clone(),
            delivered: t.delivered,
            dropped_ring_full: t.ring_full,
            dropped_slot_busy: t.slot_busy,
            staged: rx.stats().taken,
            superseded: rx.stats().superseded,
        })
        .collect();
    DriveReport { cameras, wall: started.elapsed(), span_ns: last - first }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SyntheticSource;

    #[test]
    fn max_pace_stages_every_frame_in_capture_order() {
        let rig = rig::calib::Rig::builtin();
        let (mut srcs, mut rxs): (Vec<_>, Vec<_>) = SyntheticSource::for_rig(&rig, 1, 36.0, 2, Some(5)).into_iter().unzip();
        let mut seen = Vec::new();
        let report = drive(&mut srcs, &mut rxs, Pace::Max, |cam, f| seen.push((f.handle.timestamp_ns, cam.index, f.handle.sequence)));
        assert_eq!(seen.len(), 5 * rig.cameras().len());
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "stage sees captures in time order, cameras by index");
        for c in &report.cameras {
            assert_eq!((c.delivered, c.staged, c.superseded, c.dropped_ring_full), (5, 5, 0, 0));
        }
        assert_eq!(report.span_ns, (4.0f64 * 1e9 / 36.0).round() as u64);
    }

    #[test]
    fn recorded_pace_takes_real_time_and_loses_nothing_with_a_fast_stage() {
        let rig = rig::calib::Rig::builtin();
        let (mut srcs, mut rxs): (Vec<_>, Vec<_>) = SyntheticSource::for_rig(&rig, 1, 100.0, 2, Some(6)).into_iter().unzip();
        let report = drive(&mut srcs, &mut rxs, Pace::Recorded, |_, _| {});
        assert!(report.wall >= Duration::from_millis(50), "6 frames at 100 fps span 50 ms, took {:?}", report.wall);
        for c in &report.cameras {
            assert_eq!(c.delivered + c.dropped_ring_full + c.dropped_slot_busy, 6);
            assert_eq!(c.staged + c.superseded, c.delivered);
        }
    }
}
