//! The A/B slot store: two model slots and one state record, written power-cut safely.
//!
//! Files (in one [`Storage`] directory): `slot-a.bin`, `slot-b.bin`, `state.json`.
//! Every file is replaced with [`write_durable`] (write `NAME.new`, fsync, rename, fsync
//! the directory), so after a cut each file is wholly old or wholly new. The state record
//! carries its own sha256, and every slot it names as bootable carries the sha256 and
//! length of its contents; boot checks both, so neither a torn record nor a torn slot
//! can be booted.
//!
//! Ordering that keeps a verified model bootable at every instant:
//! 1. `begin_install`: the record forgets the inactive slot (durable) *before* its
//!    file is touched; the committed slot is never written while it is committed.
//! 2. `write_slot`: the new model is written durably into the inactive slot.
//! 3. `start_trial`: one record write names the new slot's hash and makes it the trial
//!    (the atomic switch). The committed (last-known-good) slot stays named.
//! 4. `boot`: a trial boot first spends one try (durable) and only then boots the trial;
//!    with no tries left it reverts (durable) and boots last-known-good.
//! 5. `commit` / `revert`: one record write each.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{Storage, StorageError, write_durable};

/// Name of the state record file.
pub const STATE_FILE: &str = "state.json";
/// How many rejected artifact hashes the record remembers.
pub const MAX_REJECTED: usize = 16;

/// One of the two model slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    /// The slot's file name.
    pub fn file(self) -> &'static str {
        match self {
            Slot::A => "slot-a.bin",
            Slot::B => "slot-b.bin",
        }
    }
    fn idx(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }
}

/// What a slot holds: enough to verify it and to pick deltas against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// Model version.
    pub version: u64,
    /// Variant name (e.g. `full-int8`).
    pub variant: String,
    /// TUF target path it was installed from.
    pub target: String,
    /// Release (rollout) identifier.
    pub release: String,
    /// sha256 of the contents (hex).
    pub sha256: String,
    /// Length in bytes.
    pub length: u64,
}

impl SlotInfo {
    /// Whether `data` is exactly what this record describes.
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() as u64 == self.length && hex::encode(Sha256::digest(data)) == self.sha256
    }
}

/// A trial in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The slot on trial.
    pub slot: Slot,
    /// Boots left before the trial is reverted.
    pub tries_left: u32,
}

/// The state record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotState {
    /// Incremented on every write.
    pub seq: u64,
    /// The committed, last-known-good slot.
    pub committed: Slot,
    /// What each slot holds (`None`: empty or being written).
    pub slots: [Option<SlotInfo>; 2],
    /// The trial, if one is running.
    pub trial: Option<Trial>,
    /// sha256 of artifacts that failed a smoke test or a trial (not offered again).
    pub rejected: Vec<String>,
    /// What the last transition was (for `status`).
    pub last_event: String,
}

impl SlotState {
    /// What slot `s` holds.
    pub fn info(&self, s: Slot) -> Option<&SlotInfo> {
        self.slots[s.idx()].as_ref()
    }
    /// The slot the next boot starts (before the boot counter is applied).
    pub fn boot_slot(&self) -> Slot {
        match &self.trial {
            Some(t) if t.tries_left > 0 => t.slot,
            _ => self.committed,
        }
    }
    /// The committed version.
    pub fn committed_info(&self) -> Option<&SlotInfo> {
        self.info(self.committed)
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    state: SlotState,
    sha256: String,
}

/// Slot store errors.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The medium failed (or lost power).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The state record is missing or does not verify.
    #[error("state.json: {0}")]
    BadState(String),
    /// The operation is not allowed now.
    #[error("{0}")]
    Refused(String),
    /// No slot holds a model that verifies.
    #[error("no bootable model: {0}")]
    Unbootable(String),
}

/// A booted model.
#[derive(Debug, Clone)]
pub struct Booted {
    /// The slot booted.
    pub slot: Slot,
    /// Its record.
    pub info: SlotInfo,
    /// Its verified contents.
    pub bytes: Vec<u8>,
    /// Whether this is a trial boot.
    pub trial: bool,
    /// Whether this boot reverted a trial (tries ran out, or the trial slot failed verification).
    pub reverted: bool,
}

/// The slot store over a [`Storage`].
#[derive(Debug)]
pub struct SlotStore<S: Storage> {
    storage: S,
    state: SlotState,
}

