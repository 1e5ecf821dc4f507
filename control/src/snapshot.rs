//! The snapshot handed to the control loop: one `#[repr(C)]` value, no pointers.
//!
//! The layout is the contract with readers in other languages
//! (`control/include/vigil_snapshot.h`; a test compiles the header and compares every
//! size and offset). All integers and floats are native-endian (little-endian on every
//! supported target); all times are CLOCK_MONOTONIC nanoseconds.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Objects a snapshot holds at most.
pub const MAX_OBJECTS: usize = 64;
/// Cameras a snapshot reports on at most.
pub const MAX_CAMERAS: usize = 8;

/// `flags` bit: the content is the last good snapshot republished (perception fell behind).
pub const FLAG_STALE: u16 = 1;
/// `flags` bit: at least one camera's result was dropped (watchdog) or degraded.
pub const FLAG_DEGRADED: u16 = 1 << 1;
/// `flags` bit: the model was reverted to the last-known-good version.
pub const FLAG_REVERTED: u16 = 1 << 2;

/// One tracked object in the vehicle frame (ISO 8855: x forward, y left, z up, metres).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Object {
    /// Stable track identifier (0 is never used).
    pub track_id: u32,
    /// Object class (the detector's class index).
    pub class: u16,
    /// Reserved, zero.
    pub flags: u16,
    /// Detection confidence in `0.0..=1.0`.
    pub confidence: f32,
    /// Position, metres.
    pub position: [f32; 3],
    /// Velocity, metres per second.
    pub velocity: [f32; 3],
}

/// Freshness of one camera's contribution.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CameraStatus {
    /// Capture time of the newest frame of this camera in the snapshot; 0 = none yet.
    pub last_capture_ns: u64,
    /// Frames of this camera processed since start.
    pub frames: u32,
    /// Measured rate over the last second, millihertz.
    pub fps_milli: u32,
}

/// The newest fused state of the world, as the control loop sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Snapshot {
    /// Publication counter, 1 for the first snapshot (set by the publisher).
    pub sequence: u64,
    /// Capture time of the oldest frame that contributed.
    pub capture_ns: u64,
    /// When the snapshot was published.
    pub publish_ns: u64,
    /// Version of the model that produced it.
    pub model_version: u64,
    /// Degradation ladder level, 0 = nominal.
    pub degradation_level: u16,
    /// `FLAG_*` bits.
    pub flags: u16,
    /// Valid entries in `objects`.
    pub object_count: u16,
    /// Valid entries in `cameras`.
    pub camera_count: u16,
    /// Per-camera freshness.
    pub cameras: [CameraStatus; MAX_CAMERAS],
    /// Objects; entries at and after `object_count` are zero.
    pub objects: [Object; MAX_OBJECTS],
    /// [`checksum`] of every byte before this field (set by the publisher).
    pub checksum: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::new_zeroed()
    }
}

/// Size of a [`Snapshot`] in bytes (2480).
pub const SNAPSHOT_SIZE: usize = core::mem::size_of::<Snapshot>();
/// Size of a [`Snapshot`] in 64-bit words.
pub const SNAPSHOT_WORDS: usize = SNAPSHOT_SIZE / 8;
const _: () = assert!(SNAPSHOT_SIZE.is_multiple_of(8), "the seqlock copies whole words");

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over 64-bit words: for each native-endian `u64` word `w` of the snapshot
/// before `checksum`, `h = (h ^ w) * 0x100000001b3`, starting from `0xcbf29ce484222325`.
pub fn checksum(s: &Snapshot) -> u64 {
    let bytes = s.as_bytes();
    let body = &bytes[..SNAPSHOT_SIZE - 8];
    let mut h = FNV_OFFSET;
    for w in body.chunks_exact(8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_ne_bytes(a)).wrapping_mul(FNV_PRIME);
    }
    h
}

impl Snapshot {
    /// True when the stored checksum matches the content.
    pub fn verify(&self) -> bool {
        checksum(self) == self.checksum
    }

    /// The valid objects.
    pub fn objects(&self) -> &[Object] {
        &self.objects[..usize::from(self.object_count).min(MAX_OBJECTS)]
    }

    /// Replaces the objects (at most [`MAX_OBJECTS`]; the rest are dropped and counted
    /// in the return value) and zeroes the unused entries.
    pub fn set_objects(&mut self, objects: &[Object]) -> usize {
        let n = objects.len().min(MAX_OBJECTS);
        self.objects[..n].copy_from_slice(&objects[..n]);
        for o in &mut self.objects[n..] {
            *o = Object::default();
        }
        self.object_count = n as u16;
        objects.len() - n
    }

    /// `now - publish_ns`, the snapshot's age in nanoseconds (0 if `now` is earlier).
    pub fn age_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.publish_ns)
    }

    /// The ladder's "publish the last snapshot flagged stale" rung: the same content,
    /// flagged [`FLAG_STALE`], with the current ladder level. `capture_ns` and the
    /// per-camera capture times are kept, so readers see how old the content really is;
    /// the publisher stamps `publish_ns`, `sequence` and `checksum` as usual.
    pub fn mark_stale(&mut self, degradation_level: u16) {
        self.flags |= FLAG_STALE;
        self.degradation_level = degradation_level;
    }
}
