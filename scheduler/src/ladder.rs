//! The degradation ladder: cheapest recovery first, hysteresis on the way back.
//!
//! Rungs, in the order they are climbed under pressure (each rung is one or more
//! [`Step`]s, precomputed at start-up from the configuration):
//!
//! 1. **Smaller variant**, least critical cameras first: Low, then Medium, then High move
//!    one variant down, and again, until every camera runs the smallest variant.
//! 2. **Lower rate on less critical cameras**: Low cameras halve their rate, then drop to
//!    their minimum; then Medium cameras do the same. High cameras keep their rate.
//! 3. **Skip frames**: every camera, High included, may drop to its configured minimum rate.
//! 4. **Stale**: the output is published as the last snapshot flagged stale.
//! 5. **Model revert**: the [`ModelRevert`] hook (the OTA module) is asked to revert to the
//!    last-known-good model.
//!
//! Escalation needs overload (deadline misses above `miss_high`, or power above the
//! effective cap) sustained for `escalate_after`; recovery needs calm (misses at or below
//! `miss_low` and power at or below `power_low` of the cap) sustained for the longer
//! `recover_after`, one step at a time. Load between the two thresholds holds the level.
//! Every transition is a [`LadderEvent`] with its [`Reason`], kept in a fixed ring.

use crate::clock::{Duration, Instant, since};
use crate::executor::{CameraPolicy, Executor};
use crate::{CameraId, Clock, ExecTimeModel, VariantId};

/// How much the vehicle relies on a camera (front highest, rear lowest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    /// Rear views: first to lose rate.
    Low,
    /// Side views.
    Medium,
    /// Front views: last to lose rate, never below their minimum.
    High,
}

/// Per-camera scheduling configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraSpec {
    /// Criticality class.
    pub criticality: Criticality,
    /// The camera's native rate, frames per second.
    pub nominal_fps: f32,
    /// The rate the ladder never goes below, frames per second.
    pub min_fps: f32,
}

/// Ladder configuration.
#[derive(Clone, Debug)]
pub struct LadderConfig {
    /// One entry per camera, in rig order.
    pub cameras: Vec<CameraSpec>,
    /// Number of model variants (largest first).
    pub variants: u8,
    /// Overload must persist this long before each step up.
    pub escalate_after: Duration,
    /// Calm must persist this long before each step down.
    pub recover_after: Duration,
    /// Miss ratio above which the load is an overload.
    pub miss_high: f32,
    /// Miss ratio at or below which the load is calm.
    pub miss_low: f32,
    /// Fraction of the power cap at or below which power is calm.
    pub power_low: f32,
    /// Capacity of the transition event ring.
    pub event_capacity: usize,
}

impl LadderConfig {
    /// Defaults for the given cameras and variant count: escalate after 200 ms, recover
    /// after 2 s, misses high 5% / low 1%, power calm below 90% of the cap.
    pub fn new(cameras: Vec<CameraSpec>, variants: u8) -> Self {
        LadderConfig {
            cameras,
            variants,
            escalate_after: crate::clock::millis(200),
            recover_after: crate::clock::secs(2),
            miss_high: 0.05,
            miss_low: 0.01,
            power_low: 0.9,
            event_capacity: 256,
        }
    }
}

/// A configuration the ladder cannot use; names the offending field.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LadderError {
    /// A field holds a value outside its range.
    #[error("ladder configuration: {field}: {problem}")]
    Invalid {
        /// The field, e.g. `cameras[3].min_fps`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// One step of the ladder (fixed size, `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Level 0: full variant, full rate everywhere.
    Nominal,
    /// Cameras of `criticality` run `variant`.
    VariantDown {
        /// Which cameras.
        criticality: Criticality,
        /// Their new preferred variant.
        variant: u8,
    },
    /// Cameras of `criticality` run at most `fps_milli / 1000` frames per second.
    RateDown {
        /// Which cameras.
        criticality: Criticality,
        /// Their new rate, millihertz.
        fps_milli: u32,
    },
    /// Every camera may drop to its minimum rate.
    SkipFrames,
    /// Publish the last snapshot flagged stale.
    Stale,
    /// Ask the OTA module to revert to the last-known-good model.
    Revert,
}

