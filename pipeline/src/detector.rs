//! The detector stage: a backend running one compiled plan per model variant, and the
//! fail-over chain of such detectors that `vigil run` drives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use kernels::backend::{Backend, BackendError};
use kernels::plan::{Candidates, Plan};
use kernels::select::BackendChoice;
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

/// Counters of a [`FailoverDetector`], read by a status thread (relaxed atomics, no lock).
#[derive(Debug, Default)]
pub struct FailoverStats {
    /// Device faults that moved the chain to its next member.
    pub failovers: AtomicU64,
    /// Index of the member frames run on now (0 = the best).
    pub active: AtomicUsize,
    /// Frames whose result came from a re-run on the next member after a fault.
    pub reruns: AtomicU64,
}

/// A [`Detector`] over a fail-over chain of detectors, best first (e.g. CUDA, then the CPU),
/// each holding one prepared plan per variant.
///
/// A [`BackendError::Device`] from the active member abandons it for good: every variant moves
/// to the next member at once, and the same frame is re-run there (its result still counts if
/// it is on time; the executor's watchdog drops it otherwise). Nothing is prepared or allocated
/// when failing over (every member was prepared at start-up); the fault message is handed to a
/// bounded ring for a logging thread ([`FailoverDetector::take_faults`]). Other errors (bad
/// input) are returned as they are: another backend would refuse them too. When the last
/// member faults, its error is returned and the chain stays on it, so a frame costs at most one
/// run per member.
pub struct FailoverDetector {
    members: Vec<Box<dyn Detector>>,
    active: usize,
    stats: Arc<FailoverStats>,
    faults: rtrb::Producer<String>,
    faults_rx: Option<rtrb::Consumer<String>>,
}

impl std::fmt::Debug for FailoverDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverDetector").field("chain", &self.chain()).field("active", &self.active).finish()
    }
}

impl FailoverDetector {
    /// A chain over prepared detectors, best first. Every member must offer the same number of
    /// variants (the same plans); the chain needs at least one member.
    pub fn new(members: Vec<Box<dyn Detector>>) -> Result<Self, BackendError> {
        let Some(first) = members.first() else {
            return Err(BackendError::Unsupported { backend: "failover", reason: "no backend in the chain".into() });
        };
        let v = first.variants();
        if let Some(m) = members.iter().find(|m| m.variants() != v) {
            return Err(BackendError::Unsupported {
                backend: "failover",
                reason: format!("{} offers {} variants but {} offers {v}", m.backend_name(), m.variants(), first.backend_name()),
            });
        }
        let (faults, rx) = rtrb::RingBuffer::new(members.len());
        Ok(FailoverDetector { members, active: 0, stats: Arc::new(FailoverStats::default()), faults, faults_rx: Some(rx) })
    }

    /// Names of the members, best first.
    pub fn chain(&self) -> Vec<&'static str> {
        self.members.iter().map(|m| m.backend_name()).collect()
    }

    /// Counters for a status thread.
    pub fn stats(&self) -> Arc<FailoverStats> {
        Arc::clone(&self.stats)
    }

    /// The consumer of fault messages (`backend: device fault: ...`), once: drain it from a
    /// logging thread. Holds one message per member, so none is ever lost.
    pub fn take_faults(&mut self) -> Option<rtrb::Consumer<String>> {
        self.faults_rx.take()
    }
}

impl Detector for FailoverDetector {
    fn backend_name(&self) -> &'static str {
        self.members[self.active].backend_name()
    }

    fn variants(&self) -> u8 {
        self.members[self.active].variants()
    }

    fn model_version(&self) -> u64 {
        self.members[self.active].model_version()
    }

    fn detect(&mut self, camera: &Camera, camera_index: u8, variant: u8, frame: &[u8], out: &mut Vec<Detection>) -> Result<(), BackendError> {
        let keep = out.len();
        let mut rerun = false;
        // Bounded: every iteration returns or moves `active` forward.
        for _ in 0..self.members.len() {
            match self.members[self.active].detect(camera, camera_index, variant, frame, out) {
                Err(e @ BackendError::Device { .. }) if self.active + 1 < self.members.len() => {
                    // A dying device may have written half a result.
                    out.truncate(keep);
                    // The ring has a place per member and each member faults at most once.
                    let _ = self.faults.push(e.to_string());
                    self.active += 1;
                    rerun = true;
                    self.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    self.stats.active.store(self.active, Ordering::Relaxed);
                }
                Err(e) => {
                    if matches!(e, BackendError::Device { .. }) {
                        let _ = self.faults.push(e.to_string());
                    }
                    out.truncate(keep);
                    return Err(e);
                }
                Ok(()) => {
                    if rerun {
                        self.stats.reruns.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(());
                }
            }
        }
        Err(BackendError::Device { backend: "failover", reason: "every backend in the chain faulted".into() })
    }
}

