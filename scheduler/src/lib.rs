//! Time and deadlines.
//!
//! `scheduler` owns the clocks (a `rtic_monotonic::Monotonic` over CLOCK_MONOTONIC and a
//! virtual clock for replay and tests), the earliest-deadline-first executor over
//! per-camera frame jobs with online execution-time estimates and admission control,
//! the watchdog, the power and thermal governor, and the degradation ladder.
//! Every time-dependent decision takes the clock as input, so it can be replayed exactly.
//!
//! CONTRACT (the pipeline codes against these): [`Clock`], [`MonotonicClock`],
//! [`VirtualClock`]; [`Executor::new`] / `submit` / `dispatch` / `complete` /
//! `set_policy` / `take_stats` / `take_degraded`; [`ExecTimeModel`];
//! [`Ladder::new`] / `update` / `policy` / `events`; [`governor::Governor::update`] and
//! [`governor::PowerSensor`]. Everything on the hot path is allocation-free after
//! construction (tested with a counting allocator in `tests/no_alloc.rs`).
#![forbid(unsafe_code)]

pub mod clock;
pub mod estimate;
pub mod executor;
pub mod governor;
pub mod ladder;
pub mod trace;

pub use clock::{Clock, Duration, Instant, LinuxMonotonic, MonotonicClock, VirtualClock};
pub use estimate::{ExecTimeModel, ModelledTimes, OnlineEstimator};
pub use executor::{
    CameraPolicy, CancelToken, Completion, DropReason, Executor, ExecutorConfig, FrameJob, Job, JobStatus,
    LoadStats, Next, SkipReason, Skipped, Submitted, WatchdogHandle,
};
pub use ladder::{CameraSpec, Criticality, Ladder, LadderConfig, LadderEvent, Pressure, Reason, Step};

/// Index of a camera, `0..cameras` in rig order.
pub type CameraId = usize;

/// A model variant: `VariantId(0)` is the largest (most accurate), higher ids are smaller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VariantId(pub u8);
