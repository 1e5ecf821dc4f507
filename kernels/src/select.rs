//! Backend selection at start-up and fail-over at run time.
//!
//! [`select_backend`] builds the fail-over chain for a `--backend` choice and says why it
//! picked what it picked; [`Failover`] runs frames on the first healthy member of the chain
//! and, when a device faults (lost device, launch failure, timeout: [`BackendError::Device`]),
//! moves to the next member and re-runs the same frame, so the caller always gets a result or
//! a plain error, never a panic. Every member is prepared up front: failing over allocates
//! nothing but the fault message.

use std::fmt;
use std::str::FromStr;

use crate::backend::{Backend, BackendError};
use crate::plan::{Candidates, Plan};

/// The `--backend` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// CUDA if a device is usable, else WGSL on a real (non-CPU) adapter, else the CPU.
    #[default]
    Auto,
    /// CUDA (feature `cuda`), with the CPU as fail-over.
    Cuda,
    /// WGSL on any adapter, software ones included (feature `wgpu`), with the CPU as fail-over.
    Wgsl,
    /// The CPU only.
    Cpu,
}

impl FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "cuda" => Ok(BackendChoice::Cuda),
            "wgsl" | "wgpu" => Ok(BackendChoice::Wgsl),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(format!("unknown backend {other:?}: expected auto, cuda, wgsl or cpu")),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cuda => "cuda",
            BackendChoice::Wgsl => "wgsl",
            BackendChoice::Cpu => "cpu",
        })
    }
}

/// A backend with its plan prepared, behind an object-safe interface: what the chain holds.
pub trait FrameRunner: Send {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// [`Backend::run`] on the prepared plan.
    fn run(&mut self, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError>;
}

/// A [`Backend`] together with its [`Backend::Prepared`] state.
pub struct PreparedBackend<B: Backend> {
    backend: B,
    state: B::Prepared,
}

impl<B: Backend> PreparedBackend<B> {
    /// Checks and prepares `plan` for batches of up to `max_batch` frames.
    pub fn new(mut backend: B, plan: &Plan, max_batch: usize) -> Result<Self, BackendError> {
        backend.check(plan)?;
        let state = backend.prepare(plan, max_batch)?;
        Ok(PreparedBackend { backend, state })
    }
}

impl<B> FrameRunner for PreparedBackend<B>
where
    B: Backend + Send,
    B::Prepared: Send,
{
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn run(&mut self, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError> {
        self.backend.run(&mut self.state, frames, out)
    }
}

/// What one [`Failover::run`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The backend that produced the result.
    pub backend: &'static str,
    /// How many backends faulted during this call and were left behind.
    pub failed_over: usize,
}

/// A fail-over chain of prepared backends, best first.
pub struct Failover {
    chain: Vec<Box<dyn FrameRunner>>,
    active: usize,
    reason: String,
    faults: Vec<String>,
}

impl Failover {
    /// A chain over already prepared backends (at least one), best first; `reason` says why
    /// the first one was chosen.
    pub fn new(chain: Vec<Box<dyn FrameRunner>>, reason: impl Into<String>) -> Result<Failover, BackendError> {
        if chain.is_empty() {
            return Err(BackendError::Unsupported { backend: "failover", reason: "no backend in the chain".into() });
        }
        Ok(Failover { chain, active: 0, reason: reason.into(), faults: Vec::new() })
    }

    /// Why the chain starts where it does (for the start-up log).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The backend frames run on now.
    pub fn active(&self) -> &'static str {
        self.chain[self.active].name()
    }

