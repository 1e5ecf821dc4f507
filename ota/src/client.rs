//! The device-side update state machine.
//!
//! ```text
//!            check (TUF refresh, policy, tier, cohort)
//!   Idle ───────────────────────────────────────────► Offer
//!   Offer ──download (delta or full) into inactive slot──► Staged
//!   Staged ──verify length + sha256 vs TUF targets──► Verified
//!   Verified ──smoke test──► Tested          (fail: artifact rejected, stays Idle)
//!   Tested ──switch (one durable record write)──► TrialRun
//!   TrialRun ──N healthy frames, policy allows──► Committed
//!   TrialRun ──health gate fails / kill switch / pin──► Reverted (last-known-good)
//!   (process dies during trial) ──boot counter──► TrialRun again, or Reverted when tries run out
//! ```
//!
//! Each transition consumes its state, so steps cannot be skipped or repeated. Slow work
//! (download, verify, smoke test) runs off the hot path; the pipeline sees a new plan only
//! through [`PlanReceiver::at_frame_boundary`], one atomic load per frame.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artifact::SmokeTest;
use crate::delta::{self, DeltaError};
use crate::rollout::{self, DeviceTier, FleetPolicy, Installed, NoOffer, Offer, TargetMeta};
use crate::slots::{Booted, Slot, SlotError, SlotInfo, SlotStore};
use crate::storage::Storage;
use crate::tuf::{Remote, Store, TufError, Updater};

/// Why an update step failed.
#[derive(Debug, thiserror::Error)]
pub enum OtaError {
    /// Metadata or a target was refused by TUF verification.
    #[error("TUF: {0}")]
    Tuf(#[from] TufError),
    /// The slot store failed.
    #[error("slots: {0}")]
    Slots(#[from] SlotError),
    /// A delta patch could not be applied.
    #[error("delta: {0}")]
    Delta(#[from] DeltaError),
    /// The artifact failed its smoke test (rejected; the device stays on its model).
    #[error("smoke test failed for version {version}: {reason}")]
    SmokeTest {
        /// Version tested.
        version: u64,
        /// Why.
        reason: String,
    },
    /// The step is not allowed now.
    #[error("{0}")]
    Refused(String),
}

/// Trusted metadata kept in memory (tests, fuzzing, devices that re-provision on boot).
#[derive(Debug, Clone, Default)]
pub struct MemStore(pub BTreeMap<String, Vec<u8>>);

impl Store for MemStore {
    fn load(&mut self, role: &str) -> Option<Vec<u8>> {
        self.0.get(role).cloned()
    }
    fn save(&mut self, role: &str, data: &[u8]) -> Result<(), String> {
        self.0.insert(role.to_string(), data.to_vec());
        Ok(())
    }
    fn remove(&mut self, role: &str) -> Result<(), String> {
        self.0.remove(role);
        Ok(())
    }
}

/// Health bounds a trial must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthGates {
    /// Healthy frames needed to commit.
    pub frames: u32,
    /// A frame slower than this (µs) counts as a violation.
    pub max_latency_us: u64,
    /// Most violations (slow frames plus deadline misses) allowed, per thousand frames.
    pub max_violations_per_mille: u32,
}

impl Default for HealthGates {
    fn default() -> Self {
        HealthGates { frames: 300, max_latency_us: 33_000, max_violations_per_mille: 10 }
    }
}

/// One frame's health, fed by the pipeline during a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthReport {
    /// The frame crashed (backend fault, panic caught, invalid output).
    pub crashed: bool,
    /// End-to-end latency, µs.
    pub latency_us: u64,
    /// The frame missed its deadline.
    pub deadline_missed: bool,
}

/// A trial's verdict so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep running.
    Pending {
        /// Frames observed.
        frames: u32,
    },
    /// Every gate passed for the required frames.
    Pass,
    /// A gate failed.
    Fail(String),
}

