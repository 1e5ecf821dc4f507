//! The earliest-deadline-first executor over per-camera frame jobs.
//!
//! One pending job per camera: a newer frame replaces the older one (its payload is
//! handed back so the caller can return the frame to its pool). [`Executor::dispatch`]
//! picks the pending job with the earliest deadline, drops it if its deadline has
//! passed, and otherwise runs admission control: the camera's preferred variant (set by
//! the degradation ladder) if the [`ExecTimeModel`] predicts it finishes in time, else
//! the largest smaller variant that does, else the job is skipped before it starts.
//!
//! The watchdog bounds a job that overruns anyway: its [`CancelToken`] turns true at the
//! job's deadline plus a grace (the job polls it between stages; another thread may also
//! fire it through [`WatchdogHandle`]), and [`Executor::complete`] drops a result that
//! comes back after that instant and marks the output degraded. Nothing waits: the next
//! dispatch is planned from the current time with its own deadline.
//!
//! Everything is allocated in [`Executor::new`]; `submit`, `dispatch` and `complete`
//! never allocate, lock or perform I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::{Clock, Duration, Instant, since};
use crate::estimate::ExecTimeModel;
use crate::trace;
use crate::{CameraId, VariantId};

/// Static executor parameters.
#[derive(Clone, Copy, Debug)]
pub struct ExecutorConfig {
    /// Number of cameras (jobs are indexed `0..cameras`).
    pub cameras: usize,
    /// Number of model variants, largest (`VariantId(0)`) to smallest.
    pub variants: u8,
    /// Added to every prediction before comparing with the deadline.
    pub margin: Duration,
    /// How long after its deadline a running job is cancelled and its result dropped.
    pub watchdog_grace: Duration,
}

/// How the executor treats one camera right now (written by the degradation ladder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraPolicy {
    /// The variant to use when it fits the deadline; smaller ones are tried after it.
    pub variant: VariantId,
    /// Frames captured sooner than this after the last started one are decimated.
    pub min_interval: Duration,
    /// Tie-break between equal deadlines: higher first (criticality).
    pub priority: u8,
}

impl Default for CameraPolicy {
    fn default() -> Self {
        CameraPolicy { variant: VariantId(0), min_interval: Duration::from_ticks(0), priority: 0 }
    }
}

/// A frame waiting to be processed.
#[derive(Debug)]
pub struct FrameJob<T> {
    /// Which camera.
    pub camera: CameraId,
    /// When the frame was captured.
    pub capture: Instant,
    /// When its result stops being useful.
    pub deadline: Instant,
    /// The caller's frame handle.
    pub payload: T,
}

/// What [`Executor::submit`] did with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted<T> {
    /// Queued; nothing was pending for the camera.
    Queued,
    /// Queued; the older pending frame of the camera is handed back.
    Replaced(T),
    /// Not queued: the camera's rate policy decimates it. The frame is handed back.
    Decimated(T),
    /// Not queued: the camera index is out of range. The frame is handed back.
    UnknownCamera(T),
}

/// Why a job was not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its deadline had already passed when it came up.
    Expired,
    /// Even the smallest variant was predicted to finish after the deadline.
    PredictedMiss,
}

/// Why a started job produced no result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// It returned after the watchdog instant (deadline plus grace).
    Watchdog,
    /// It stopped early because its token was cancelled.
    Cancelled,
    /// The backend reported a failure.
    Failed,
}

/// How a job ended, as reported by the code that ran it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Ran to the end.
    Finished,
    /// Saw its cancel token and stopped.
    Cancelled,
    /// The backend failed.
    Failed,
}

/// The executor's verdict on a completed job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The result is valid; publish it.
    OnTime {
        /// Capture to completion.
        latency: Duration,
        /// Dispatch to completion.
        took: Duration,
    },
    /// The result must be dropped and the output marked degraded.
    Dropped {
        /// Why.
        reason: DropReason,
        /// Dispatch to completion.
        took: Duration,
    },
}

