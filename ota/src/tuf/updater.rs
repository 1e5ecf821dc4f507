//! The TUF client workflow (specification section 5) over two abstract ports: a
//! [`Remote`] that fetches bytes with a length cap, and a [`Store`] that keeps trusted
//! metadata under non-versioned names. The workflow itself does no I/O, so it runs the
//! same over HTTP, over an in-memory repository in tests, or under a fuzzer.

use std::collections::BTreeSet;

use super::error::TufError;
use super::metadata::TargetFile;
use super::trusted::{TimestampOutcome, TrustedSet};

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The file does not exist (HTTP 403 or 404).
    NotFound,
    /// The body exceeded the length cap given to the fetch.
    TooLong,
    /// Any other failure.
    Other(String),
}

/// Which store a fetch reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    /// Metadata, relative to the metadata base URL.
    Metadata,
    /// A target file, relative to the target base URL.
    Target,
}

/// Fetches files of the repository. Must stop reading after `max_len` bytes and
/// report [`FetchError::TooLong`] when more were offered.
pub trait Remote {
    /// Fetches `path` (already URL-encoded where needed).
    fn fetch(&mut self, kind: FetchKind, path: &str, max_len: u64) -> Result<Vec<u8>, FetchError>;
}

/// Keeps trusted metadata between updates, by role name.
pub trait Store {
    /// The stored metadata of `role`, if any.
    fn load(&mut self, role: &str) -> Option<Vec<u8>>;
    /// Stores the metadata of `role` (replacing atomically where the medium allows).
    fn save(&mut self, role: &str, data: &[u8]) -> Result<(), String>;
    /// Removes the stored metadata of `role`.
    fn remove(&mut self, role: &str) -> Result<(), String>;
}

/// Length caps (endless-data defence) and search bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest root file accepted.
    pub max_root_length: u64,
    /// Largest timestamp file accepted.
    pub max_timestamp_length: u64,
    /// Largest snapshot file accepted when the timestamp does not state a length.
    pub max_snapshot_length: u64,
    /// Largest targets file accepted when the snapshot does not state a length.
    pub max_targets_length: u64,
    /// Most root versions fetched in one update.
    pub max_root_rotations: u64,
    /// Most delegated targets roles visited while searching for one target.
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_root_length: 512_000,
            max_timestamp_length: 16_384,
            max_snapshot_length: 2_000_000,
            max_targets_length: 5_000_000,
            max_root_rotations: 32,
            max_delegations: 32,
        }
    }
}

/// Percent-encodes everything but unreserved characters (`A-Z a-z 0-9 - . _ ~`), so a
/// role name or target path becomes one URL path segment and one file name.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One update session: a start time fixed at creation, the trusted set, and the ports.
pub struct Updater<R: Remote, S: Store> {
    remote: R,
    store: S,
    limits: Limits,
    trusted: TrustedSet,
    refreshed: bool,
}

fn fetch_err(what: &str, max: u64, e: FetchError) -> TufError {
    match e {
        FetchError::TooLong => TufError::TooLong { what: what.into(), max },
        FetchError::NotFound => TufError::Fetch { what: what.into(), reason: "not found".into() },
        FetchError::Other(r) => TufError::Fetch { what: what.into(), reason: r },
    }
}

impl<R: Remote, S: Store> Updater<R, S> {
    /// Loads the trusted root from `store` and fixes the update's start time `now`
    /// (seconds since the epoch).
    pub fn new(remote: R, mut store: S, now: i64, limits: Limits) -> Result<Self, TufError> {
        let root = store.load("root").ok_or_else(|| TufError::Store("no trusted root.json in the metadata store".into()))?;
        let trusted = TrustedSet::new(&root, now)?;
        Ok(Updater { remote, store, limits, trusted, refreshed: false })
    }

    /// The trusted metadata so far.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// Gives the ports back.
    pub fn into_parts(self) -> (R, S) {
        (self.remote, self.store)
    }

    fn persist(&mut self, role: &str, data: &[u8]) -> Result<(), TufError> {
        self.store.save(role, data).map_err(|e| TufError::Store(format!("saving {role}: {e}")))
    }

    /// The whole top-level workflow: root (5.3), timestamp (5.4), snapshot (5.5),
    /// top-level targets (5.6). Runs at most once per updater.
    pub fn refresh(&mut self) -> Result<(), TufError> {
        if self.refreshed {
            return Ok(());
        }
        self.load_root()?;
        self.load_timestamp()?;
        self.load_snapshot()?;
        self.load_targets("targets", "root")?;
        self.refreshed = true;
        Ok(())
    }

    fn load_root(&mut self) -> Result<(), TufError> {
        let first = self.trusted.root().common().version() + 1;
        for v in first..first.saturating_add(self.limits.max_root_rotations) {
            let name = format!("{v}.root.json");
            let data = match self.remote.fetch(FetchKind::Metadata, &name, self.limits.max_root_length) {
                Ok(d) => d,
                Err(FetchError::NotFound) => break,
                Err(e) => return Err(fetch_err(&name, self.limits.max_root_length, e)),
            };
            self.trusted.update_root(&data)?;
            self.persist("root", &data)?;
        }
        self.trusted.check_final_root()?;
        if self.trusted.timestamp_or_snapshot_keys_rotated() {
            // Spec 5.3.11: fast-forward attack recovery.
            for role in ["timestamp", "snapshot"] {
                self.store.remove(role).map_err(|e| TufError::Store(format!("removing {role}: {e}")))?;
            }
        }
        Ok(())
    }