/// Folds per-frame reports into a verdict. Fails as soon as the violations can no
/// longer fit the allowance, so a bad model is reverted early.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    gates: HealthGates,
    frames: u32,
    violations: u32,
}

impl HealthMonitor {
    /// A monitor with `gates`.
    pub fn new(gates: HealthGates) -> Self {
        HealthMonitor { gates, frames: 0, violations: 0 }
    }

    fn allowed(&self) -> u32 {
        (u64::from(self.gates.frames) * u64::from(self.gates.max_violations_per_mille) / 1000) as u32
    }

    /// Adds one frame.
    pub fn observe(&mut self, r: HealthReport) -> Verdict {
        if r.crashed {
            return Verdict::Fail(format!("frame {} crashed", self.frames));
        }
        self.frames += 1;
        if r.deadline_missed || r.latency_us > self.gates.max_latency_us {
            self.violations += 1;
        }
        if self.violations > self.allowed() {
            return Verdict::Fail(format!(
                "{} of {} frames missed the deadline or exceeded {} µs (allowed {} per {} frames)",
                self.violations, self.frames, self.gates.max_latency_us, self.allowed(), self.gates.frames
            ));
        }
        if self.frames >= self.gates.frames { Verdict::Pass } else { Verdict::Pending { frames: self.frames } }
    }
}

/// What a device is and how it updates (`device.json` for the CLI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Vehicle id (cohorts hash it).
    pub device_id: String,
    /// Model name it runs.
    pub model: String,
    /// Its tier.
    pub tier: DeviceTier,
    /// Trial boots before an uncommitted trial is reverted.
    pub trial_boots: u32,
    /// Health gates for trials.
    pub gates: HealthGates,
    /// Repository: `http://...` base (metadata under `metadata/`, targets under `targets/`) or a directory.
    pub repository: String,
}

/// Lists the trusted top-level targets after a refresh.
pub fn trusted_targets<R: Remote, S: Store>(up: &Updater<R, S>) -> Vec<crate::tuf::TargetFile> {
    up.trusted().targets("targets").map(|t| t.targets().cloned().collect()).unwrap_or_default()
}

/// Refreshes TUF metadata and chooses the update for this device.
pub fn check<R: Remote, S: Store, St: Storage>(up: &mut Updater<R, S>, slots: &SlotStore<St>, cfg: &DeviceConfig) -> Result<Result<Offer, NoOffer>, OtaError> {
    up.refresh()?;
    let targets = trusted_targets(up);
    let refs: Vec<&crate::tuf::TargetFile> = targets.iter().collect();
    let st = slots.state();
    let c = st.committed_info().ok_or_else(|| OtaError::Refused("the committed slot has no record".into()))?;
    let installed = Installed { version: c.version, sha256: &c.sha256, rejected: &st.rejected };
    Ok(rollout::choose(&refs, &cfg.model, &cfg.tier, &cfg.device_id, &installed))
}

/// The fleet policy from freshly refreshed metadata.
pub fn fleet_policy<R: Remote, S: Store>(up: &mut Updater<R, S>) -> Result<FleetPolicy, OtaError> {
    up.refresh()?;
    Ok(rollout::policy(trusted_targets(up).iter()))
}

/// The offer downloaded into the inactive slot.
#[derive(Debug)]
pub struct Staged {
    slot: Slot,
    offer: Offer,
    via_delta: bool,
}