/// A job admitted to run.
#[derive(Debug)]
pub struct Job<T, C: Clock + Clone> {
    /// Which camera.
    pub camera: CameraId,
    /// The variant admission chose.
    pub variant: VariantId,
    /// The variant the ladder preferred; `variant != preferred` means admission degraded it.
    pub preferred: VariantId,
    /// Capture time of the frame.
    pub capture: Instant,
    /// Deadline of the frame.
    pub deadline: Instant,
    /// When the job was dispatched.
    pub started: Instant,
    /// The caller's frame handle.
    pub payload: T,
    /// Poll between stages; stop when it says so.
    pub token: CancelToken<C>,
}

impl<T, C: Clock + Clone> Job<T, C> {
    /// True when admission chose a smaller variant than the ladder preferred.
    pub fn degraded(&self) -> bool {
        self.variant != self.preferred
    }
}

/// A job skipped by admission; the frame is handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct Skipped<T> {
    /// Which camera.
    pub camera: CameraId,
    /// Why.
    pub reason: SkipReason,
    /// The caller's frame handle.
    pub payload: T,
}

/// The result of [`Executor::dispatch`].
#[derive(Debug)]
pub enum Next<T, C: Clock + Clone> {
    /// Run this job, then call [`Executor::complete`].
    Run(Job<T, C>),
    /// This job was skipped; call `dispatch` again for the next one.
    Skip(Skipped<T>),
    /// Nothing is pending.
    Idle,
}

/// Shared watchdog state: the running job's ticket and its kill instant.
#[derive(Debug, Default)]
struct WatchdogState {
    armed_ticket: AtomicU64,
    kill_at_ns: AtomicU64,
    cancelled_ticket: AtomicU64,
}

/// Polled by a running job; true once the job must stop.
#[derive(Debug, Clone)]
pub struct CancelToken<C: Clock + Clone> {
    clock: C,
    kill_at: Instant,
    ticket: u64,
    state: Arc<WatchdogState>,
}

impl<C: Clock + Clone> CancelToken<C> {
    /// True when the watchdog instant has passed or another thread cancelled the job.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.clock.now() >= self.kill_at || self.state.cancelled_ticket.load(Ordering::Acquire) == self.ticket
    }

    /// The instant at which the watchdog fires.
    pub fn kill_at(&self) -> Instant {
        self.kill_at
    }
}

/// A handle another thread holds to fire the watchdog of whatever job is running.
#[derive(Debug, Clone)]
pub struct WatchdogHandle {
    state: Arc<WatchdogState>,
}

impl WatchdogHandle {
    /// Cancels the running job if its kill instant is at or before `now`; returns whether
    /// it did. Lock-free; meant for a low-rate supervisor thread.
    pub fn check(&self, now: Instant) -> bool {
        let ticket = self.state.armed_ticket.load(Ordering::Acquire);
        if ticket == 0 || now.ticks() < self.state.kill_at_ns.load(Ordering::Acquire) {
            return false;
        }
        self.state.cancelled_ticket.store(ticket, Ordering::Release);
        true
    }
}

/// Counters over a reporting window (see [`Executor::take_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Jobs whose result was valid.
    pub on_time: u32,
    /// Jobs run on a smaller variant than preferred.
    pub degraded: u32,
    /// Jobs whose result was dropped by the watchdog or failed.
    pub dropped: u32,
    /// Jobs skipped because they were predicted to miss.
    pub predicted_miss: u32,
    /// Jobs skipped because their deadline had passed.
    pub expired: u32,
    /// Frames replaced by a newer one before they started.
    pub replaced: u32,
    /// Frames decimated by the rate policy.
    pub decimated: u32,
}

impl LoadStats {
    /// Fraction of jobs that came up for execution and yielded no valid result.
    pub fn miss_ratio(&self) -> f32 {
        let missed = self.dropped + self.predicted_miss + self.expired;
        let total = missed + self.on_time;
        if total == 0 { 0.0 } else { missed as f32 / total as f32 }
    }
}

