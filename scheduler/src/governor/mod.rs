//! The power and thermal governor.
//!
//! Power and temperature are hard constraints. A [`PowerSensor`] (NVML, hwmon, RAPL,
//! Jetson INA3221, or the per-variant [`EnergyModel`] where no sensor exists) is sampled,
//! the configured cap is enforced over a sliding window ([`PowerWindow`]), and a
//! first-order [`ThermalModel`] (corrected by a temperature sensor where one exists)
//! lowers the cap *before* the throttle threshold, so the chip never throttles itself.
//! The result ([`GovernorState`]) becomes the ladder's [`Pressure`].
//!
//! Sensor reads are file or driver I/O: run them on a side thread and hand the state to
//! the hot thread through [`SharedGovernorState`] (two atomics, no lock). The window and
//! the thermal model are pure and allocation-free after construction.

mod model;
mod sysfs;
#[cfg(feature = "nvml")]
mod nvml;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub use model::EnergyModel;
#[cfg(feature = "nvml")]
pub use nvml::NvmlSensor;
pub use sysfs::{Hwmon, Ina3221, Rapl};

use crate::clock::{Duration, Instant, as_secs_f64, since};
use crate::ladder::Pressure;

/// One sample from a sensor.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reading {
    /// Power drawn, watts; `None` when the sensor has no value yet (e.g. the first
    /// read of an energy counter).
    pub power_w: Option<f32>,
    /// Die or board temperature, degrees Celsius, where the sensor has one.
    pub temp_c: Option<f32>,
}

/// A sensor read failed; names the file or driver call.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// A sysfs file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A sysfs file did not hold the expected integer.
    #[error("{path}: expected an integer, found {text:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held (trimmed, at most 64 bytes).
        text: String,
    },
    /// No matching device was found.
    #[error("no {what} found under {root}")]
    NotFound {
        /// What was looked for.
        what: &'static str,
        /// Where.
        root: PathBuf,
    },
    /// The NVML library reported an error (or is not installed).
    #[error("NVML: {0}")]
    Nvml(String),
}

/// A source of power (and optionally temperature) readings.
pub trait PowerSensor: Send {
    /// A short name for logs, e.g. `rapl` or `hwmon:amdgpu`.
    fn name(&self) -> &str;
    /// Takes one sample at `now`.
    fn read(&mut self, now: Instant) -> Result<Reading, SensorError>;
}

/// Finds the best power sensor on this machine, in the order NVML (with the `nvml`
/// feature) -> Jetson INA3221 -> hwmon -> RAPL, below `sysfs_root` (`/` on a vehicle;
/// a temporary tree in tests). Returns the sensor, or `None` and one line per reader
/// saying why it was not usable, in which case the caller falls back to an
/// [`EnergyModel`]. Start-up only (file I/O, allocation).
pub fn detect(sysfs_root: &std::path::Path) -> (Option<Box<dyn PowerSensor>>, Vec<String>) {
    let mut why = Vec::new();
    #[cfg(feature = "nvml")]
    match NvmlSensor::open(0) {
        Ok(s) => return (Some(Box::new(s)), why),
        Err(e) => why.push(e.to_string()),
    }
    #[cfg(not(feature = "nvml"))]
    why.push("NVML: not built (enable the `nvml` feature)".to_owned());
    match Ina3221::discover(&sysfs_root.join("sys/bus/i2c/drivers"), None) {
        Ok(s) => return (Some(Box::new(s)), why),
        Err(e) => why.push(e.to_string()),
    }
    match Hwmon::discover(&sysfs_root.join("sys/class/hwmon"), None) {
        Ok(s) => return (Some(Box::new(s)), why),
        Err(e) => why.push(e.to_string()),
    }
    match Rapl::discover(&sysfs_root.join("sys/class/powercap")) {
        Ok(s) => return (Some(Box::new(s)), why),
        Err(e) => why.push(e.to_string()),
    }
    (None, why)
}

/// Samples kept by [`PowerWindow`].
pub const WINDOW_SAMPLES: usize = 512;

/// Time-weighted average power over a sliding window of fixed length.
///
/// Each sample holds until the next one (the last holds until `now`).
#[derive(Clone, Debug)]
pub struct PowerWindow {
    span: Duration,
    t: Box<[u64]>,
    w: Box<[f32]>,
    head: usize,
    len: usize,
}

