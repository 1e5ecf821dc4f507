//! The set of trusted metadata and the rules for admitting each new file into it
//! (TUF specification 1.0, section 5 "Detailed client workflow", steps 5.3 to 5.6).
//!
//! Everything here is pure: metadata bytes and a start time fixed once per update go
//! in, a decision comes out. The order of steps is enforced: timestamp only after the
//! final root, snapshot only after timestamp, targets only after snapshot.

use std::collections::{BTreeMap, BTreeSet};

use super::error::TufError;
use super::keys::PublicKey;
use super::metadata::{Metadata, Role, Root, Signed, Snapshot, Targets, Timestamp};

/// Result of offering a new timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampOutcome {
    /// The new timestamp is now trusted.
    Updated,
    /// Same version as the trusted one: the trusted one is kept (spec 5.4.3.1).
    EqualVersion,
}

/// Checks that at least `role.threshold` distinct keys of `role` signed `md`.
///
/// Each key counts once: repeated signatures by one key id, or one key listed under
/// several key ids, add nothing. A signature by a key not listed for the role is ignored.
pub fn verify_threshold(
    keys: &BTreeMap<String, PublicKey>,
    role: &Role,
    role_name: &str,
    md: &Metadata,
) -> Result<(), TufError> {
    let mut counted: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut notes: Vec<String> = Vec::new();
    for keyid in &role.keyids {
        let Some(key) = keys.get(keyid) else {
            notes.push(format!("key {keyid:.8} not defined"));
            continue;
        };
        let fp = key.fingerprint();
        if counted.contains(&fp) {
            notes.push(format!("key {keyid:.8} is a duplicate of a key already counted"));
            continue;
        }
        let mut sigs = md.signatures.iter().filter(|s| &s.keyid == keyid).peekable();
        if sigs.peek().is_none() {
            notes.push(format!("no signature by key {keyid:.8}"));
            continue;
        }
        let mut last_err = String::new();
        let mut ok = false;
        for s in sigs {
            match key.verify(&md.canonical, &s.sig) {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        if ok {
            counted.insert(fp);
        } else {
            notes.push(format!("key {keyid:.8}: {last_err}"));
        }
    }
    let valid = counted.len() as u32;
    if valid >= role.threshold {
        Ok(())
    } else {
        Err(TufError::ThresholdNotMet {
            role: role_name.to_string(),
            valid,
            threshold: role.threshold,
            detail: if notes.is_empty() { "no keys".into() } else { notes.join("; ") },
        })
    }
}

fn check_expiry(role: &str, common: &super::metadata::Common, now: i64) -> Result<(), TufError> {
    // Expired when the start time is at or past `expires`, as python-tuf's is_expired.
    if now >= common.expires_unix {
        return Err(TufError::Expired {
            role: role.to_string(),
            expires: common.expires.clone(),
            expires_unix: common.expires_unix,
            now,
        });
    }
    Ok(())
}

fn expect_type(md: &Metadata, expected: &str) -> Result<(), TufError> {
    let got = md.signed.type_name();
    if got != expected {
        return Err(TufError::WrongType { expected: expected.into(), got: got.into() });
    }
    Ok(())
}

/// Trusted metadata of one update, with the update's fixed start time.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    now: i64,
    initial_root: Root,
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: BTreeMap<String, Targets>,
}

impl TrustedSet {
    /// Starts from the locally trusted root (which must be signed by its own root
    /// threshold; it may be expired: a newer root may follow). `now` is the update's
    /// start time in seconds since the epoch, used for every expiry check.
    pub fn new(root_bytes: &[u8], now: i64) -> Result<TrustedSet, TufError> {
        let md = Metadata::parse(root_bytes, "trusted root.json")?;
        expect_type(&md, "root")?;
        let Signed::Root(root) = &md.signed else { return unreachable_type() };
        verify_threshold(&root.keys, &root.root, "root", &md)?;
        let root = root.clone();
        Ok(TrustedSet { now, initial_root: root.clone(), root, timestamp: None, snapshot: None, targets: BTreeMap::new() })
    }

    /// The update's start time.
    pub fn now(&self) -> i64 {
        self.now
    }
    /// The newest trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }
    /// The trusted timestamp, if any (may be an expired intermediate one).
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }
    /// The trusted snapshot, if any.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
    /// Trusted targets metadata of `role`.
    pub fn targets(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role)
    }

    /// Spec 5.3.4 to 5.3.8: admits root N+1, signed by a threshold of root N's root keys
    /// and by a threshold of its own, with version exactly N+1. Expiry is not checked
    /// here; see [`TrustedSet::check_final_root`].
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.timestamp.is_some() {
            return Err(TufError::Order("root cannot be updated after timestamp".into()));
        }
        let expected = self.root.common.version + 1;
        let md = Metadata::parse(bytes, &format!("{expected}.root.json"))?;
        expect_type(&md, "root")?;
        let Signed::Root(new) = &md.signed else { return unreachable_type() };
        verify_threshold(&self.root.keys, &self.root.root, "root (by the trusted root's keys)", &md)?;
        if new.common.version < expected {
            return Err(TufError::Rollback { role: "root".into(), trusted: self.root.common.version, new: new.common.version });
        }
        if new.common.version != expected {
            return Err(TufError::VersionMismatch {
                role: "root".into(),
                source_role: "root rotation N -> N+1".into(),
                expected,
                got: new.common.version,
            });
        }
        verify_threshold(&new.keys, &new.root, "root (by its own keys)", &md)?;
        self.root = new.clone();
        Ok(())
    }

    /// Spec 5.3.10: the final root must not be expired (freeze attack).
    pub fn check_final_root(&self) -> Result<(), TufError> {
        check_expiry("root", &self.root.common, self.now)
    }

    /// Spec 5.3.11: whether the timestamp or snapshot keys changed between the root
    /// trusted at the start and the final root. If so the caller must discard any
    /// stored timestamp and snapshot (fast-forward attack recovery).
    pub fn timestamp_or_snapshot_keys_rotated(&self) -> bool {
        ["timestamp", "snapshot"].iter().any(|r| self.initial_root.role_key_set(r).0 != self.root.role_key_set(r).0)
    }

    /// Spec 5.4: admits a timestamp signed by the root's timestamp keys whose version
    /// and snapshot version do not go back. An equal version keeps the trusted one.
    /// A newer but expired timestamp is kept as the rollback floor and refused.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampOutcome, TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::Order("timestamp cannot be updated after snapshot".into()));
        }
        self.check_final_root()?;
        let md = Metadata::parse(bytes, "timestamp.json")?;
        expect_type(&md, "timestamp")?;
        let Signed::Timestamp(new) = &md.signed else { return unreachable_type() };
        verify_threshold(&self.root.keys, &self.root.timestamp, "timestamp", &md)?;
        if let Some(old) = &self.timestamp {
            if new.common.version < old.common.version {
                return Err(TufError::Rollback { role: "timestamp".into(), trusted: old.common.version, new: new.common.version });
            }
            if new.common.version == old.common.version {
                return Ok(TimestampOutcome::EqualVersion);
            }
            if new.snapshot_meta.version < old.snapshot_meta.version {
                return Err(TufError::Rollback {
                    role: "snapshot version in timestamp".into(),
                    trusted: old.snapshot_meta.version,
                    new: new.snapshot_meta.version,
                });
            }
        }
        self.timestamp = Some(new.clone());
        self.check_final_timestamp()?;
        Ok(TimestampOutcome::Updated)
    }

    fn check_final_timestamp(&self) -> Result<&Timestamp, TufError> {
        let ts = self.timestamp.as_ref().ok_or_else(|| TufError::Order("no trusted timestamp".into()))?;
        check_expiry("timestamp", &ts.common, self.now)?;
        Ok(ts)
    }

    /// Spec 5.5: admits a snapshot matching the timestamp's length and hashes (skipped
    /// for `from_local_store`, which was verified when stored), signed by the root's
    /// snapshot keys, listing every file the trusted snapshot lists at no lower
    /// version, unexpired, and with exactly the version the timestamp states.
    pub fn update_snapshot(&mut self, bytes: &[u8], from_local_store: bool) -> Result<(), TufError> {
        if !self.targets.is_empty() {
            return Err(TufError::Order("snapshot cannot be updated after targets".into()));
        }
        let ts = self.check_final_timestamp()?;
        if !from_local_store {
            ts.snapshot_meta.verify("snapshot.json", bytes)?;
        }
        let md = Metadata::parse(bytes, "snapshot.json")?;
        expect_type(&md, "snapshot")?;
        let Signed::Snapshot(new) = &md.signed else { return unreachable_type() };
        verify_threshold(&self.root.keys, &self.root.snapshot, "snapshot", &md)?;
        if let Some(old) = &self.snapshot {
            for (name, old_meta) in &old.meta {
                let Some(new_meta) = new.meta.get(name) else {
                    return Err(TufError::Missing {
                        what: "snapshot.json".into(),
                        reason: format!("new snapshot drops {name:?}, which the trusted snapshot lists"),
                    });
                };
                if new_meta.version < old_meta.version {
                    return Err(TufError::Rollback {
                        role: format!("{name} version in snapshot"),
                        trusted: old_meta.version,
                        new: new_meta.version,
                    });
                }
            }
        }
        self.snapshot = Some(new.clone());
        self.check_final_snapshot()?;
        Ok(())
    }

    fn check_final_snapshot(&self) -> Result<&Snapshot, TufError> {
        let ts = self.timestamp.as_ref().ok_or_else(|| TufError::Order("no trusted timestamp".into()))?;
        let snap = self.snapshot.as_ref().ok_or_else(|| TufError::Order("no trusted snapshot".into()))?;
        check_expiry("snapshot", &snap.common, self.now)?;
        if snap.common.version != ts.snapshot_meta.version {
            return Err(TufError::VersionMismatch {
                role: "snapshot".into(),
                source_role: "timestamp".into(),
                expected: ts.snapshot_meta.version,
                got: snap.common.version,
            });
        }
        Ok(snap)
    }

    /// Spec 5.6: admits targets metadata of `role`, delegated by `delegator` (`"root"`
    /// for the top-level `targets`), matching the snapshot's length and hashes (also
    /// when read from the local store: the snapshot pins the content), signed by the
    /// delegator's threshold for it, with the exact version the snapshot states, unexpired.
    pub fn update_targets(&mut self, bytes: &[u8], role: &str, delegator: &str) -> Result<(), TufError> {
        let snap = self.check_final_snapshot()?;
        let file = format!("{role}.json");
        let meta = snap.meta.get(&file).ok_or_else(|| TufError::Missing {
            what: file.clone(),
            reason: format!("snapshot does not list {file:?}"),
        })?;
        meta.verify(&file, bytes)?;
        let md = Metadata::parse(bytes, &file)?;
        expect_type(&md, "targets")?;
        let Signed::Targets(new) = &md.signed else { return unreachable_type() };
        if delegator == "root" {
            if role != "targets" {
                return Err(TufError::Order(format!("root delegates only \"targets\", not {role:?}")));
            }
            verify_threshold(&self.root.keys, &self.root.targets, "targets", &md)?;
        } else {
            let parent = self
                .targets
                .get(delegator)
                .ok_or_else(|| TufError::Order(format!("delegating role {delegator:?} is not trusted yet")))?;
            let d = parent.delegations.as_ref().ok_or_else(|| TufError::Missing {
                what: file.clone(),
                reason: format!("{delegator:?} has no delegations"),
            })?;
            let r = d.role(role).ok_or_else(|| TufError::Missing {
                what: file.clone(),
                reason: format!("{delegator:?} does not delegate to {role:?}"),
            })?;
            verify_threshold(&d.keys, r, role, &md)?;
        }
        if new.common.version != meta.version {
            return Err(TufError::VersionMismatch {
                role: role.into(),
                source_role: "snapshot".into(),
                expected: meta.version,
                got: new.common.version,
            });
        }
        check_expiry(role, &new.common, self.now)?;
        self.targets.insert(role.to_string(), new.clone());
        Ok(())
    }
}

fn unreachable_type<T>() -> Result<T, TufError> {
    Err(TufError::Order("metadata type changed during checking".into()))
}
