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
//! [`Ladder::new`] / `update` / `policy` / `apply` / `stale` / `drain_events`;
//! [`governor::Governor::update`] and
//! [`governor::PowerSensor`]. Everything on the hot path is allocation-free after
//! construction (tested with a counting allocator in `tests/no_alloc.rs`).
//!
//! The hot loop, on one thread:
//!
//! ```
//! use scheduler::clock::{micros, millis};
//! use scheduler::*;
//!
//! let clock = VirtualClock::new(Instant::from_ticks(0)); // MonotonicClock on the vehicle
//! let cams = vec![CameraSpec { criticality: Criticality::High, nominal_fps: 36.0, min_fps: 18.0 }; 2];
//! let mut ladder = Ladder::new(LadderConfig::new(cams, 3)).unwrap();
//! let cfg = ExecutorConfig { cameras: 2, variants: 3, margin: micros(200), watchdog_grace: millis(1) };
//! let mut exec = Executor::new(cfg, clock.clone(), OnlineEstimator::new(&[millis(8), millis(4), millis(2)]));
//! ladder.apply(&mut exec);
//!
//! // A frame arrives from a camera ring (the payload is the caller's frame handle).
//! let capture = clock.now();
//! let _ = exec.submit(FrameJob { camera: 0, capture, deadline: capture + millis(25), payload: 7u32 });
//! loop {
//!     match exec.dispatch() {
//!         Next::Run(job) => {
//!             // backend.run(plan[job.variant], frame), polling job.token.is_cancelled()
//!             clock.advance(millis(3));
//!             let (verdict, _frame) = exec.complete(job, JobStatus::Finished);
//!             assert!(matches!(verdict, Completion::OnTime { .. }));
//!         }
//!         Next::Skip(skipped) => { /* return skipped.payload to its pool */ }
//!         Next::Idle => break,
//!     }
//! }
//! // Every evaluation period: governor state + miss ratio -> ladder -> executor policy.
//! let stats = exec.take_stats();
//! let pressure = Pressure { miss_ratio: stats.miss_ratio(), power_w: 20.0, cap_w: 30.0, thermal_limited: false };
//! if ladder.update(clock.now(), pressure).is_some() {
//!     ladder.apply(&mut exec);
//! }
//! ```
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
