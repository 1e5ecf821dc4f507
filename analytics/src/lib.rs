//! Federated analytics that never touch the hot path.
//!
//! `analytics` owns the metric tap (fixed-size events, `try_push` into a bounded ring,
//! counted drops), the low-priority aggregator (sketches, counters, histograms),
//! differential privacy with a per-vehicle budget, Prio3 encoding, the bounded on-disk
//! spool and the asynchronous DAP uploader.
#![forbid(unsafe_code)]