/// Why a transition happened (fixed size, `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Jobs missed their deadline (dropped, skipped or expired).
    DeadlineMisses {
        /// Miss ratio over the evaluation window, per mille.
        miss_permille: u16,
    },
    /// The sliding-window power exceeded the configured cap.
    PowerOverCap {
        /// Window average, milliwatts.
        avg_mw: u32,
        /// Cap, milliwatts.
        cap_mw: u32,
    },
    /// The thermal model lowered the cap below the power drawn.
    ThermalDerate {
        /// Window average, milliwatts.
        avg_mw: u32,
        /// The thermally de-rated cap, milliwatts.
        cap_mw: u32,
    },
    /// Calm held for long enough to step down.
    Recovered {
        /// How long calm held, milliseconds.
        calm_ms: u32,
    },
}

/// A ladder transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LadderEvent {
    /// When it happened.
    pub at: Instant,
    /// Level before.
    pub from: u16,
    /// Level after.
    pub to: u16,
    /// The step entered (going up) or left (going down).
    pub step: Step,
    /// Why.
    pub reason: Reason,
}

/// What the ladder needs to know each evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pressure {
    /// Executor miss ratio over the last window ([`crate::LoadStats::miss_ratio`]).
    pub miss_ratio: f32,
    /// Sliding-window average power, watts.
    pub power_w: f32,
    /// Effective cap (configured cap, or lower when thermally de-rated), watts.
    pub cap_w: f32,
    /// True when the effective cap is the thermal limit rather than the configured cap.
    pub thermal_limited: bool,
}

/// Receives the ladder's request to revert the model (the OTA module implements it).
///
/// Called on the hot thread: it must not block (set an atomic, push to a bounded queue).
pub trait ModelRevert: Send {
    /// The ladder reached its last rung.
    fn request_revert(&mut self, reason: Reason);
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct CamLevel {
    variant: u8,
    fps: f32,
}

#[derive(Clone, Debug)]
struct Level {
    step: Step,
    cams: Box<[CamLevel]>,
    stale: bool,
}

/// The degradation ladder. Allocates in [`Ladder::new`] only.
pub struct Ladder {
    cfg: LadderConfig,
    levels: Box<[Level]>,
    level: usize,
    overload_since: Option<Instant>,
    calm_since: Option<Instant>,
    events: Box<[Option<LadderEvent>]>,
    head: usize,
    len: usize,
    lost: u64,
    revert: Option<Box<dyn ModelRevert>>,
}

impl std::fmt::Debug for Ladder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ladder").field("level", &self.level).field("step", &self.step()).finish_non_exhaustive()
    }
}

impl Ladder {
    /// Validates the configuration and precomputes every level.
    pub fn new(cfg: LadderConfig) -> Result<Self, LadderError> {
        let bad = |field: String, problem: String| LadderError::Invalid { field, problem };
        if cfg.variants == 0 {
            return Err(bad("variants".into(), "must be at least 1".into()));
        }
        if cfg.cameras.is_empty() {
            return Err(bad("cameras".into(), "at least one camera is needed".into()));
        }
        for (i, c) in cfg.cameras.iter().enumerate() {
            if !(c.nominal_fps.is_finite() && c.nominal_fps > 0.0) {
                return Err(bad(format!("cameras[{i}].nominal_fps"), format!("{} is not a positive rate", c.nominal_fps)));
            }
            if !(c.min_fps.is_finite() && c.min_fps > 0.0 && c.min_fps <= c.nominal_fps) {
                return Err(bad(
                    format!("cameras[{i}].min_fps"),
                    format!("{} must be positive and at most nominal_fps ({})", c.min_fps, c.nominal_fps),
                ));
            }
        }
        if !(0.0..=1.0).contains(&cfg.miss_low) || !(0.0..=1.0).contains(&cfg.miss_high) || cfg.miss_low > cfg.miss_high {
            return Err(bad("miss_low/miss_high".into(), "need 0 <= miss_low <= miss_high <= 1".into()));
        }
        if !(cfg.power_low > 0.0 && cfg.power_low <= 1.0) {
            return Err(bad("power_low".into(), format!("{} is not in (0, 1]", cfg.power_low)));
        }
        if cfg.event_capacity == 0 {
            return Err(bad("event_capacity".into(), "must be at least 1".into()));
        }
        let levels = build_levels(&cfg);
        Ok(Ladder {
            events: vec![None; cfg.event_capacity].into_boxed_slice(),
            cfg,
            levels,
            level: 0,
            overload_since: None,
            calm_since: None,
            head: 0,
            len: 0,
            lost: 0,
            revert: None,
        })
    }

