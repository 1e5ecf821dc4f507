//! A frame input that replays a pre-rendered loop of synthetic frames on a schedule.
//!
//! At start-up [`LoopFeed::render`] renders `frames` rig frames through the synthetic world
//! (the only heavy work); afterwards camera `c` delivers frame `k` at capture time
//! `start + k / fps` (the loop repeats), as a handle into the pre-rendered pool: no
//! rendering, decoding or copying on the hot path. Fault hooks for the HIL bench can make a
//! camera go dark for an interval or deliver corrupt frames.

use rig::{CAMERA_COUNT, FrameTruth, SyntheticRig};

use crate::runtime::{FrameInput, FrameRef};

/// Fault injected into one camera's delivery.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FeedFault {
    /// No frames between the two capture times (ns, relative to the feed start).
    Dropout {
        /// Camera index.
        camera: u8,
        /// Start, ns since feed start.
        from_ns: u64,
        /// End, ns since feed start.
        to_ns: u64,
    },
    /// Frames between the two times carry noise instead of the image.
    Corrupt {
        /// Camera index.
        camera: u8,
        /// Start, ns since feed start.
        from_ns: u64,
        /// End, ns since feed start.
        to_ns: u64,
    },
}

/// Pre-rendered synthetic frames delivered on a fixed schedule.
#[derive(Debug)]
pub struct LoopFeed {
    /// `pool[k][c]`: frame `k` of camera `c`, RGB8.
    pool: Vec<Vec<Vec<u8>>>,
    truth: Vec<FrameTruth>,
    noise: Vec<Vec<u8>>,
    start_ns: u64,
    period_ns: u64,
    next: [u64; CAMERA_COUNT],
    limit: Option<u64>,
    faults: Vec<FeedFault>,
    delivered: [u64; CAMERA_COUNT],
}

/// Pool slot used for a corrupt frame.
const CORRUPT_SLOT: u32 = u32::MAX;

impl LoopFeed {
    /// Renders `frames` frames of the world seeded by `seed` at `fps` (start-up work), with
    /// progress reported through `progress(done, total)`.
    pub fn render(world: &mut SyntheticRig, frames: usize, mut progress: impl FnMut(usize, usize)) -> LoopFeed {
        let mut pool = Vec::with_capacity(frames);
        let mut truth = Vec::with_capacity(frames);
        for k in 0..frames.max(1) {
            let mut images: Vec<Vec<u8>> = vec![Vec::new(); CAMERA_COUNT];
            truth.push(world.next_frame(&mut images));
            pool.push(images);
            progress(k + 1, frames.max(1));
        }
        let noise = world
            .rig()
            .cameras()
            .iter()
            .enumerate()
            .map(|(c, cam)| {
                let n = (cam.width * cam.height * 3) as usize;
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ c as u64;
                (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect();
        let fps = world.fps();
        LoopFeed {
            pool,
            truth,
            noise,
            start_ns: 0,
            period_ns: (1e9 / fps).round() as u64,
            next: [0; CAMERA_COUNT],
            limit: None,
            faults: Vec::new(),
            delivered: [0; CAMERA_COUNT],
        }
    }

    /// Starts delivery at `start_ns` on the runtime's clock.
    pub fn start_at(mut self, start_ns: u64) -> Self {
        self.start_ns = start_ns;
        self
    }

    /// Stops after `frames` frames per camera (replay of a fixed-length log); default endless.
    pub fn limit(mut self, frames: u64) -> Self {
        self.limit = Some(frames);
        self
    }

    /// Adds a fault (configuration time only).
    pub fn with_fault(mut self, f: FeedFault) -> Self {
        self.faults.push(f);
        self
    }

    /// Ground truth of loop frame `k`.
    pub fn truth(&self, k: usize) -> Option<&FrameTruth> {
        self.truth.get(k % self.truth.len().max(1))
    }

    /// Frames delivered per camera so far.
    pub fn delivered(&self) -> [u64; CAMERA_COUNT] {
        self.delivered
    }

    /// Frame period, ns.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    fn capture_ns(&self, k: u64) -> u64 {
        self.start_ns + k * self.period_ns
    }

    fn fault_at(&self, camera: u8, rel_ns: u64) -> (bool, bool) {
        let mut dark = false;
        let mut corrupt = false;
        for f in &self.faults {
            match *f {
                FeedFault::Dropout { camera: c, from_ns, to_ns } if c == camera && (from_ns..to_ns).contains(&rel_ns) => dark = true,
                FeedFault::Corrupt { camera: c, from_ns, to_ns } if c == camera && (from_ns..to_ns).contains(&rel_ns) => corrupt = true,
                _ => {}
            }
        }
        (dark, corrupt)
    }
}

impl FrameInput for LoopFeed {
    fn poll(&mut self, camera: u8, now_ns: u64) -> Option<FrameRef> {
        let c = usize::from(camera);
        loop {
            let k = *self.next.get(c)?;
            if self.limit.is_some_and(|l| k >= l) {
                return None;
            }
            let t = self.capture_ns(k);
            if t > now_ns {
                return None;
            }
            self.next[c] = k + 1;
            let (dark, corrupt) = self.fault_at(camera, t - self.start_ns);
            if dark {
                continue;
            }
            self.delivered[c] += 1;
            let slot = if corrupt { CORRUPT_SLOT } else { (k % self.pool.len() as u64) as u32 };
            return Some(FrameRef { camera, slot, capture_ns: t });
        }
    }

    fn pixels(&self, frame: &FrameRef) -> &[u8] {
        let c = usize::from(frame.camera);
        if frame.slot == CORRUPT_SLOT {
            return &self.noise[c];
        }
        &self.pool[frame.slot as usize][c]
    }

    fn release(&mut self, _frame: FrameRef) {}

    fn next_capture_ns(&self) -> Option<u64> {
        let k = *self.next.iter().min()?;
        if self.limit.is_some_and(|l| k >= l) {
            return None;
        }
        Some(self.capture_ns(k))
    }
}
