//! The control-loop boundary.
//!
//! `control` owns the snapshot handed to the vehicle's control loop: objects in the
//! vehicle frame, per-camera freshness, degradation level, model version and timestamps.
//! It is published wait-free in-process and through a shared-memory segment with a
//! documented `#[repr(C)]` layout and a sequence lock, so a reader in any language can
//! consume it. Readers never block the writer and the writer never blocks readers.
//!
//! CONTRACT: [`Snapshot`] (layout fixed by `include/vigil_snapshot.h`), [`channel`] ->
//! ([`Publisher::publish`], [`Reader::read`]), [`ShmPublisher::create`] /
//! [`ShmPublisher::publish`], [`ShmReader::open`] / [`ShmReader::read`], [`now_ns`].
//! Layout and protocol: `docs/CONTROL.md`.
#![deny(unsafe_code)]

mod inproc;
mod seqlock;
#[allow(unsafe_code)] // the mapping as atomics; see the SAFETY comment in shm.rs
mod shm;
mod snapshot;

pub use inproc::{Publisher, Reader, channel};
pub use seqlock::{READ_ATTEMPTS, ReadError};
pub use shm::{HEADER_SIZE, MAGIC, SEGMENT_SIZE, SEQ_OFFSET, ShmError, ShmPublisher, ShmReader, VERSION};
pub use snapshot::{
    CameraStatus, FLAG_DEGRADED, FLAG_REVERTED, FLAG_STALE, MAX_CAMERAS, MAX_OBJECTS, Object, SNAPSHOT_SIZE,
    SNAPSHOT_WORDS, Snapshot, checksum,
};

/// CLOCK_MONOTONIC in nanoseconds: the timeline of every timestamp in a snapshot.
pub fn now_ns() -> u64 {
    rtic_clock::monotonic_ns()
}