    /// Installs the model-revert hook (start-up only).
    pub fn set_revert_hook(&mut self, hook: Box<dyn ModelRevert>) {
        self.revert = Some(hook);
    }

    /// Current level, 0 = nominal.
    pub fn level(&self) -> u16 {
        self.level as u16
    }

    /// Highest level.
    pub fn max_level(&self) -> u16 {
        (self.levels.len() - 1) as u16
    }

    /// The step of the current level.
    pub fn step(&self) -> Step {
        self.levels[self.level].step
    }

    /// The steps of every level, in climbing order.
    pub fn steps(&self) -> impl Iterator<Item = Step> + '_ {
        self.levels.iter().map(|l| l.step)
    }

    /// True when the output must be published as the last snapshot flagged stale.
    pub fn stale(&self) -> bool {
        self.levels[self.level].stale
    }

    /// The executor policy of `camera` at the current level.
    pub fn policy(&self, camera: CameraId) -> Option<CameraPolicy> {
        let c = self.levels[self.level].cams.get(camera)?;
        let spec = self.cfg.cameras[camera];
        Some(CameraPolicy {
            variant: VariantId(c.variant),
            min_interval: Duration::from_ticks((1e9 / f64::from(c.fps)) as u64),
            priority: spec.criticality as u8,
        })
    }

    /// The planned rate of `camera` at the current level, frames per second.
    pub fn planned_fps(&self, camera: CameraId) -> Option<f32> {
        self.levels[self.level].cams.get(camera).map(|c| c.fps)
    }

    /// Writes every camera's policy into the executor.
    pub fn apply<T, C: Clock + Clone, M: ExecTimeModel>(&self, exec: &mut Executor<T, C, M>) {
        for cam in 0..self.cfg.cameras.len() {
            if let Some(p) = self.policy(cam) {
                exec.set_policy(cam, p);
            }
        }
    }

    /// Evaluates the pressure at `now`; returns the transition if one happened.
    pub fn update(&mut self, now: Instant, p: Pressure) -> Option<LadderEvent> {
        if let Some(reason) = self.overload(&p) {
            self.calm_since = None;
            let since_t = *self.overload_since.get_or_insert(now);
            if since(since_t, now) >= self.cfg.escalate_after && self.level + 1 < self.levels.len() {
                self.overload_since = Some(now);
                return Some(self.go(now, self.level + 1, reason));
            }
            return None;
        }
        self.overload_since = None;
        if !self.calm(&p) {
            self.calm_since = None;
            return None;
        }
        let since_t = *self.calm_since.get_or_insert(now);
        let held = since(since_t, now);
        if held >= self.cfg.recover_after && self.level > 0 {
            self.calm_since = Some(now);
            let calm_ms = u32::try_from(held.ticks() / 1_000_000).unwrap_or(u32::MAX);
            return Some(self.go(now, self.level - 1, Reason::Recovered { calm_ms }));
        }
        None
    }

    /// Hands every recorded event to `f`, oldest first, and empties the ring.
    pub fn drain_events(&mut self, mut f: impl FnMut(&LadderEvent)) {
        let cap = self.events.len();
        let start = (self.head + cap - self.len) % cap;
        for i in 0..self.len {
            if let Some(e) = self.events[(start + i) % cap].take() {
                f(&e);
            }
        }
        self.len = 0;
    }

    /// Events overwritten before they were drained.
    pub fn lost_events(&self) -> u64 {
        self.lost
    }

    fn overload(&self, p: &Pressure) -> Option<Reason> {
        let mw = |w: f32| (w.max(0.0) * 1000.0) as u32;
        if p.cap_w > 0.0 && p.power_w > p.cap_w {
            let (avg_mw, cap_mw) = (mw(p.power_w), mw(p.cap_w));
            return Some(if p.thermal_limited {
                Reason::ThermalDerate { avg_mw, cap_mw }
            } else {
                Reason::PowerOverCap { avg_mw, cap_mw }
            });
        }
        if p.miss_ratio > self.cfg.miss_high {
            return Some(Reason::DeadlineMisses { miss_permille: (p.miss_ratio.min(1.0) * 1000.0) as u16 });
        }
        None
    }

    fn calm(&self, p: &Pressure) -> bool {
        p.miss_ratio <= self.cfg.miss_low && (p.cap_w <= 0.0 || p.power_w <= p.cap_w * self.cfg.power_low)
    }

    fn go(&mut self, now: Instant, to: usize, reason: Reason) -> LadderEvent {
        let from = self.level;
        let step = if to > from { self.levels[to].step } else { self.levels[from].step };
        self.level = to;
        crate::plot!("ladder.level", to);
        let e = LadderEvent { at: now, from: from as u16, to: to as u16, step, reason };
        let cap = self.events.len();
        if self.len == cap {
            self.lost += 1;
        } else {
            self.len += 1;
        }
        self.events[self.head] = Some(e);
        self.head = (self.head + 1) % cap;
        if to > from
            && step == Step::Revert
            && let Some(h) = self.revert.as_mut()
        {
            h.request_revert(reason);
        }
        e
    }
}

