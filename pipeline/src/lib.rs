//! The hot path from camera to control boundary.
//!
//! `pipeline` owns camera sources (synthetic, MCAP replay, V4L2), the preallocated
//! frame pools and per-camera `rtrb` rings, MCAP recording and the replay harness,
//! lifting detections to the vehicle frame, cross-camera fusion, tracking, the wiring
//! of executor + backend + control boundary, and the hardware-in-the-loop scenarios.
//!
//! Rules of the hot path: no allocation after start-up, no blocking lock, no I/O,
//! no unbounded loop. Slow work reaches it only through bounded lock-free queues.
#![forbid(unsafe_code)]

pub mod annotate;
pub mod detector;
pub mod deterministic;
pub mod feed;
#[cfg(feature = "live-view")]
pub mod foxglove;
pub mod hil;
pub mod live;
pub mod mcap_io;
pub mod passthrough;
pub mod perception;
pub mod pool;
pub mod record;
pub mod replay;
pub mod rings;
pub mod runtime;
pub mod source;