impl PowerWindow {
    /// A window `span` long.
    pub fn new(span: Duration) -> Self {
        PowerWindow {
            span,
            t: vec![0; WINDOW_SAMPLES].into_boxed_slice(),
            w: vec![0.0; WINDOW_SAMPLES].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Adds a sample taken at `now` (samples must come in time order; an earlier one is ignored).
    pub fn push(&mut self, now: Instant, watts: f32) {
        if self.len > 0 {
            let last = (self.head + WINDOW_SAMPLES - 1) % WINDOW_SAMPLES;
            if now.ticks() < self.t[last] {
                return;
            }
        }
        self.t[self.head] = now.ticks();
        self.w[self.head] = watts;
        self.head = (self.head + 1) % WINDOW_SAMPLES;
        self.len = (self.len + 1).min(WINDOW_SAMPLES);
    }

    /// The average over `[now - span, now]` (over the covered part when the samples
    /// start later); `None` with no sample.
    pub fn average(&self, now: Instant) -> Option<f32> {
        if self.len == 0 {
            return None;
        }
        let lo = now.ticks().saturating_sub(self.span.ticks());
        let hi = now.ticks();
        let first = (self.head + WINDOW_SAMPLES - self.len) % WINDOW_SAMPLES;
        let mut energy = 0.0f64;
        let mut covered = 0u64;
        for i in 0..self.len {
            let k = (first + i) % WINDOW_SAMPLES;
            let start = self.t[k];
            let end = if i + 1 < self.len { self.t[(k + 1) % WINDOW_SAMPLES] } else { hi };
            let (a, b) = (start.max(lo), end.min(hi));
            if b > a {
                energy += f64::from(self.w[k]) * (b - a) as f64;
                covered += b - a;
            }
        }
        if covered == 0 {
            // Only a sample at exactly `now`: it is the best estimate.
            let last = (self.head + WINDOW_SAMPLES - 1) % WINDOW_SAMPLES;
            return Some(self.w[last]);
        }
        Some((energy / covered as f64) as f32)
    }

    /// The window length.
    pub fn span(&self) -> Duration {
        self.span
    }
}

/// Parameters of the first-order thermal model `tau dT/dt = T_amb + R P - T`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThermalParams {
    /// Ambient (coolant) temperature, °C.
    pub ambient_c: f32,
    /// Thermal resistance junction to ambient, °C per watt.
    pub r_c_per_w: f32,
    /// Time constant, seconds.
    pub tau_s: f32,
    /// The temperature at which the chip throttles itself, °C.
    pub throttle_c: f32,
    /// De-rating aims to stay this far below the throttle temperature, °C.
    pub margin_c: f32,
    /// How far ahead the limit looks, seconds.
    pub horizon_s: f32,
}

/// First-order thermal model; the state is reset to the sensor's temperature when one
/// is given, and integrated from power otherwise.
#[derive(Clone, Debug)]
pub struct ThermalModel {
    p: ThermalParams,
    temp_c: f32,
}

impl ThermalModel {
    /// Starts at ambient temperature.
    pub fn new(p: ThermalParams) -> Self {
        ThermalModel { temp_c: p.ambient_c, p }
    }

    /// The parameters.
    pub fn params(&self) -> &ThermalParams {
        &self.p
    }

    /// Current (modelled or measured) temperature, °C.
    pub fn temp_c(&self) -> f32 {
        self.temp_c
    }

    /// Advances the model by `dt` at `power_w`; a measured temperature replaces the state.
    pub fn update(&mut self, dt: Duration, power_w: f32, measured_c: Option<f32>) {
        if let Some(m) = measured_c.filter(|m| m.is_finite()) {
            self.temp_c = m;
            return;
        }
        let ss = self.p.ambient_c + self.p.r_c_per_w * power_w;
        let a = (-(as_secs_f64(dt) as f32) / self.p.tau_s).exp();
        self.temp_c = ss + (self.temp_c - ss) * a;
    }

    /// The temperature after `horizon_s` at constant `power_w`.
    pub fn predict(&self, power_w: f32, horizon_s: f32) -> f32 {
        let ss = self.p.ambient_c + self.p.r_c_per_w * power_w;
        ss + (self.temp_c - ss) * (-horizon_s / self.p.tau_s).exp()
    }

    /// The highest constant power that keeps the temperature at or below
    /// `throttle_c - margin_c` over the horizon (never negative).
    pub fn power_limit_w(&self) -> f32 {
        let target = self.p.throttle_c - self.p.margin_c;
        let a = (-self.p.horizon_s / self.p.tau_s).exp();
        let ss_max = (target - self.temp_c * a) / (1.0 - a);
        ((ss_max - self.p.ambient_c) / self.p.r_c_per_w).max(0.0)
    }
}

/// Governor configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GovernorConfig {
    /// Configured power cap, watts.
    pub cap_w: f32,
    /// The window the cap is enforced over.
    pub window: Duration,
    /// The thermal model, where the platform has one.
    pub thermal: Option<ThermalParams>,
}

/// What the governor concluded from the latest sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GovernorState {
    /// Sliding-window average power, watts (0 before any sample).
    pub avg_w: f32,
    /// The configured cap, watts.
    pub cap_w: f32,
    /// `min(cap_w, thermal limit)`, watts: what the ladder enforces.
    pub effective_cap_w: f32,
    /// Temperature (measured or modelled), °C, where a thermal model exists.
    pub temp_c: Option<f32>,
    /// True when the thermal limit is below the configured cap (de-rating).
    pub thermal_limited: bool,
}