#[derive(Debug)]
struct Pending<T> {
    capture: Instant,
    deadline: Instant,
    payload: T,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    ticket: u64,
    camera: CameraId,
    variant: VariantId,
    started: Instant,
    kill_at: Instant,
}

/// The EDF executor. `T` is the caller's frame handle, `C` the clock, `M` the
/// execution-time model.
#[derive(Debug)]
pub struct Executor<T, C: Clock + Clone, M: ExecTimeModel> {
    clock: C,
    model: M,
    cfg: ExecutorConfig,
    pending: Box<[Option<Pending<T>>]>,
    policy: Box<[CameraPolicy]>,
    last_started: Box<[Option<Instant>]>,
    running: Option<Running>,
    next_ticket: u64,
    watchdog: Arc<WatchdogState>,
    stats: LoadStats,
    degraded_output: bool,
}

impl<T, C: Clock + Clone, M: ExecTimeModel> Executor<T, C, M> {
    /// Allocates every per-camera slot; nothing allocates after this.
    pub fn new(cfg: ExecutorConfig, clock: C, model: M) -> Self {
        let n = cfg.cameras;
        Executor {
            clock,
            model,
            pending: (0..n).map(|_| None).collect(),
            policy: vec![CameraPolicy::default(); n].into_boxed_slice(),
            last_started: vec![None; n].into_boxed_slice(),
            cfg,
            running: None,
            next_ticket: 1,
            watchdog: Arc::new(WatchdogState::default()),
            stats: LoadStats::default(),
            degraded_output: false,
        }
    }

    /// The clock the executor decides with.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The execution-time model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// A handle for a supervisor thread to fire the watchdog.
    pub fn watchdog(&self) -> WatchdogHandle {
        WatchdogHandle { state: Arc::clone(&self.watchdog) }
    }

    /// Sets how `camera` is treated from the next dispatch on.
    pub fn set_policy(&mut self, camera: CameraId, policy: CameraPolicy) {
        if let Some(p) = self.policy.get_mut(camera) {
            let smallest = self.cfg.variants.saturating_sub(1);
            *p = CameraPolicy { variant: VariantId(policy.variant.0.min(smallest)), ..policy };
        }
    }

    /// The policy in force for `camera`.
    pub fn policy(&self, camera: CameraId) -> Option<CameraPolicy> {
        self.policy.get(camera).copied()
    }

    /// Number of frames waiting.
    pub fn pending(&self) -> usize {
        self.pending.iter().filter(|p| p.is_some()).count()
    }

    /// Offers a frame. The newest frame of a camera replaces an older pending one.
    pub fn submit(&mut self, job: FrameJob<T>) -> Submitted<T> {
        let FrameJob { camera, capture, deadline, payload } = job;
        let Some(slot) = self.pending.get_mut(camera) else {
            return Submitted::UnknownCamera(payload);
        };
        let interval = self.policy[camera].min_interval;
        if let Some(last) = self.last_started[camera] {
            // 10% tolerance so capture jitter does not halve the intended rate.
            let tolerance = Duration::from_ticks(interval.ticks() / 10);
            if since(last, capture) + tolerance < interval {
                self.stats.decimated += 1;
                return Submitted::Decimated(payload);
            }
        }
        match slot.replace(Pending { capture, deadline, payload }) {
            Some(old) => {
                self.stats.replaced += 1;
                Submitted::Replaced(old.payload)
            }
            None => Submitted::Queued,
        }
    }