fn build_levels(cfg: &LadderConfig) -> Box<[Level]> {
    const CLASSES: [Criticality; 3] = [Criticality::Low, Criticality::Medium, Criticality::High];
    let mut cams: Vec<CamLevel> = cfg.cameras.iter().map(|c| CamLevel { variant: 0, fps: c.nominal_fps }).collect();
    let mut levels = vec![Level { step: Step::Nominal, cams: cams.clone().into(), stale: false }];
    let has = |k: Criticality| cfg.cameras.iter().any(|c| c.criticality == k);
    for v in 1..cfg.variants {
        for k in CLASSES.into_iter().filter(|&k| has(k)) {
            for (c, spec) in cams.iter_mut().zip(&cfg.cameras) {
                if spec.criticality == k {
                    c.variant = v;
                }
            }
            levels.push(Level { step: Step::VariantDown { criticality: k, variant: v }, cams: cams.clone().into(), stale: false });
        }
    }
    for k in [Criticality::Low, Criticality::Medium] {
        // Halve, then go to the minimum; a step that changes nothing is left out.
        for target in [0.5f32, 0.0] {
            let mut changed = false;
            let mut step_fps = 0.0f32;
            for (c, spec) in cams.iter_mut().zip(&cfg.cameras) {
                if spec.criticality != k {
                    continue;
                }
                let want = (spec.nominal_fps * target).max(spec.min_fps);
                if want < c.fps {
                    c.fps = want;
                    changed = true;
                }
                step_fps = step_fps.max(c.fps);
            }
            if changed {
                let fps_milli = (step_fps * 1000.0) as u32;
                levels.push(Level { step: Step::RateDown { criticality: k, fps_milli }, cams: cams.clone().into(), stale: false });
            }
        }
    }
    for (c, spec) in cams.iter_mut().zip(&cfg.cameras) {
        c.fps = spec.min_fps;
    }
    levels.push(Level { step: Step::SkipFrames, cams: cams.clone().into(), stale: false });
    levels.push(Level { step: Step::Stale, cams: cams.clone().into(), stale: true });
    levels.push(Level { step: Step::Revert, cams: cams.into(), stale: true });
    levels.into()
}