/// Builds the live detector chain for a `--backend` choice, every plan prepared on every member
/// (largest variant first), and says why it starts where it does.
///
/// * `Auto`: CUDA when the driver, NVRTC and a device are usable (feature `cuda`); else WGSL on a
///   real GPU adapter, never a software one such as llvmpipe (feature `wgpu`); then the fast CPU
///   backend. Each skipped candidate adds its reason.
/// * `Cuda` / `Wgsl`: that backend (an error when it cannot start; `Wgsl` accepts software
///   adapters), then the CPU.
/// * `Cpu`: the fast CPU backend alone.
pub fn select_detector(
    choice: BackendChoice,
    plans: &[Plan],
    version: u64,
    cpu_threads: usize,
) -> Result<(FailoverDetector, String), BackendError> {
    let mut members: Vec<Box<dyn Detector>> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    if matches!(choice, BackendChoice::Auto | BackendChoice::Cuda) {
        match cuda_member(plans, version) {
            Ok((m, note)) => {
                members.push(m);
                notes.push(note);
            }
            Err(e) if choice == BackendChoice::Cuda => return Err(e),
            Err(e) => notes.push(format!("cuda skipped: {e}")),
        }
    }
    if matches!(choice, BackendChoice::Auto | BackendChoice::Wgsl) && members.is_empty() {
        match wgsl_member(plans, version, choice == BackendChoice::Auto) {
            Ok((m, note)) => {
                members.push(m);
                notes.push(note);
            }
            Err(e) if choice == BackendChoice::Wgsl => return Err(e),
            Err(e) => notes.push(format!("wgsl skipped: {e}")),
        }
    }
    let cpu = kernels::cpu::Cpu::new(cpu_threads);
    let simd = if cpu.uses_avx2() { "AVX2" } else { "portable" };
    let cpu = PlanDetector::new(cpu, plans.to_vec(), version)?;
    if members.is_empty() {
        notes.push(format!("cpu selected ({simd}, {cpu_threads} threads)"));
    } else {
        notes.push(format!("cpu ({simd}, {cpu_threads} threads) as fail-over"));
    }
    members.push(Box::new(cpu));
    Ok((FailoverDetector::new(members)?, notes.join("; ")))
}

#[cfg(feature = "cuda")]
fn cuda_member(plans: &[Plan], version: u64) -> Result<(Box<dyn Detector>, String), BackendError> {
    let backend =
        kernels::cuda::CudaBackend::new(0).map_err(|e| BackendError::Unsupported { backend: "cuda", reason: e.to_string() })?;
    let note = format!("cuda selected: {}", backend.describe());
    Ok((Box::new(PlanDetector::new(backend, plans.to_vec(), version)?), note))
}

#[cfg(not(feature = "cuda"))]
fn cuda_member(_plans: &[Plan], _version: u64) -> Result<(Box<dyn Detector>, String), BackendError> {
    Err(BackendError::Unsupported { backend: "cuda", reason: "this build has no `cuda` feature (build with --features cuda)".into() })
}

#[cfg(feature = "wgpu")]
fn wgsl_member(plans: &[Plan], version: u64, require_hardware: bool) -> Result<(Box<dyn Detector>, String), BackendError> {
    let opts = kernels::wgsl::WgslOptions { require_hardware, ..Default::default() };
    let backend =
        kernels::wgsl::WgslBackend::new(&opts).map_err(|e| BackendError::Unsupported { backend: "wgsl", reason: e.to_string() })?;
    let note = format!("wgsl selected: {}", backend.context().report());
    Ok((Box::new(PlanDetector::new(backend, plans.to_vec(), version)?), note))
}

