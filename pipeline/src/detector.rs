//! The detector stage: a backend running one compiled plan per model variant.

use kernels::backend::{Backend, BackendError};
use kernels::plan::{Candidates, Plan};
use rig::{Camera, ObjectClass};

use crate::perception::Detection;

/// Runs the network for one camera frame on one variant and decodes its detections.
pub trait Detector {
    /// Name of the backend, for logs and the status line.
    fn backend_name(&self) -> &'static str;
    /// Number of variants, largest first (`0` is the full model).
    fn variants(&self) -> u8;
    /// Model version (from the plans' metadata).
    fn model_version(&self) -> u64;
    /// Detects objects in one RGB8 frame of `camera` on `variant`, appending to `out`
    /// (`out` has room reserved at start-up; the call does not allocate).
    fn detect(&mut self, camera: &Camera, camera_index: u8, variant: u8, frame: &[u8], out: &mut Vec<Detection>) -> Result<(), BackendError>;
}

/// Detections below this confidence are not reported.
pub const MIN_SCORE: f32 = 0.3;

/// A [`Detector`] over any kernels [`Backend`], one prepared plan per variant.
pub struct PlanDetector<B: Backend> {
    backend: B,
    plans: Vec<Plan>,
    prepared: Vec<B::Prepared>,
    cands: Vec<Candidates>,
    version: u64,
}

impl<B: Backend> std::fmt::Debug for PlanDetector<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanDetector").field("backend", &self.backend.name()).field("variants", &self.plans.len()).finish()
    }
}

impl<B: Backend> PlanDetector<B> {
    /// Prepares every plan (largest first) for batches of one frame.
    pub fn new(mut backend: B, plans: Vec<Plan>, version: u64) -> Result<Self, BackendError> {
        let mut prepared = Vec::with_capacity(plans.len());
        for p in &plans {
            backend.check(p)?;
            prepared.push(backend.prepare(p, 1)?);
        }
        let cap = plans.iter().map(|p| p.heads.max_candidates as usize).max().unwrap_or(0);
        Ok(PlanDetector { backend, plans, prepared, cands: vec![Candidates::with_capacity(cap)], version })
    }

    /// The plans, largest first.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }
}

impl<B: Backend> Detector for PlanDetector<B> {
    fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    fn variants(&self) -> u8 {
        self.plans.len() as u8
    }

    fn model_version(&self) -> u64 {
        self.version
    }

    fn detect(&mut self, camera: &Camera, camera_index: u8, variant: u8, frame: &[u8], out: &mut Vec<Detection>) -> Result<(), BackendError> {
        let v = usize::from(variant).min(self.plans.len().saturating_sub(1));
        let (Some(plan), Some(prep)) = (self.plans.get(v), self.prepared.get_mut(v)) else {
            return Ok(());
        };
        self.cands[0].clear();
        self.backend.run(prep, &[frame], &mut self.cands)?;
        // Model-input pixels to camera pixels.
        let input = plan.tensor(plan.input);
        let sx = camera.width as f32 / input.w as f32;
        let sy = camera.height as f32 / input.h as f32;
        for c in self.cands[0].as_slice() {
            let d = plan.heads.decode(plan, c);
            let Some(&class) = ObjectClass::ALL.get(usize::from(d.class)) else { continue };
            if d.score < MIN_SCORE || out.len() == out.capacity() {
                continue;
            }
            out.push(Detection {
                camera: camera_index,
                class,
                score: d.score,
                bbox: [(d.cx - 0.5 * d.w) * sx, (d.cy - 0.5 * d.h) * sy, (d.cx + 0.5 * d.w) * sx, (d.cy + 0.5 * d.h) * sy],
                depth: d.depth,
            });
        }
        Ok(())
    }
}