fn encode(state: &SlotState) -> Vec<u8> {
    let body = serde_json::to_vec(state).unwrap_or_default();
    let f = StateFile { state: state.clone(), sha256: hex::encode(Sha256::digest(&body)) };
    serde_json::to_vec_pretty(&f).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Result<SlotState, SlotError> {
    let f: StateFile = serde_json::from_slice(bytes).map_err(|e| SlotError::BadState(format!("unreadable: {e}")))?;
    let body = serde_json::to_vec(&f.state).map_err(|e| SlotError::BadState(e.to_string()))?;
    if hex::encode(Sha256::digest(&body)) != f.sha256 {
        return Err(SlotError::BadState("checksum does not match the record".into()));
    }
    Ok(f.state)
}

impl<S: Storage> SlotStore<S> {
    /// Provisions an empty medium: `model` goes into slot A, committed.
    pub fn provision(mut storage: S, model: &[u8], info: SlotInfo) -> Result<Self, SlotError> {
        if !info.matches(model) {
            return Err(SlotError::Refused("initial model does not match its length and sha256".into()));
        }
        if storage.read(STATE_FILE)?.is_some() {
            return Err(SlotError::Refused(format!("{STATE_FILE} already exists: the device is provisioned")));
        }
        write_durable(&mut storage, Slot::A.file(), model)?;
        let state = SlotState { seq: 1, committed: Slot::A, slots: [Some(info), None], trial: None, rejected: Vec::new(), last_event: "provisioned".into() };
        write_durable(&mut storage, STATE_FILE, &encode(&state))?;
        Ok(SlotStore { storage, state })
    }

    /// Opens a provisioned medium.
    pub fn open(mut storage: S) -> Result<Self, SlotError> {
        let bytes = storage.read(STATE_FILE)?.ok_or_else(|| SlotError::BadState("missing (device not provisioned?)".into()))?;
        let state = decode(&bytes)?;
        Ok(SlotStore { storage, state })
    }

    /// The current record.
    pub fn state(&self) -> &SlotState {
        &self.state
    }

    /// The medium.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the medium back.
    pub fn into_storage(self) -> S {
        self.storage
    }

    fn save(&mut self, mut next: SlotState, event: &str) -> Result<(), SlotError> {
        next.seq = self.state.seq + 1;
        next.last_event = event.to_string();
        write_durable(&mut self.storage, STATE_FILE, &encode(&next))?;
        self.state = next;
        Ok(())
    }

    /// Reads slot `s` and returns it only when it matches its record.
    pub fn read_verified(&mut self, s: Slot) -> Result<(SlotInfo, Vec<u8>), SlotError> {
        let info = self.state.info(s).cloned().ok_or_else(|| SlotError::Unbootable(format!("slot {s:?} is empty")))?;
        let data = self.storage.read(s.file())?.ok_or_else(|| SlotError::Unbootable(format!("{} missing", s.file())))?;
        if !info.matches(&data) {
            return Err(SlotError::Unbootable(format!("{} does not match its recorded length and sha256 (version {})", s.file(), info.version)));
        }
        Ok((info, data))
    }

    /// Boots: applies the trial boot counter (durably, before the trial slot is used),
    /// reverts when tries ran out or the trial slot does not verify, and returns the
    /// verified model to run. Falls back to the other slot if the committed one rotted.
    pub fn boot(&mut self) -> Result<Booted, SlotError> {
        let mut reverted = false;
        if let Some(t) = self.state.trial.clone() {
            if t.tries_left == 0 {
                self.revert_inner("reverted: trial boots exhausted")?;
                reverted = true;
            } else {
                let mut next = self.state.clone();
                next.trial = Some(Trial { slot: t.slot, tries_left: t.tries_left - 1 });
                self.save(next, "trial boot")?;
                match self.read_verified(t.slot) {
                    Ok((info, bytes)) => return Ok(Booted { slot: t.slot, info, bytes, trial: true, reverted: false }),
                    Err(SlotError::Unbootable(_)) => {
                        self.revert_inner("reverted: trial slot failed verification")?;
                        reverted = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let c = self.state.committed;
        match self.read_verified(c) {
            Ok((info, bytes)) => Ok(Booted { slot: c, info, bytes, trial: false, reverted }),
            Err(SlotError::Unbootable(why)) => {
                // Last resort: the other slot, if it holds a verified model.
                let (info, bytes) = self.read_verified(c.other()).map_err(|e| SlotError::Unbootable(format!("{why}; other slot: {e}")))?;
                Ok(Booted { slot: c.other(), info, bytes, trial: false, reverted })
            }
            Err(e) => Err(e),
        }
    }

    /// Which slot would boot now and whether it verifies, without changing anything
    /// (boot counter not applied).
    pub fn inspect(&mut self) -> Result<(Slot, SlotInfo), SlotError> {
        let candidates = match &self.state.trial {
            Some(t) if t.tries_left > 0 => vec![t.slot, self.state.committed, self.state.committed.other()],
            _ => vec![self.state.committed, self.state.committed.other()],
        };
        let mut why = Vec::new();
        for s in candidates {
            match self.read_verified(s) {
                Ok((info, _)) => return Ok((s, info)),
                Err(e) => why.push(e.to_string()),
            }
        }
        Err(SlotError::Unbootable(why.join("; ")))
    }

    /// Step 1 of an install: forgets the inactive slot so it can be overwritten.
    pub fn begin_install(&mut self) -> Result<Slot, SlotError> {
        if self.state.trial.is_some() {
            return Err(SlotError::Refused("a trial is running: commit or roll back first".into()));
        }
        let target = self.state.committed.other();
        if self.state.info(target).is_some() {
            let mut next = self.state.clone();
            next.slots[target.idx()] = None;
            self.save(next, "install started")?;
        }
        Ok(target)
    }

    /// Step 2: writes the new model into the (forgotten) inactive slot.
    pub fn write_slot(&mut self, s: Slot, data: &[u8]) -> Result<(), SlotError> {
        if s == self.state.committed || self.state.info(s).is_some() {
            return Err(SlotError::Refused(format!("slot {s:?} is in use; call begin_install first")));
        }
        write_durable(&mut self.storage, s.file(), data)?;
        Ok(())
    }

    /// Step 3: the atomic switch into a trial of slot `s`, after checking what the slot holds.
    pub fn start_trial(&mut self, s: Slot, info: SlotInfo, tries: u32) -> Result<(), SlotError> {
        if s == self.state.committed || self.state.trial.is_some() {
            return Err(SlotError::Refused(format!("cannot start a trial of slot {s:?} now")));
        }
        let data = self.storage.read(s.file())?.ok_or_else(|| SlotError::Refused(format!("{} missing", s.file())))?;
        if !info.matches(&data) {
            return Err(SlotError::Refused(format!("{} does not match the verified target (not switching)", s.file())));
        }
        let mut next = self.state.clone();
        next.slots[s.idx()] = Some(info);
        next.trial = Some(Trial { slot: s, tries_left: tries.max(1) });
        self.save(next, "trial started")
    }

    /// Commits the trial: its slot becomes last-known-good.
    pub fn commit(&mut self) -> Result<SlotInfo, SlotError> {
        let t = self.state.trial.clone().ok_or_else(|| SlotError::Refused("no trial to commit".into()))?;
        let info = self.state.info(t.slot).cloned().ok_or_else(|| SlotError::BadState("trial slot has no record".into()))?;
        let mut next = self.state.clone();
        next.committed = t.slot;
        next.trial = None;
        self.save(next, "committed")?;
        Ok(info)
    }

    /// Reverts the trial to last-known-good and remembers the rejected artifact.
    pub fn revert(&mut self, why: &str) -> Result<(), SlotError> {
        if self.state.trial.is_none() {
            return Err(SlotError::Refused("no trial to roll back".into()));
        }
        self.revert_inner(&format!("reverted: {why}"))
    }

    fn revert_inner(&mut self, event: &str) -> Result<(), SlotError> {
        let mut next = self.state.clone();
        if let Some(t) = next.trial.take()
            && let Some(i) = next.slots[t.slot.idx()].as_ref()
        {
            let sha = i.sha256.clone();
            push_rejected(&mut next, sha);
        }
        self.save(next, event)
    }

    /// Records an artifact that failed before the switch (e.g. its smoke test).
    pub fn reject(&mut self, sha256: &str, why: &str) -> Result<(), SlotError> {
        let mut next = self.state.clone();
        push_rejected(&mut next, sha256.to_string());
        self.save(next, &format!("rejected: {why}"))
    }
}

fn push_rejected(s: &mut SlotState, sha: String) {
    if !s.rejected.contains(&sha) {
        s.rejected.push(sha);
    }
    while s.rejected.len() > MAX_REJECTED {
        s.rejected.remove(0);
    }
}