#[cfg(not(feature = "wgpu"))]
fn wgsl_member(_plans: &[Plan], _version: u64, _hw: bool) -> Result<(Box<dyn Detector>, String), BackendError> {
    Err(BackendError::Unsupported { backend: "wgsl", reason: "this build has no `wgpu` feature (build with --features wgpu)".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member that writes one detection tagged with its id per frame, and faults (after
    /// writing half a result) from call `fault_at` on; `bad_input_at` returns a bad-input error.
    struct Fake {
        name: &'static str,
        id: f32,
        calls: u32,
        fault_at: Option<u32>,
        bad_input_at: Option<u32>,
    }

    impl Fake {
        fn new(name: &'static str, id: f32) -> Self {
            Fake { name, id, calls: 0, fault_at: None, bad_input_at: None }
        }
    }

    impl Detector for Fake {
        fn backend_name(&self) -> &'static str {
            self.name
        }
        fn variants(&self) -> u8 {
            2
        }
        fn model_version(&self) -> u64 {
            7
        }
        fn detect(&mut self, _: &Camera, camera_index: u8, _: u8, _: &[u8], out: &mut Vec<Detection>) -> Result<(), BackendError> {
            self.calls += 1;
            let d = Detection { camera: camera_index, class: ObjectClass::Car, score: self.id, bbox: [0.0, 0.0, 1.0, 1.0], depth: 5.0 };
            out.push(d);
            if self.fault_at.is_some_and(|n| self.calls >= n) {
                return Err(BackendError::Device { backend: self.name, reason: "launch failed".into() });
            }
            if self.bad_input_at == Some(self.calls) {
                out.pop();
                return Err(BackendError::BadInput { backend: self.name, reason: "frame 3 bytes short".into() });
            }
            Ok(())
        }
    }

    fn camera() -> Camera {
        rig::Rig::builtin().cameras()[0].clone()
    }

    #[test]
    fn a_device_fault_moves_every_later_frame_to_the_next_member_and_reruns_the_frame() {
        let mut gpu = Fake::new("gpu", 1.0);
        gpu.fault_at = Some(3);
        let mut chain = FailoverDetector::new(vec![Box::new(gpu), Box::new(Fake::new("cpu", 2.0))]).unwrap();
        let mut faults = chain.take_faults().unwrap();
        assert!(chain.take_faults().is_none(), "the fault consumer is handed out once");
        let stats = chain.stats();
        let cam = camera();
        let mut out = Vec::new();
        for frame in 1..=5u32 {
            out.clear();
            chain.detect(&cam, 0, 0, &[], &mut out).unwrap();
            assert_eq!(out.len(), 1, "frame {frame}: the faulting member's half result was not discarded: {out:?}");
            let want = if frame < 3 { 1.0 } else { 2.0 };
            assert_eq!(out[0].score, want, "frame {frame} ran on the wrong member");
        }
        assert_eq!(chain.backend_name(), "cpu");
        assert_eq!(stats.failovers.load(Ordering::Relaxed), 1);
        assert_eq!(stats.active.load(Ordering::Relaxed), 1);
        assert_eq!(stats.reruns.load(Ordering::Relaxed), 1, "only the faulting frame is a re-run");
        let msg = faults.pop().unwrap();
        assert!(msg.contains("gpu") && msg.contains("launch failed"), "{msg}");
        assert!(faults.pop().is_err());
    }

    #[test]
    fn bad_input_is_not_a_failover_and_the_last_member_fault_is_returned() {
        let mut gpu = Fake::new("gpu", 1.0);
        gpu.bad_input_at = Some(1);
        let mut cpu = Fake::new("cpu", 2.0);
        cpu.fault_at = Some(2);
        let mut chain = FailoverDetector::new(vec![Box::new(gpu), Box::new(cpu)]).unwrap();
        let cam = camera();
        let mut out = vec![];
        let e = chain.detect(&cam, 0, 0, &[], &mut out).unwrap_err();
        assert!(matches!(e, BackendError::BadInput { .. }), "{e}");
        assert_eq!(chain.backend_name(), "gpu", "bad input must not abandon a healthy device");
        // Second frame: gpu is fine, so to reach cpu's fault make gpu fault now.
        let mut gpu = Fake::new("gpu", 1.0);
        gpu.fault_at = Some(1);
        let mut cpu = Fake::new("cpu", 2.0);
        cpu.fault_at = Some(1);
        let mut chain = FailoverDetector::new(vec![Box::new(gpu), Box::new(cpu)]).unwrap();
        let mut faults = chain.take_faults().unwrap();
        out.clear();
        let e = chain.detect(&cam, 0, 0, &[], &mut out).unwrap_err();
        assert!(matches!(e, BackendError::Device { backend: "cpu", .. }), "{e}");
        assert!(out.is_empty(), "a failed frame leaves no partial result: {out:?}");
        assert_eq!(chain.backend_name(), "cpu", "the chain stays on its last member");
        assert!(faults.pop().unwrap().contains("gpu"));
        assert!(faults.pop().unwrap().contains("cpu"));
    }

    #[test]
    fn members_must_agree_on_the_variants() {
        struct One;
        impl Detector for One {
            fn backend_name(&self) -> &'static str {
                "one"
            }
            fn variants(&self) -> u8 {
                1
            }
            fn model_version(&self) -> u64 {
                7
            }
            fn detect(&mut self, _: &Camera, _: u8, _: u8, _: &[u8], _: &mut Vec<Detection>) -> Result<(), BackendError> {
                Ok(())
            }
        }
        let e = FailoverDetector::new(vec![Box::new(Fake::new("gpu", 1.0)), Box::new(One)]).unwrap_err();
        assert!(e.to_string().contains("one offers 1 variants but gpu offers 2"), "{e}");
        assert!(FailoverDetector::new(Vec::new()).is_err());
    }
}
