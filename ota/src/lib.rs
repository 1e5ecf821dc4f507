//! Over-the-air model updates.
//!
//! `ota` owns TUF metadata verification ([`tuf`]: no I/O, bytes and time in, decisions
//! out), the A/B slot store with trial boot and automatic revert ([`slots`] over a
//! [`storage::Storage`] that tests can cut power on), tensor-aware deltas between model
//! versions ([`delta`]), tier targeting and deterministic cohorts ([`rollout`]), the
//! device state machine ([`client`]) and the repository tools ([`repo`], [`cli`]).
//! `docs/OTA.md` describes roles, metadata layout, the state machine and the power-cut argument.
#![forbid(unsafe_code)]
pub mod artifact;
pub mod cli;
pub mod client;
pub mod delta;
pub mod repo;
pub mod rollout;
pub mod slots;
pub mod storage;
pub mod tuf;
