//! The backend contract: prepare a [`Plan`] once, then run batches of camera frames on it.
//!
//! ```text
//! backend.check(&plan)?;                         // can this backend run this plan here?
//! let mut prepared = backend.prepare(&plan, 8)?; // allocate, upload, spawn threads: slow path
//! loop {
//!     backend.run(&mut prepared, &frames, &mut outs)?;  // hot path: no allocation, no I/O
//! }
//! ```
//!
//! Every backend produces, for the same plan and frames, exactly the [`Candidates`] of
//! `cpu-ref` (and exactly its intermediate tensors where it exposes them).

use crate::plan::{Candidates, Plan, PlanError};

/// Why a backend cannot prepare or run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The plan is malformed.
    #[error("invalid plan: {0}")]
    Plan(#[from] PlanError),
    /// The backend cannot run this plan (missing device, unsupported op or size).
    #[error("{backend} cannot run this plan: {reason}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// The call's arguments do not fit the prepared plan.
    #[error("{backend}: {reason}")]
    BadInput {
        /// Backend name.
        backend: &'static str,
        /// What is wrong (names the frame or output index).
        reason: String,
    },
    /// A device fault at run time; the caller may fail over to another backend.
    #[error("{backend}: device fault: {reason}")]
    Device {
        /// Backend name.
        backend: &'static str,
        /// What the device reported.
        reason: String,
    },
}

/// An inference backend.
pub trait Backend {
    /// Per-plan state built by [`Backend::prepare`]: buffers, uploaded weights, thread pools.
    type Prepared;

    /// Short stable name (`cpu-ref`, `cpu`, `cuda`, `wgsl`).
    fn name(&self) -> &'static str;

    /// Whether this backend can run `plan` here (validates the plan too). Cheap; no allocation
    /// of device memory.
    fn check(&self, plan: &Plan) -> Result<(), BackendError>;

    /// Everything slow, once: validates, allocates arenas for `max_batch` frames, uploads
    /// constants, starts threads.
    fn prepare(&mut self, plan: &Plan, max_batch: usize) -> Result<Self::Prepared, BackendError>;

    /// Runs preprocessing, the network and peak extraction on a batch of camera frames
    /// (`frames.len() <= max_batch`, each `Preprocess::frame_bytes()` long), writing the
    /// candidates of frame `i` into `out[i]` (cleared first; `out.len() >= frames.len()`,
    /// each with capacity at least `heads.max_candidates`). Does not allocate.
    fn run(&mut self, prepared: &mut Self::Prepared, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError>;
}

/// Checks the arguments of [`Backend::run`] against a plan; shared by the backends.
pub fn check_run_args(backend: &'static str, plan: &Plan, max_batch: usize, frames: &[&[u8]], out: &[Candidates]) -> Result<(), BackendError> {
    let bad = |reason: String| BackendError::BadInput { backend, reason };
    if frames.len() > max_batch {
        return Err(bad(format!("batch of {} frames exceeds the prepared maximum {max_batch}", frames.len())));
    }
    if out.len() < frames.len() {
        return Err(bad(format!("{} frames but only {} output lists", frames.len(), out.len())));
    }
    let want = plan.preprocess.frame_bytes();
    for (i, f) in frames.iter().enumerate() {
        if f.len() != want {
            return Err(bad(format!("frame {i} has {} bytes, expected {want} ({}x{} RGB8)", f.len(), plan.preprocess.src_w, plan.preprocess.src_h)));
        }
    }
    for (i, o) in out.iter().enumerate().take(frames.len()) {
        if o.capacity() < plan.heads.max_candidates as usize {
            return Err(bad(format!("output list {i} holds {} candidates, the plan emits up to {}", o.capacity(), plan.heads.max_candidates)));
        }
    }
    Ok(())
}
