//! Camera sources: where frames come from.
//!
//! A [`CameraSource`] stands for one camera and its DMA engine: each [`CameraSource::deliver`]
//! completes one capture by handing a filled buffer of its preallocated pool to the camera's
//! ring. Sources never render or decode per frame: [`SyntheticSource`] renders a loop of
//! frames at start-up and cycles it; [`ReplaySource`] is built from frames decoded from a log
//! at start-up (see [`crate::mcap_io::read_log`]) and replays them in recorded order.

use std::sync::Arc;

use rig::calib::Rig;
use rig::synth::SyntheticRig;

use crate::pool::{frame_channel, FrameFormat, FrameHandle, FramePool, FrameReceiver, FrameSender, SendError};

/// Depth of every camera ring (frames in flight between a source and the consumer).
pub const DEFAULT_RING_DEPTH: usize = 4;

/// What a consumer needs to know about a camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraInfo {
    /// Index of the camera in the rig (or in the log, in topic order).
    pub index: usize,
    /// Short name, e.g. `front_wide`.
    pub name: String,
    /// Pixel layout of the frames (packed RGB8).
    pub format: FrameFormat,
}

/// The outcome of one [`CameraSource::deliver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The frame's buffer is in the ring.
    Delivered(FrameHandle),
    /// The capture happened but its frame was dropped (consumer behind or buffer still held).
    Dropped {
        /// The capture that was lost.
        handle: FrameHandle,
        /// Why.
        reason: SendError,
    },
    /// The stream has ended.
    Ended,
}

/// One camera: a timeline of captures, each delivered as a buffer handle into a ring.
pub trait CameraSource: Send {
    /// The camera this source stands for.
    fn info(&self) -> &CameraInfo;

    /// Capture time of the next frame (nanoseconds on the source's timeline); `None` once the
    /// stream has ended.
    fn next_capture_ns(&self) -> Option<u64>;

    /// Completes the next capture: hands its buffer to the ring. No allocation, no I/O, no
    /// pixel copy, no waiting: pacing is the caller's (see [`crate::passthrough`]).
    fn deliver(&mut self) -> Delivery;
}

fn send_counted(tx: &mut FrameSender, handle: FrameHandle) -> Delivery {
    match tx.send(handle) {
        Ok(()) => Delivery::Delivered(handle),
        Err(reason) => Delivery::Dropped { handle, reason },
    }
}

/// A camera of the synthetic rig: a pre-rendered loop of frames, cycled at a fixed rate.
#[derive(Debug)]
pub struct SyntheticSource {
    info: CameraInfo,
    tx: FrameSender,
    loop_len: u32,
    fps: f64,
    next: u64,
    limit: Option<u64>,
}

impl SyntheticSource {
    /// Renders `loop_frames` frames of the synthetic world (seed, fps) through every camera
    /// of `rig` and returns one source and its receiver per camera. `frame_limit` ends each
    /// stream after that many captures (`None`: endless).
    ///
    /// All rendering and allocation happens here; delivering afterwards costs a ring push.
    pub fn for_rig(
        rig: &Rig,
        seed: u64,
        fps: f64,
        loop_frames: usize,
        frame_limit: Option<u64>,
    ) -> Vec<(SyntheticSource, FrameReceiver)> {
        let loop_frames = loop_frames.max(1);
        let cams = rig.cameras();
        let mut pools: Vec<FramePool> = cams
            .iter()
            .map(|c| FramePool::new(FrameFormat { width: c.width, height: c.height }, loop_frames))
            .collect();
        let mut world = SyntheticRig::new(rig.clone(), seed, fps);
        let mut scratch: Vec<Vec<u8>> = vec![Vec::new(); cams.len()];
        for k in 0..loop_frames as u32 {
            world.next_frame(&mut scratch);
            for (pool, img) in pools.iter_mut().zip(&scratch) {
                if let Some(dst) = pool.slot_mut(k) {
                    let n = dst.len().min(img.len());
                    dst[..n].copy_from_slice(&img[..n]);
                }
            }
        }
        cams.iter()
            .zip(pools)
            .enumerate()
            .map(|(index, (cam, pool))| {
                let format = pool.format();
                let (tx, rx) = frame_channel(Arc::new(pool), DEFAULT_RING_DEPTH);
                let info = CameraInfo { index, name: cam.name.clone(), format };
                (SyntheticSource { info, tx, loop_len: loop_frames as u32, fps, next: 0, limit: frame_limit }, rx)
            })
            .collect()
    }
}

impl CameraSource for SyntheticSource {
    fn info(&self) -> &CameraInfo {
        &self.info
    }

    fn next_capture_ns(&self) -> Option<u64> {
        if self.limit.is_some_and(|l| self.next >= l) {
            return None;
        }
        Some((self.next as f64 * 1e9 / self.fps).round() as u64)
    }