    /// Picks the next job (earliest deadline first) and runs admission on it.
    ///
    /// Call repeatedly while it returns [`Next::Skip`]; at most one job runs at a time
    /// (a `Run` must be completed before the next `dispatch`, or `dispatch` reports Idle).
    pub fn dispatch(&mut self) -> Next<T, C> {
        let _z = crate::zone!("executor.dispatch");
        if self.running.is_some() {
            return Next::Idle;
        }
        crate::plot!("executor.pending", self.pending());
        let mut best: Option<(CameraId, Instant, u8)> = None;
        for (cam, slot) in self.pending.iter().enumerate() {
            if let Some(p) = slot {
                let prio = self.policy[cam].priority;
                let better = match best {
                    None => true,
                    Some((_, d, bp)) => p.deadline < d || (p.deadline == d && prio > bp),
                };
                if better {
                    best = Some((cam, p.deadline, prio));
                }
            }
        }
        let Some((camera, _, _)) = best else {
            return Next::Idle;
        };
        let Some(job) = self.pending[camera].take() else {
            return Next::Idle;
        };
        let now = self.clock.now();
        if now >= job.deadline {
            self.stats.expired += 1;
            return Next::Skip(Skipped { camera, reason: SkipReason::Expired, payload: job.payload });
        }
        let preferred = self.policy[camera].variant;
        let mut chosen = None;
        for v in preferred.0..self.cfg.variants {
            let cost = self.model.predict(camera, VariantId(v)) + self.cfg.margin;
            if now + cost <= job.deadline {
                chosen = Some(VariantId(v));
                break;
            }
        }
        let Some(variant) = chosen else {
            self.stats.predicted_miss += 1;
            return Next::Skip(Skipped { camera, reason: SkipReason::PredictedMiss, payload: job.payload });
        };
        if variant != preferred {
            self.stats.degraded += 1;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let kill_at = job.deadline + self.cfg.watchdog_grace;
        self.watchdog.kill_at_ns.store(kill_at.ticks(), Ordering::Release);
        self.watchdog.armed_ticket.store(ticket, Ordering::Release);
        self.running = Some(Running { ticket, camera, variant, started: now, kill_at });
        self.last_started[camera] = Some(job.capture);
        trace::frame_mark(camera);
        Next::Run(Job {
            camera,
            variant,
            preferred,
            capture: job.capture,
            deadline: job.deadline,
            started: now,
            payload: job.payload,
            token: CancelToken {
                clock: self.clock.clone(),
                kill_at,
                ticket,
                state: Arc::clone(&self.watchdog),
            },
        })
    }

    /// Ends a running job: teaches the model, applies the watchdog, hands the frame back.
    pub fn complete(&mut self, job: Job<T, C>, status: JobStatus) -> (Completion, T) {
        let _z = crate::zone!("executor.complete");
        let now = self.clock.now();
        self.watchdog.armed_ticket.store(0, Ordering::Release);
        let run = match self.running.take() {
            Some(r) if r.ticket == job.token.ticket => r,
            other => {
                // A job from an earlier dispatch: never valid, never learnt from.
                self.running = other;
                self.stats.dropped += 1;
                self.degraded_output = true;
                let took = since(job.started, now);
                return (Completion::Dropped { reason: DropReason::Failed, took }, job.payload);
            }
        };
        let took = since(run.started, now);
        // A cancelled job's time is a lower bound of its cost: learning it keeps the
        // estimate pessimistic after an overrun.
        self.model.observe(run.camera, run.variant, took);
        let verdict = match status {
            JobStatus::Failed => Some(DropReason::Failed),
            JobStatus::Cancelled => Some(DropReason::Cancelled),
            JobStatus::Finished if now > run.kill_at => Some(DropReason::Watchdog),
            JobStatus::Finished => None,
        };
        let c = match verdict {
            Some(reason) => {
                self.stats.dropped += 1;
                self.degraded_output = true;
                Completion::Dropped { reason, took }
            }
            None => {
                self.stats.on_time += 1;
                Completion::OnTime { latency: since(job.capture, now), took }
            }
        };
        (c, job.payload)
    }

    /// Returns and resets the counters of the current window.
    pub fn take_stats(&mut self) -> LoadStats {
        std::mem::take(&mut self.stats)
    }

    /// True if a result was dropped since the last call (the next snapshot is degraded).
    pub fn take_degraded(&mut self) -> bool {
        std::mem::take(&mut self.degraded_output)
    }
}