/// Downloads `offer` into the inactive slot: the delta when one applies to the
/// committed model (result checked against the full target's TUF length and hashes),
/// else the full artifact. Refused under the kill switch.
pub fn download<R: Remote, S: Store, St: Storage>(offer: Offer, up: &mut Updater<R, S>, slots: &mut SlotStore<St>) -> Result<Staged, OtaError> {
    let pol = fleet_policy(up)?;
    if pol.halt {
        return Err(OtaError::Refused("fleet kill switch is on: not installing".into()));
    }
    if pol.pin.is_some_and(|p| p != offer.version) {
        return Err(OtaError::Refused(format!("fleet is pinned to version {:?}: not installing {}", pol.pin, offer.version)));
    }
    let slot = slots.begin_install()?;
    let mut bytes = None;
    let mut via_delta = false;
    if let Some(d) = &offer.delta {
        let (_, base) = slots.read_verified(slots.state().committed)?;
        let patch = up.download_target(d)?;
        match delta::apply(&base, &patch) {
            Ok(b) => {
                offer.full.verify(&b)?;
                bytes = Some(b);
                via_delta = true;
            }
            // A patch that does not reproduce the signed artifact is never used; fall back to the full file.
            Err(_) => bytes = None,
        }
    }
    let bytes = match bytes {
        Some(b) => b,
        None => up.download_target(&offer.full)?,
    };
    slots.write_slot(slot, &bytes)?;
    Ok(Staged { slot, offer, via_delta })
}

impl Staged {
    /// Whether the slot was filled from a delta.
    pub fn via_delta(&self) -> bool {
        self.via_delta
    }

    /// Re-reads the slot from storage and checks length and every hash against the TUF targets metadata.
    pub fn verify<St: Storage>(self, slots: &mut SlotStore<St>) -> Result<Verified, OtaError> {
        let data = slots.storage_mut().read(self.slot.file()).map_err(SlotError::from)?.ok_or_else(|| OtaError::Refused(format!("{} vanished", self.slot.file())))?;
        self.offer.full.verify(&data)?;
        Ok(Verified { staged: self, data })
    }
}

/// A slot whose contents match the signed target.
#[derive(Debug)]
pub struct Verified {
    staged: Staged,
    data: Vec<u8>,
}

impl Verified {
    /// Runs the smoke test; a failure rejects the artifact (it is not offered again).
    pub fn smoke_test<St: Storage>(self, slots: &mut SlotStore<St>, test: &dyn SmokeTest) -> Result<Tested, OtaError> {
        if let Err(reason) = test.run(&self.data) {
            let sha = hex::encode(Sha256::digest(&self.data));
            slots.reject(&sha, &format!("smoke test: {reason}"))?;
            return Err(OtaError::SmokeTest { version: self.staged.offer.version, reason });
        }
        Ok(Tested { v: self })
    }
}

/// A verified, smoke-tested artifact in the inactive slot.
#[derive(Debug)]
pub struct Tested {
    v: Verified,
}

impl Tested {
    /// The atomic switch: one durable record write makes the slot the trial. The
    /// verified bytes are handed back for the caller to build a plan from.
    pub fn switch<St: Storage>(self, slots: &mut SlotStore<St>, tries: u32, gates: HealthGates) -> Result<(TrialRun, Vec<u8>), OtaError> {
        let o = &self.v.staged.offer;
        let info = SlotInfo {
            version: o.version,
            variant: o.variant.clone(),
            target: o.full.path().to_string(),
            release: o.release.clone(),
            sha256: hex::encode(Sha256::digest(&self.v.data)),
            length: self.v.data.len() as u64,
        };
        slots.start_trial(self.v.staged.slot, info.clone(), tries)?;
        Ok((TrialRun { info, monitor: HealthMonitor::new(gates) }, self.v.data))
    }
}

/// A running trial.
#[derive(Debug, Clone)]
pub struct TrialRun {
    info: SlotInfo,
    monitor: HealthMonitor,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutcome {
    /// The trial's model is now last-known-good.
    Committed(u64),
    /// The device went back to last-known-good.
    Reverted(String),
}

impl TrialRun {
    /// Resumes the trial after a trial boot (the boot counter was already spent).
    pub fn resume(booted: &Booted, gates: HealthGates) -> Option<TrialRun> {
        booted.trial.then(|| TrialRun { info: booted.info.clone(), monitor: HealthMonitor::new(gates) })
    }

    /// The model on trial.
    pub fn info(&self) -> &SlotInfo {
        &self.info
    }

    /// Feeds one frame's health.
    pub fn observe(&mut self, r: HealthReport) -> Verdict {
        self.monitor.observe(r)
    }