impl GovernorState {
    /// The ladder's input, with the executor's miss ratio.
    pub fn pressure(&self, miss_ratio: f32) -> Pressure {
        Pressure { miss_ratio, power_w: self.avg_w, cap_w: self.effective_cap_w, thermal_limited: self.thermal_limited }
    }
}

/// Window + thermal model + cap.
#[derive(Clone, Debug)]
pub struct Governor {
    cfg: GovernorConfig,
    window: PowerWindow,
    thermal: Option<ThermalModel>,
    last: Option<Instant>,
    last_power: f32,
}

impl Governor {
    /// A governor with an empty window at ambient temperature.
    pub fn new(cfg: GovernorConfig) -> Self {
        Governor {
            window: PowerWindow::new(cfg.window),
            thermal: cfg.thermal.map(ThermalModel::new),
            cfg,
            last: None,
            last_power: 0.0,
        }
    }

    /// Changes the configured cap (e.g. the HIL "cap halved" scenario).
    pub fn set_cap(&mut self, cap_w: f32) {
        self.cfg.cap_w = cap_w;
    }

    /// The thermal model, if configured.
    pub fn thermal(&self) -> Option<&ThermalModel> {
        self.thermal.as_ref()
    }

    /// Feeds one reading taken at `now`.
    pub fn update(&mut self, now: Instant, r: Reading) -> GovernorState {
        let dt = self.last.map(|l| since(l, now)).unwrap_or(Duration::from_ticks(0));
        if let Some(t) = self.thermal.as_mut() {
            // The chip heated at the previous power level during `dt`.
            t.update(dt, self.last_power, r.temp_c);
        }
        if let Some(w) = r.power_w {
            self.window.push(now, w);
            self.last_power = w;
        }
        self.last = Some(now);
        let s = self.state(now);
        crate::plot!("power.avg_w", s.avg_w);
        crate::plot!("power.cap_w", s.effective_cap_w);
        if let Some(t) = s.temp_c {
            crate::plot!("thermal.temp_c", t);
        }
        s
    }

    /// The state at `now` without a new sample.
    pub fn state(&self, now: Instant) -> GovernorState {
        let avg_w = self.window.average(now).unwrap_or(0.0);
        let limit = self.thermal.as_ref().map(ThermalModel::power_limit_w).unwrap_or(f32::INFINITY);
        let thermal_limited = limit < self.cfg.cap_w;
        GovernorState {
            avg_w,
            cap_w: self.cfg.cap_w,
            effective_cap_w: limit.min(self.cfg.cap_w),
            temp_c: self.thermal.as_ref().map(ThermalModel::temp_c),
            thermal_limited,
        }
    }
}

/// A [`GovernorState`] handed from the sensor thread to the hot thread without a lock.
///
/// Two words: (average mW, effective cap mW) and (configured cap mW, temperature in
/// milli-°C with a presence bit, thermal flag). Each word is self-consistent.
#[derive(Debug, Default)]
pub struct SharedGovernorState {
    power: AtomicU64,
    extra: AtomicU64,
}

const HAS_TEMP: u64 = 1 << 62;
const THERMAL: u64 = 1 << 63;

impl SharedGovernorState {
    /// Stores `s` (sensor thread).
    pub fn store(&self, s: &GovernorState) {
        let mw = |w: f32| if w.is_finite() { (w.max(0.0) * 1000.0).round().min(u32::MAX as f32) as u64 } else { u64::from(u32::MAX) };
        self.power.store(mw(s.avg_w) << 32 | mw(s.effective_cap_w), Ordering::Release);
        let temp = s.temp_c.map(|t| HAS_TEMP | u64::from(((t * 1000.0).round() as i32) as u32)).unwrap_or(0);
        let flags = if s.thermal_limited { THERMAL } else { 0 };
        self.extra.store(flags | temp | (mw(s.cap_w) & 0x3FFF_FFFF) << 32, Ordering::Release);
    }

    /// Loads the latest state (hot thread).
    pub fn load(&self) -> GovernorState {
        let p = self.power.load(Ordering::Acquire);
        let e = self.extra.load(Ordering::Acquire);
        GovernorState {
            avg_w: (p >> 32) as f32 / 1000.0,
            effective_cap_w: (p & 0xFFFF_FFFF) as f32 / 1000.0,
            cap_w: ((e >> 32) & 0x3FFF_FFFF) as f32 / 1000.0,
            temp_c: (e & HAS_TEMP != 0).then(|| (e as u32) as i32 as f32 / 1000.0),
            thermal_limited: e & THERMAL != 0,
        }
    }
}
