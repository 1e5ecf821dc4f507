//! Power from a per-variant energy model, where no sensor exists.

use super::{PowerSensor, Reading, SensorError};
use crate::VariantId;
use crate::clock::{Duration, Instant};

/// Jobs remembered by [`EnergyModel`].
const JOBS: usize = 1024;

/// Estimates power as idle power plus the modelled energy of the jobs run in the last
/// window, divided by the window. The hot thread calls [`EnergyModel::on_job`] (no
/// allocation); [`PowerSensor::read`] is pure arithmetic.
#[derive(Clone, Debug)]
pub struct EnergyModel {
    idle_w: f32,
    joules: Box<[f32]>,
    window: Duration,
    t: Box<[u64]>,
    e: Box<[f32]>,
    head: usize,
    len: usize,
}

impl EnergyModel {
    /// `joules[v]` is the energy of one job on variant `v` above idle.
    pub fn new(idle_w: f32, joules: &[f32], window: Duration) -> Self {
        EnergyModel {
            idle_w,
            joules: joules.into(),
            window,
            t: vec![0; JOBS].into_boxed_slice(),
            e: vec![0.0; JOBS].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Records one job of `variant` finished at `now`.
    pub fn on_job(&mut self, now: Instant, variant: VariantId) {
        let j = self.joules.get(usize::from(variant.0)).copied().unwrap_or(0.0);
        self.t[self.head] = now.ticks();
        self.e[self.head] = j;
        self.head = (self.head + 1) % JOBS;
        self.len = (self.len + 1).min(JOBS);
    }

    /// Modelled power at `now`, watts.
    pub fn power_w(&self, now: Instant) -> f32 {
        let lo = now.ticks().saturating_sub(self.window.ticks());
        let mut j = 0.0f64;
        for i in 0..self.len {
            let k = (self.head + JOBS - 1 - i) % JOBS;
            if self.t[k] <= lo || self.t[k] > now.ticks() {
                break;
            }
            j += f64::from(self.e[k]);
        }
        self.idle_w + (j / (self.window.ticks() as f64 * 1e-9)) as f32
    }
}

impl PowerSensor for EnergyModel {
    fn name(&self) -> &str {
        "energy-model"
    }

    fn read(&mut self, now: Instant) -> Result<Reading, SensorError> {
        Ok(Reading { power_w: Some(self.power_w(now)), temp_c: None })
    }
}