    /// Names of the chain's members, best first.
    pub fn chain(&self) -> Vec<&'static str> {
        self.chain.iter().map(|b| b.name()).collect()
    }

    /// Device faults seen so far, oldest first (`backend: message`).
    pub fn faults(&self) -> &[String] {
        &self.faults
    }

    /// Runs a batch. On [`BackendError::Device`] the active backend is abandoned for the next
    /// one and the same frames are run again there; other errors (bad input, unsupported
    /// plan) are returned as they are, since another backend would refuse them too. When the
    /// last backend faults, its error is returned and the chain stays on it.
    pub fn run(&mut self, frames: &[&[u8]], out: &mut [Candidates]) -> Result<RunOutcome, BackendError> {
        let mut failed_over = 0;
        // Bounded: each iteration either returns or advances `active`.
        for _ in 0..self.chain.len() {
            match self.chain[self.active].run(frames, out) {
                Ok(()) => return Ok(RunOutcome { backend: self.active(), failed_over }),
                Err(e @ BackendError::Device { .. }) => {
                    self.faults.push(format!("{}: {e}", self.active()));
                    if self.active + 1 == self.chain.len() {
                        return Err(e);
                    }
                    self.active += 1;
                    failed_over += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Err(BackendError::Device { backend: "failover", reason: "every backend in the chain faulted".into() })
    }
}

/// Builds the chain for `choice` and prepares `plan` on every member, CPU last.
///
/// * `Auto`: CUDA when the driver, NVRTC and a device are usable; then WGSL on a real (non-CPU)
///   adapter; then the CPU. Each skipped candidate adds its reason to [`Failover::reason`].
/// * `Cuda` / `Wgsl`: that backend (an error when it cannot start), then the CPU.
/// * `Cpu`: the CPU alone.
pub fn select_backend(choice: BackendChoice, plan: &Plan, max_batch: usize) -> Result<Failover, BackendError> {
    let mut chain: Vec<Box<dyn FrameRunner>> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let want_cuda = matches!(choice, BackendChoice::Auto | BackendChoice::Cuda);
    let want_wgsl = matches!(choice, BackendChoice::Auto | BackendChoice::Wgsl);

    if want_cuda {
        match try_cuda(plan, max_batch) {
            Ok((runner, note)) => {
                chain.push(runner);
                notes.push(note);
            }
            Err(e) if choice == BackendChoice::Cuda => return Err(e),
            Err(e) => notes.push(format!("cuda skipped: {e}")),
        }
    }
    if want_wgsl && chain.is_empty() {
        match try_wgsl(plan, max_batch, choice == BackendChoice::Auto) {
            Ok((runner, note)) => {
                chain.push(runner);
                notes.push(note);
            }
            Err(e) if choice == BackendChoice::Wgsl => return Err(e),
            Err(e) => notes.push(format!("wgsl skipped: {e}")),
        }
    }
    let cpu = PreparedBackend::new(crate::cpu_ref::CpuRef, plan, max_batch)?;
    if chain.is_empty() {
        notes.push("cpu selected".into());
    }
    chain.push(Box::new(cpu));
    Failover::new(chain, notes.join("; "))
}

#[cfg(feature = "cuda")]
fn try_cuda(plan: &Plan, max_batch: usize) -> Result<(Box<dyn FrameRunner>, String), BackendError> {
    let backend = crate::cuda::CudaBackend::new(0)
        .map_err(|e| BackendError::Unsupported { backend: "cuda", reason: e.to_string() })?;
    let note = format!("cuda selected: {}", backend.describe());
    Ok((Box::new(PreparedBackend::new(backend, plan, max_batch)?), note))
}

#[cfg(not(feature = "cuda"))]
fn try_cuda(_plan: &Plan, _max_batch: usize) -> Result<(Box<dyn FrameRunner>, String), BackendError> {
    Err(BackendError::Unsupported { backend: "cuda", reason: "this build has no `cuda` feature".into() })
}

#[cfg(feature = "wgpu")]
fn try_wgsl(plan: &Plan, max_batch: usize, require_hardware: bool) -> Result<(Box<dyn FrameRunner>, String), BackendError> {
    let opts = crate::wgsl::WgslOptions { require_hardware, ..Default::default() };
    let backend = crate::wgsl::WgslBackend::new(&opts)
        .map_err(|e| BackendError::Unsupported { backend: "wgsl", reason: e.to_string() })?;
    let note = format!("wgsl selected: {}", backend.context().report());
    Ok((Box::new(PreparedBackend::new(backend, plan, max_batch)?), note))
}

#[cfg(not(feature = "wgpu"))]
fn try_wgsl(_plan: &Plan, _max_batch: usize, _hw: bool) -> Result<(Box<dyn FrameRunner>, String), BackendError> {
    Err(BackendError::Unsupported { backend: "wgsl", reason: "this build has no `wgpu` feature".into() })
}

/// Decodes one device candidate record (the format of `shaders/peaks.wgsl` and
/// `cuda/decode.cu`): `key = (127 - score) << 24 | (class * h + y) * w + x`, then the raw
/// offset x, offset y, width, height bytes, then the depth byte.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) fn decode_record(words: [u32; 3], h: u32, w: u32) -> crate::plan::Candidate {
    let key = words[0];
    let idx = key & 0x00ff_ffff;
    let b = words[1].to_le_bytes();
    crate::plan::Candidate {
        class: (idx / (w * h)) as u16,
        y: ((idx / w) % h) as u16,
        x: (idx % w) as u16,
        score: (127 - (key >> 24) as i32) as i8,
        offset: [b[0] as i8, b[1] as i8],
        size: [b[2] as i8, b[3] as i8],
        depth: words[2] as u8 as i8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_ref::CpuRef;
    use crate::synth;

    /// A backend that works (through cpu-ref) until call `fail_from`, then reports a device fault.
    struct Flaky {
        inner: PreparedBackend<CpuRef>,
        calls: usize,
        fail_from: usize,
    }

    impl FrameRunner for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn run(&mut self, frames: &[&[u8]], out: &mut [Candidates]) -> Result<(), BackendError> {
            self.calls += 1;
            if self.calls >= self.fail_from {
                // Leave garbage behind, as a dying device might: the re-run must overwrite it.
                for o in out.iter_mut() {
                    o.clear();
                    o.push(crate::plan::Candidate { score: 99, ..Default::default() });
                }
                return Err(BackendError::Device { backend: "flaky", reason: "launch failed (injected)".into() });
            }
            self.inner.run(frames, out)
        }
    }

    fn setup(n: usize) -> (Plan, Vec<Vec<u8>>, Vec<Candidates>) {
        let plan = synth::random_plan(3);
        let frames: Vec<Vec<u8>> = (0..n as u64).map(|i| synth::random_frame(&plan, i)).collect();
        let mut want: Vec<Candidates> = (0..n).map(|_| Candidates::with_capacity(plan.heads.max_candidates as usize)).collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        PreparedBackend::new(CpuRef, &plan, n).unwrap().run(&refs, &mut want).unwrap();
        (plan, frames, want)
    }

    fn outs(plan: &Plan, n: usize) -> Vec<Candidates> {
        (0..n).map(|_| Candidates::with_capacity(plan.heads.max_candidates as usize)).collect()
    }

    #[test]
    fn a_device_fault_moves_to_the_next_backend_and_reruns_the_frame() {
        let (plan, frames, want) = setup(3);
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let flaky = Flaky { inner: PreparedBackend::new(CpuRef, &plan, 3).unwrap(), calls: 0, fail_from: 2 };
        let cpu = PreparedBackend::new(CpuRef, &plan, 3).unwrap();
        let mut f = Failover::new(vec![Box::new(flaky), Box::new(cpu)], "test").unwrap();
        let mut out = outs(&plan, 3);
        assert_eq!(f.run(&refs, &mut out).unwrap(), RunOutcome { backend: "flaky", failed_over: 0 });
        assert_eq!(out, want);
        let mut out = outs(&plan, 3);
        assert_eq!(f.run(&refs, &mut out).unwrap(), RunOutcome { backend: "cpu-ref", failed_over: 1 });
        assert_eq!(out, want, "the faulted frame is re-run on the next backend");
        assert_eq!(f.active(), "cpu-ref");
        assert_eq!(f.faults().len(), 1);
        assert!(f.faults()[0].contains("injected"), "{:?}", f.faults());
        // It stays on the healthy backend.
        assert_eq!(f.run(&refs, &mut out).unwrap(), RunOutcome { backend: "cpu-ref", failed_over: 0 });
    }

    #[test]
    fn bad_input_is_returned_without_failing_over() {
        let (plan, _, _) = setup(1);
        let flaky = Flaky { inner: PreparedBackend::new(CpuRef, &plan, 1).unwrap(), calls: 0, fail_from: usize::MAX };
        let cpu = PreparedBackend::new(CpuRef, &plan, 1).unwrap();
        let mut f = Failover::new(vec![Box::new(flaky), Box::new(cpu)], "test").unwrap();
        let short = vec![0u8; 5];
        let err = f.run(&[&short], &mut outs(&plan, 1)).unwrap_err();
        assert!(matches!(err, BackendError::BadInput { .. }), "{err}");
        assert_eq!(f.active(), "flaky");
        assert!(f.faults().is_empty());
    }

    #[test]
    fn when_every_backend_faults_the_error_comes_back_without_a_panic() {
        let (plan, frames, _) = setup(1);
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let a = Flaky { inner: PreparedBackend::new(CpuRef, &plan, 1).unwrap(), calls: 0, fail_from: 1 };
        let b = Flaky { inner: PreparedBackend::new(CpuRef, &plan, 1).unwrap(), calls: 0, fail_from: 1 };
        let mut f = Failover::new(vec![Box::new(a), Box::new(b)], "test").unwrap();
        let err = f.run(&refs, &mut outs(&plan, 1)).unwrap_err();
        assert!(matches!(err, BackendError::Device { .. }), "{err}");
        assert_eq!(f.faults().len(), 2);
        assert!(Failover::new(Vec::new(), "none").is_err());
    }

    #[test]
    fn choices_parse_and_print() {
        for c in [BackendChoice::Auto, BackendChoice::Cuda, BackendChoice::Wgsl, BackendChoice::Cpu] {
            assert_eq!(c.to_string().parse::<BackendChoice>().unwrap(), c);
        }
        assert!("tpu".parse::<BackendChoice>().unwrap_err().contains("auto, cuda, wgsl or cpu"));
    }

    #[test]
    fn cpu_choice_is_the_cpu_alone() {
        let (plan, frames, want) = setup(2);
        let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        let mut f = select_backend(BackendChoice::Cpu, &plan, 2).unwrap();
        assert_eq!(f.chain(), vec!["cpu-ref"]);
        assert!(f.reason().contains("cpu"), "{}", f.reason());
        let mut out = outs(&plan, 2);
        f.run(&refs, &mut out).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn auto_explains_every_skipped_backend_and_ends_on_the_cpu() {
        let (plan, _, _) = setup(1);
        let f = select_backend(BackendChoice::Auto, &plan, 1).unwrap();
        eprintln!("auto: {} -> {:?}", f.reason(), f.chain());
        assert_eq!(f.chain().last(), Some(&"cpu-ref"));
        // CUDA is either selected or its absence is explained; likewise WGSL.
        assert!(f.reason().contains("cuda"), "{}", f.reason());
        if f.chain()[0] == "cpu-ref" {
            assert!(f.reason().contains("wgsl skipped"), "{}", f.reason());
        }
    }
}