    /// Ends the trial: commits on [`Verdict::Pass`] when the fleet policy allows
    /// (kill switch off, no pin to another version), reverts otherwise.
    pub fn finish<St: Storage>(self, slots: &mut SlotStore<St>, verdict: &Verdict, policy: &FleetPolicy) -> Result<TrialOutcome, OtaError> {
        let why = match verdict {
            Verdict::Pass => match rollout::may_commit(policy, self.info.version) {
                Ok(()) => {
                    let i = slots.commit()?;
                    return Ok(TrialOutcome::Committed(i.version));
                }
                Err(w) => w,
            },
            Verdict::Fail(w) => format!("health gate: {w}"),
            Verdict::Pending { frames } => format!("trial stopped after {frames} frames"),
        };
        slots.revert(&why)?;
        Ok(TrialOutcome::Reverted(why))
    }
}

/// Custom metadata of a target, for tools.
pub fn target_meta(t: &crate::tuf::TargetFile) -> Option<TargetMeta> {
    TargetMeta::of(t)
}

// ----------------------------------------------------------------------------------
// plan swap at a frame boundary

/// The OTA side of the plan exchange: publishes new plans and frees old ones.
pub struct PlanPublisher<T> {
    tx: rtrb::Producer<T>,
    garbage: rtrb::Consumer<T>,
    generation: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
}

/// The pipeline side: polled once per frame, at the frame boundary. Polling is one
/// atomic load when nothing changed; a swap pops the newest plan and hands the old one
/// back to the publisher to drop, so the pipeline never allocates, frees or blocks.
pub struct PlanReceiver<T> {
    rx: rtrb::Consumer<T>,
    garbage: rtrb::Producer<T>,
    generation: Arc<AtomicU64>,
    applied: Arc<AtomicU64>,
    seen: u64,
}

/// A plan exchange holding at most `capacity` plans in flight.
pub fn plan_channel<T>(capacity: usize) -> (PlanPublisher<T>, PlanReceiver<T>) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity.max(1));
    let (gtx, grx) = rtrb::RingBuffer::new(capacity.max(1) + 1);
    let generation = Arc::new(AtomicU64::new(0));
    let applied = Arc::new(AtomicU64::new(0));
    (
        PlanPublisher { tx, garbage: grx, generation: generation.clone(), applied: applied.clone() },
        PlanReceiver { rx, garbage: gtx, generation, applied, seen: 0 },
    )
}

impl<T> PlanPublisher<T> {
    /// Publishes `plan`; returns its generation, or the plan back when the ring is full.
    pub fn publish(&mut self, plan: T) -> Result<u64, T> {
        while self.garbage.pop().is_ok() {}
        self.tx.push(plan).map_err(|rtrb::PushError::Full(p)| p)?;
        Ok(self.generation.fetch_add(1, Ordering::Release) + 1)
    }
    /// The newest generation published.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    /// The generation the pipeline runs now.
    pub fn applied_generation(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
    /// Drops plans the pipeline has given back.
    pub fn collect_garbage(&mut self) {
        while self.garbage.pop().is_ok() {}
    }
}

impl<T> PlanReceiver<T> {
    /// At a frame boundary: swaps `current` for the newest published plan, if any.
    /// Returns whether a swap happened.
    pub fn at_frame_boundary(&mut self, current: &mut T) -> bool {
        let g = self.generation.load(Ordering::Acquire);
        if g == self.seen {
            return false;
        }
        let mut swapped = false;
        while let Ok(mut p) = self.rx.pop() {
            std::mem::swap(current, &mut p);
            // Capacity covers every plan in flight plus the one replaced, by construction;
            // if it were ever full the old plan would be dropped here (never observed).
            let _ = self.garbage.push(p);
            swapped = true;
        }
        self.seen = g;
        self.applied.store(g, Ordering::Release);
        swapped
    }
    /// The generation running now.
    pub fn generation(&self) -> u64 {
        self.seen
    }
}
