//! Time and deadlines.
//!
//! `scheduler` owns the clocks (a `rtic_monotonic::Monotonic` over CLOCK_MONOTONIC and a
//! virtual clock for replay and tests), the earliest-deadline-first executor over
//! per-camera frame jobs with online execution-time estimates and admission control,
//! the watchdog, the power and thermal governor, and the degradation ladder.
//! Every time-dependent decision takes the clock as input, so it can be replayed exactly.
#![forbid(unsafe_code)]