    fn deliver(&mut self) -> Delivery {
        let Some(timestamp_ns) = self.next_capture_ns() else {
            return Delivery::Ended;
        };
        let handle = FrameHandle { slot: (self.next % u64::from(self.loop_len)) as u32, sequence: self.next, timestamp_ns };
        self.next += 1;
        send_counted(&mut self.tx, handle)
    }
}

/// One capture of a log: which pool slot holds its pixels, and when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayCapture {
    /// Slot of the decoded frame in the camera's pool.
    pub slot: u32,
    /// The message's sequence number in the log.
    pub sequence: u64,
    /// Log time of the message, nanoseconds.
    pub timestamp_ns: u64,
}

/// A camera replayed from a log, frames pre-decoded into its pool at start-up.
#[derive(Debug)]
pub struct ReplaySource {
    info: CameraInfo,
    tx: FrameSender,
    schedule: Vec<ReplayCapture>,
    next: usize,
}

impl ReplaySource {
    /// A source over a pool of decoded frames and the order to play them in (log order).
    pub fn new(info: CameraInfo, pool: FramePool, schedule: Vec<ReplayCapture>) -> (ReplaySource, FrameReceiver) {
        let (tx, rx) = frame_channel(Arc::new(pool), DEFAULT_RING_DEPTH);
        (ReplaySource { info, tx, schedule, next: 0 }, rx)
    }

    /// Number of captures in the stream.
    pub fn len(&self) -> usize {
        self.schedule.len()
    }

    /// True when the stream has no capture.
    pub fn is_empty(&self) -> bool {
        self.schedule.is_empty()
    }
}

impl CameraSource for ReplaySource {
    fn info(&self) -> &CameraInfo {
        &self.info
    }

    fn next_capture_ns(&self) -> Option<u64> {
        self.schedule.get(self.next).map(|c| c.timestamp_ns)
    }

    fn deliver(&mut self) -> Delivery {
        let Some(c) = self.schedule.get(self.next).copied() else {
            return Delivery::Ended;
        };
        self.next += 1;
        send_counted(&mut self.tx, FrameHandle { slot: c.slot, sequence: c.sequence, timestamp_ns: c.timestamp_ns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_sources_cycle_a_prerendered_loop() {
        let rig = Rig::builtin();
        let mut cams = SyntheticSource::for_rig(&rig, 3, 36.0, 3, Some(7));
        assert_eq!(cams.len(), rig.cameras().len());
        let (src, rx) = &mut cams[0];
        assert_eq!(src.info().format.width, rig.cameras()[0].width);
        let mut slots = Vec::new();
        while let Delivery::Delivered(h) = src.deliver() {
            let f = rx.take_newest().unwrap();
            assert_eq!(f.handle, h);
            assert_eq!(f.pixels.len(), f.format.rgb8_len());
            slots.push(h.slot);
        }
        assert_eq!(slots, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(src.next_capture_ns(), None);
        assert_eq!(src.deliver(), Delivery::Ended);
    }

    #[test]
    fn synthetic_loop_holds_the_renderer_output() {
        let rig = Rig::builtin();
        let mut cams = SyntheticSource::for_rig(&rig, 11, 36.0, 2, None);
        let mut world = SyntheticRig::new(rig.clone(), 11, 36.0);
        let mut imgs = vec![Vec::new(); rig.cameras().len()];
        for _ in 0..2 {
            world.next_frame(&mut imgs);
            for (cam, (src, rx)) in cams.iter_mut().enumerate() {
                src.deliver();
                assert_eq!(rx.take_newest().unwrap().pixels, &imgs[cam][..], "camera {cam}");
            }
        }
    }

    #[test]
    fn replay_source_plays_its_schedule_in_order() {
        let format = FrameFormat { width: 2, height: 2 };
        let pool = FramePool::new(format, 2);
        let info = CameraInfo { index: 0, name: "c".into(), format };
        let sched = vec![
            ReplayCapture { slot: 1, sequence: 4, timestamp_ns: 100 },
            ReplayCapture { slot: 0, sequence: 5, timestamp_ns: 200 },
        ];
        let (mut src, mut rx) = ReplaySource::new(info, pool, sched);
        assert_eq!(src.next_capture_ns(), Some(100));
        assert!(matches!(src.deliver(), Delivery::Delivered(FrameHandle { slot: 1, sequence: 4, .. })));
        // The consumer has not looked yet: the next capture still fits in the ring.
        assert!(matches!(src.deliver(), Delivery::Delivered(FrameHandle { slot: 0, .. })));
        assert_eq!(rx.take_newest().unwrap().handle.sequence, 5);
        assert_eq!(rx.stats().superseded, 1);
        assert_eq!(src.deliver(), Delivery::Ended);
    }
}
