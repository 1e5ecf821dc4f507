//! The control-loop boundary.
//!
//! `control` owns the snapshot handed to the vehicle's control loop: objects in the
//! vehicle frame, per-camera freshness, degradation level, model version and timestamps.
//! It is published wait-free in-process and through a shared-memory segment with a
//! documented `#[repr(C)]` layout and a sequence lock, so a reader in any language can
//! consume it. Readers never block the writer and the writer never blocks readers.