    fn load_timestamp(&mut self) -> Result<(), TufError> {
        if let Some(local) = self.store.load("timestamp") {
            // A stored timestamp that no longer verifies is ignored; a verified but
            // expired one still serves as the rollback floor.
            let _ = self.trusted.update_timestamp(&local);
        }
        let max = self.limits.max_timestamp_length;
        let data = self.remote.fetch(FetchKind::Metadata, "timestamp.json", max).map_err(|e| fetch_err("timestamp.json", max, e))?;
        match self.trusted.update_timestamp(&data)? {
            TimestampOutcome::EqualVersion => Ok(()),
            TimestampOutcome::Updated => self.persist("timestamp", &data),
        }
    }

    fn load_snapshot(&mut self) -> Result<(), TufError> {
        if let Some(local) = self.store.load("snapshot")
            && self.trusted.update_snapshot(&local, true).is_ok()
        {
            return Ok(());
        }
        let ts = self.trusted.timestamp().ok_or_else(|| TufError::Order("no trusted timestamp".into()))?;
        let meta = ts.snapshot_meta();
        let max = meta.length().unwrap_or(self.limits.max_snapshot_length);
        let name = if self.trusted.root().consistent_snapshot() {
            format!("{}.snapshot.json", meta.version())
        } else {
            "snapshot.json".to_string()
        };
        let data = self.remote.fetch(FetchKind::Metadata, &name, max).map_err(|e| fetch_err(&name, max, e))?;
        self.trusted.update_snapshot(&data, false)?;
        self.persist("snapshot", &data)
    }

    fn load_targets(&mut self, role: &str, delegator: &str) -> Result<(), TufError> {
        if self.trusted.targets(role).is_some() {
            return Ok(());
        }
        let store_name = quote(role);
        if let Some(local) = self.store.load(&store_name)
            && self.trusted.update_targets(&local, role, delegator).is_ok()
        {
            return Ok(());
        }
        let snap = self.trusted.snapshot().ok_or_else(|| TufError::Order("no trusted snapshot".into()))?;
        let file = format!("{role}.json");
        let meta = snap.meta(&file).ok_or_else(|| TufError::Missing {
            what: file.clone(),
            reason: format!("snapshot does not list {file:?}"),
        })?;
        let max = meta.length().unwrap_or(self.limits.max_targets_length);
        let name = if self.trusted.root().consistent_snapshot() {
            format!("{}.{}.json", meta.version(), quote(role))
        } else {
            format!("{}.json", quote(role))
        };
        let data = self.remote.fetch(FetchKind::Metadata, &name, max).map_err(|e| fetch_err(&name, max, e))?;
        self.trusted.update_targets(&data, role, delegator)?;
        self.persist(&store_name, &data)
    }

    /// Finds the trusted description of `target` (spec 5.6.7): a pre-order depth-first
    /// search of the delegation graph from the top-level targets, visiting the top-level
    /// targets and at most `max_delegations` delegated roles, each role once, stopping below a terminating
    /// delegation that covers the path.
    pub fn target_info(&mut self, target: &str) -> Result<TargetFile, TufError> {
        self.refresh()?;
        let mut stack: Vec<(String, String)> = vec![("targets".into(), "root".into())];
        let mut visited: BTreeSet<String> = BTreeSet::new();
        let mut budget = self.limits.max_delegations.saturating_add(1);
        while budget > 0 {
            let Some((role, parent)) = stack.pop() else { break };
            if visited.contains(&role) {
                continue;
            }
            self.load_targets(&role, &parent)?;
            let Some(md) = self.trusted.targets(&role) else {
                return Err(TufError::Order(format!("{role} not trusted after loading")));
            };
            if let Some(t) = md.target(target) {
                return Ok(t.clone());
            }
            visited.insert(role.clone());
            budget -= 1;
            if let Some(d) = md.delegations() {
                let mut children = Vec::new();
                for (child, terminating) in d.roles_for(target) {
                    children.push((child, role.clone()));
                    if terminating {
                        stack.clear();
                        break;
                    }
                }
                children.reverse();
                stack.extend(children);
            }
        }
        Err(TufError::TargetNotFound(target.to_string()))
    }

    /// Downloads `info`'s file (with the hash prefix under consistent snapshots), at
    /// most its stated length, and returns it only if length and hashes match.
    pub fn download_target(&mut self, info: &TargetFile) -> Result<Vec<u8>, TufError> {
        let path = info.path();
        let url_path = if self.trusted.root().consistent_snapshot() {
            match path.rsplit_once('/') {
                Some((dir, base)) => format!("{dir}/{}.{base}", info.hashes().first_hex()),
                None => format!("{}.{path}", info.hashes().first_hex()),
            }
        } else {
            path.to_string()
        };
        let what = format!("target {path:?}");
        let data = self
            .remote
            .fetch(FetchKind::Target, &url_path, info.length())
            .map_err(|e| fetch_err(&what, info.length(), e))?;
        info.verify(&data)?;
        Ok(data)
    }
}
