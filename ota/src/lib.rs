//! Over-the-air model updates.
//!
//! `ota` owns TUF metadata verification (no I/O: bytes and time in, decisions out),
//! the A/B slot store with trial boot and automatic revert, tensor-aware deltas between
//! `.vplan` versions, tier targeting and deterministic cohorts, and the repository tools.
#![forbid(unsafe_code)]
pub mod tuf;
