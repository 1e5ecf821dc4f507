//! Repository-side tools: keys, signing, publishing models (full artifacts and deltas),
//! the fleet policy, timestamp refresh, and a directory [`DirRemote`] the device can
//! read a repository through (the HTTP path is [`crate::tuf::transport::Http`]).
//!
//! Layout (consistent snapshots, so a device never sees a half-published version):
//!
//! ```text
//! REPO/metadata/N.root.json  root.json  timestamp.json  N.snapshot.json  N.targets.json
//! REPO/targets/DIRS/SHA256.BASENAME            one file per target path and content
//! KEYS/ROLE-I.json                             ed25519 keys (private: keep offline)
//! ```
//!
//! Every top-level role uses ed25519 keys; root and targets may have several keys and a
//! threshold (the offline keys), snapshot and timestamp one online key each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer as _, SigningKey};
use rand::RngCore as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::delta;
use crate::rollout::{FleetPolicy, POLICY_TARGET, TargetMeta, TierReq};
use crate::tuf::json::Json;
use crate::tuf::transport::write_atomic;
use crate::tuf::updater::{FetchError, FetchKind, Remote};

/// The four top-level roles.
pub const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];
/// `spec_version` written.
pub const SPEC_VERSION: &str = "1.0.31";

/// Repository tool errors, naming the file or field.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// File I/O failed.
    #[error("{path}: {reason}")]
    Io {
        /// File.
        path: String,
        /// Reason.
        reason: String,
    },
    /// A file's contents are not what the tool expects.
    #[error("{path}: {reason}")]
    Bad {
        /// File.
        path: String,
        /// Reason, naming the field.
        reason: String,
    },
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// Making a delta failed.
    #[error(transparent)]
    Delta(#[from] delta::DeltaError),
}

fn io(path: &Path, e: impl std::fmt::Display) -> RepoError {
    RepoError::Io { path: path.display().to_string(), reason: e.to_string() }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Canonical JSON bytes of a serde value (what signatures cover).
pub fn canonical(v: &Value) -> Result<Vec<u8>, RepoError> {
    let bytes = serde_json::to_vec(v).map_err(|e| RepoError::Invalid(e.to_string()))?;
    Ok(Json::parse(&bytes).map_err(|e| RepoError::Invalid(format!("canonical JSON: {e}")))?.canonical())
}

/// An ed25519 signing key with its TUF key id.
#[derive(Clone)]
pub struct Key {
    sk: SigningKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.keyid())
    }
}

impl Key {
    /// A fresh random key.
    pub fn generate() -> Key {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Key { sk: SigningKey::from_bytes(&seed) }
    }
    /// A key from a 32-byte seed (tests).
    pub fn from_seed(seed: [u8; 32]) -> Key {
        Key { sk: SigningKey::from_bytes(&seed) }
    }
    /// The public key as TUF metadata lists it.
    pub fn public_json(&self) -> Value {
        json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(self.sk.verifying_key().as_bytes())}})
    }
    /// The key id: sha256 of the canonical public key object.
    pub fn keyid(&self) -> String {
        hex::encode(Sha256::digest(canonical(&self.public_json()).unwrap_or_default()))
    }
    fn sign(&self, msg: &[u8]) -> String {
        hex::encode(self.sk.sign(msg).to_bytes())
    }
    fn to_file(&self) -> Value {
        let mut v = self.public_json();
        v["private"] = Value::String(hex::encode(self.sk.to_bytes()));
        v
    }
    fn from_file(v: &Value, path: &Path) -> Result<Key, RepoError> {
        let bad = |r: &str| RepoError::Bad { path: path.display().to_string(), reason: r.to_string() };
        if v.get("keytype").and_then(Value::as_str) != Some("ed25519") {
            return Err(bad("field \"keytype\" must be \"ed25519\""));
        }
        let hexs = v.get("private").and_then(Value::as_str).ok_or_else(|| bad("missing field \"private\""))?;
        let seed: [u8; 32] = hex::decode(hexs).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| bad("field \"private\" must be 32 bytes of hex"))?;
        let k = Key::from_seed(seed);
        if v.pointer("/keyval/public").and_then(Value::as_str) != Some(&hex::encode(k.sk.verifying_key().as_bytes())) {
            return Err(bad("field \"keyval.public\" does not match the private key"));
        }
        Ok(k)
    }
}

/// Signing keys and thresholds per role.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// Keys per role.
    pub keys: BTreeMap<String, Vec<Key>>,
    /// Threshold per role.
    pub thresholds: BTreeMap<String, u32>,
}

impl Keyring {
    /// Generates `root_keys` root keys (threshold `root_threshold`), `targets_keys`
    /// targets keys (threshold `targets_threshold`), one snapshot and one timestamp key.
    pub fn generate(root_keys: usize, root_threshold: u32, targets_keys: usize, targets_threshold: u32) -> Result<Keyring, RepoError> {
        if root_threshold == 0 || root_threshold as usize > root_keys || targets_threshold == 0 || targets_threshold as usize > targets_keys {
            return Err(RepoError::Invalid("each threshold must be between 1 and the number of keys".into()));
        }
        let mut keys = BTreeMap::new();
        keys.insert("root".to_string(), (0..root_keys).map(|_| Key::generate()).collect());
        keys.insert("targets".to_string(), (0..targets_keys).map(|_| Key::generate()).collect());
        keys.insert("snapshot".to_string(), vec![Key::generate()]);
        keys.insert("timestamp".to_string(), vec![Key::generate()]);
        let thresholds = BTreeMap::from([("root".to_string(), root_threshold), ("targets".to_string(), targets_threshold), ("snapshot".to_string(), 1), ("timestamp".to_string(), 1)]);
        Ok(Keyring { keys, thresholds })
    }

    /// Writes the keys as `DIR/ROLE-I.json` and thresholds as `DIR/thresholds.json`.
    pub fn save(&self, dir: &Path) -> Result<(), RepoError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        for (role, ks) in &self.keys {
            for (i, k) in ks.iter().enumerate() {
                let p = dir.join(format!("{role}-{i}.json"));
                let data = serde_json::to_vec_pretty(&k.to_file()).map_err(|e| io(&p, e))?;
                write_atomic(&p, &data).map_err(|e| io(&p, e))?;
            }
        }
        let p = dir.join("thresholds.json");
        write_atomic(&p, &serde_json::to_vec_pretty(&self.thresholds).map_err(|e| io(&p, e))?).map_err(|e| io(&p, e))
    }

    /// Reads the keys written by [`Keyring::save`]. A role may have fewer keys here than
    /// the root lists (the other holders sign elsewhere); signing needs the threshold.
    pub fn load(dir: &Path) -> Result<Keyring, RepoError> {
        let p = dir.join("thresholds.json");
        let t = std::fs::read(&p).map_err(|e| io(&p, e))?;
        let thresholds: BTreeMap<String, u32> = serde_json::from_slice(&t).map_err(|e| RepoError::Bad { path: p.display().to_string(), reason: e.to_string() })?;
        let mut keys: BTreeMap<String, Vec<Key>> = BTreeMap::new();
        for role in ROLES {
            let mut v = Vec::new();
            for i in 0.. {
                let p = dir.join(format!("{role}-{i}.json"));
                let Ok(data) = std::fs::read(&p) else { break };
                let j: Value = serde_json::from_slice(&data).map_err(|e| RepoError::Bad { path: p.display().to_string(), reason: e.to_string() })?;
                v.push(Key::from_file(&j, &p)?);
            }
            keys.insert(role.to_string(), v);
        }
        Ok(Keyring { keys, thresholds })
    }

    fn role(&self, role: &str) -> &[Key] {
        self.keys.get(role).map(Vec::as_slice).unwrap_or(&[])
    }

    fn threshold(&self, role: &str) -> u32 {
        self.thresholds.get(role).copied().unwrap_or(1)
    }
}

/// Metadata lifetimes, as absolute unix times.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    /// Root expiry.
    pub root: i64,
    /// Targets expiry.
    pub targets: i64,
    /// Snapshot expiry.
    pub snapshot: i64,
    /// Timestamp expiry.
    pub timestamp: i64,
}

impl Expiry {
    /// Defaults from `now`: root 1 year, targets 90 days, snapshot 30 days, timestamp 1 day.
    pub fn from_now(now: i64) -> Expiry {
        Expiry { root: now + 365 * 86_400, targets: now + 90 * 86_400, snapshot: now + 30 * 86_400, timestamp: now + 86_400 }
    }
}

fn envelope(signed: &Value, signers: &[Key]) -> Result<Vec<u8>, RepoError> {
    let c = canonical(signed)?;
    let sigs: Vec<Value> = signers.iter().map(|k| json!({"keyid": k.keyid(), "sig": k.sign(&c)})).collect();
    serde_json::to_vec_pretty(&json!({"signed": signed, "signatures": sigs})).map_err(|e| RepoError::Invalid(e.to_string()))
}

fn hashes(data: &[u8]) -> Value {
    json!({"sha256": hex::encode(Sha256::digest(data))})
}

/// Where a target's content is stored under consistent snapshots.
pub fn target_file_name(path: &str, sha256_hex: &str) -> String {
    match path.rsplit_once('/') {
        Some((d, b)) => format!("{d}/{sha256_hex}.{b}"),
        None => format!("{sha256_hex}.{path}"),
    }
}

fn check_target_path(path: &str) -> Result<(), RepoError> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(RepoError::Invalid(format!("target path {path:?} must be relative, without empty, '.' or '..' segments")));
    }
    Ok(())
}

/// One variant of a model release.
#[derive(Debug, Clone)]
pub struct VariantArtifact {
    /// Variant name.
    pub variant: String,
    /// Artifact bytes.
    pub bytes: Vec<u8>,
    /// Tier requirement.
    pub tier: TierReq,
}

/// A model release to publish.
#[derive(Debug, Clone)]
pub struct ModelRelease {
    /// Model name.
    pub model: String,
    /// Version (must exceed every published version of the model).
    pub version: u64,
    /// Release id (defaults to `MODEL-VERSION`).
    pub release: Option<String>,
    /// Rollout percentage set in the fleet policy.
    pub rollout_percent: u8,
    /// Variants.
    pub variants: Vec<VariantArtifact>,
    /// Make deltas from the previous version of each variant.
    pub deltas: bool,
}

/// What publishing added, per target.
#[derive(Debug, Clone)]
pub struct Published {
    /// Target path.
    pub path: String,
    /// Size in bytes.
    pub length: u64,
    /// `full` or `delta`.
    pub kind: &'static str,
}

/// A repository on disk.
#[derive(Debug)]
pub struct Repository {
    dir: PathBuf,
    root_version: u64,
    targets_version: u64,
    snapshot_version: u64,
    timestamp_version: u64,
    targets: Map<String, Value>,
}

fn read_json(p: &Path) -> Result<Value, RepoError> {
    let d = std::fs::read(p).map_err(|e| io(p, e))?;
    serde_json::from_slice(&d).map_err(|e| RepoError::Bad { path: p.display().to_string(), reason: e.to_string() })
}

fn field_u64(v: &Value, ptr: &str, p: &Path) -> Result<u64, RepoError> {
    v.pointer(ptr).and_then(Value::as_u64).ok_or_else(|| RepoError::Bad { path: p.display().to_string(), reason: format!("missing integer field {ptr}") })
}

impl Repository {
    /// Creates a repository: root v1 from `keys`, empty targets (default policy), snapshot and timestamp.
    pub fn create(dir: &Path, keys: &Keyring, now: i64, exp: Expiry) -> Result<Repository, RepoError> {
        let md = dir.join("metadata");
        if md.join("root.json").exists() {
            return Err(RepoError::Invalid(format!("{} already holds a repository", dir.display())));
        }
        std::fs::create_dir_all(&md).map_err(|e| io(&md, e))?;
        std::fs::create_dir_all(dir.join("targets")).map_err(|e| io(dir, e))?;
        for role in ROLES {
            if (keys.role(role).len() as u32) < keys.threshold(role) {
                return Err(RepoError::Invalid(format!("role {role}: {} keys, threshold {}", keys.role(role).len(), keys.threshold(role))));
            }
        }
        let mut r = Repository { dir: dir.to_path_buf(), root_version: 1, targets_version: 0, snapshot_version: 0, timestamp_version: 0, targets: Map::new() };
        let root = r.root_signed(keys, exp.root);
        let data = envelope(&root, keys.role("root"))?;
        r.write_md("1.root.json", &data)?;
        r.write_md("root.json", &data)?;
        r.set_policy(&FleetPolicy::default())?;
        r.sign(keys, now, exp)?;
        Ok(r)
    }

    fn root_signed(&self, keys: &Keyring, expires: i64) -> Value {
        let mut kmap = Map::new();
        let mut roles = Map::new();
        for role in ROLES {
            let ks = keys.role(role);
            for k in ks {
                kmap.insert(k.keyid(), k.public_json());
            }
            roles.insert(role.into(), json!({"keyids": ks.iter().map(Key::keyid).collect::<Vec<_>>(), "threshold": keys.threshold(role)}));
        }
        json!({"_type": "root", "spec_version": SPEC_VERSION, "version": self.root_version, "expires": rfc3339(expires),
               "consistent_snapshot": true, "keys": kmap, "roles": roles})
    }

    /// Opens an existing repository (state read from its newest signed metadata).
    pub fn open(dir: &Path) -> Result<Repository, RepoError> {
        let md = dir.join("metadata");
        let rp = md.join("root.json");
        let root = read_json(&rp)?;
        let root_version = field_u64(&root, "/signed/version", &rp)?;
        let tp = md.join("timestamp.json");
        let ts = read_json(&tp)?;
        let timestamp_version = field_u64(&ts, "/signed/version", &tp)?;
        let snapshot_version = field_u64(&ts, "/signed/meta/snapshot.json/version", &tp)?;
        let sp = md.join(format!("{snapshot_version}.snapshot.json"));
        let snap = read_json(&sp)?;
        let targets_version = field_u64(&snap, "/signed/meta/targets.json/version", &sp)?;
        let gp = md.join(format!("{targets_version}.targets.json"));
        let t = read_json(&gp)?;
        let targets = t.pointer("/signed/targets").and_then(Value::as_object).cloned().ok_or_else(|| RepoError::Bad { path: gp.display().to_string(), reason: "missing object signed.targets".into() })?;
        Ok(Repository { dir: dir.to_path_buf(), root_version, targets_version, snapshot_version, timestamp_version, targets })
    }

    /// The repository directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The trusted root a device is provisioned with (the current `root.json`).
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("metadata").join("root.json")
    }

    /// Versions of targets, snapshot and timestamp.
    pub fn versions(&self) -> (u64, u64, u64) {
        (self.targets_version, self.snapshot_version, self.timestamp_version)
    }

    /// The (unsigned, pending) targets map.
    pub fn targets(&self) -> &Map<String, Value> {
        &self.targets
    }

    fn write_md(&self, name: &str, data: &[u8]) -> Result<(), RepoError> {
        let p = self.dir.join("metadata").join(name);
        write_atomic(&p, data).map_err(|e| io(&p, e))
    }

    /// Stores `bytes` as target `path` with `custom` metadata (pending until [`Repository::sign`]).
    pub fn add_target(&mut self, path: &str, bytes: &[u8], custom: Option<Value>) -> Result<(), RepoError> {
        check_target_path(path)?;
        let sha = hex::encode(Sha256::digest(bytes));
        let p = self.dir.join("targets").join(target_file_name(path, &sha));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        write_atomic(&p, bytes).map_err(|e| io(&p, e))?;
        let mut entry = json!({"length": bytes.len(), "hashes": hashes(bytes)});
        if let Some(c) = custom {
            entry["custom"] = c;
        }
        self.targets.insert(path.to_string(), entry);
        Ok(())
    }

    /// The stored bytes of target `path`.
    pub fn target_bytes(&self, path: &str) -> Result<Vec<u8>, RepoError> {
        let e = self.targets.get(path).ok_or_else(|| RepoError::Invalid(format!("no target {path:?}")))?;
        let sha = e.pointer("/hashes/sha256").and_then(Value::as_str).ok_or_else(|| RepoError::Invalid(format!("target {path:?} has no sha256")))?;
        let p = self.dir.join("targets").join(target_file_name(path, sha));
        std::fs::read(&p).map_err(|e| io(&p, e))
    }

    /// The fleet policy as pending.
    pub fn policy(&self) -> FleetPolicy {
        match self.targets.get(POLICY_TARGET).and_then(|e| e.pointer("/custom/vigil")).cloned().map(serde_json::from_value::<TargetMeta>) {
            Some(Ok(TargetMeta::Policy(p))) => p,
            _ => FleetPolicy::default(),
        }
    }

    /// Replaces the fleet policy (pending until [`Repository::sign`]).
    pub fn set_policy(&mut self, p: &FleetPolicy) -> Result<(), RepoError> {
        let meta = TargetMeta::Policy(p.clone());
        let bytes = serde_json::to_vec_pretty(&meta.to_custom()).map_err(|e| RepoError::Invalid(e.to_string()))?;
        self.add_target(POLICY_TARGET, &bytes, Some(meta.to_custom()))
    }

    fn metas(&self) -> Vec<(String, TargetMeta)> {
        self.targets
            .iter()
            .filter_map(|(p, e)| Some((p.clone(), serde_json::from_value::<TargetMeta>(e.pointer("/custom/vigil")?.clone()).ok()?)))
            .collect()
    }

    /// Adds a model release: one full target per variant at
    /// `models/MODEL/VERSION/VARIANT.vtar`, and (if asked) a delta from the newest
    /// earlier version of the same variant at `...VARIANT.from-BASE.vdelta`, kept only
    /// when smaller than the full artifact. Sets the release's rollout percentage.
    pub fn publish_model(&mut self, rel: &ModelRelease) -> Result<Vec<Published>, RepoError> {
        if rel.variants.is_empty() {
            return Err(RepoError::Invalid("a release needs at least one variant".into()));
        }
        let metas = self.metas();
        let newest = metas.iter().filter_map(|(_, m)| match m {
            TargetMeta::Full { model, version, .. } if *model == rel.model => Some(*version),
            _ => None,
        });
        if let Some(v) = newest.max()
            && v >= rel.version
        {
            return Err(RepoError::Invalid(format!("model {} version {} is not above the published version {v}", rel.model, rel.version)));
        }
        let release = rel.release.clone().unwrap_or_else(|| format!("{}-{}", rel.model, rel.version));
        let mut out = Vec::new();
        for v in &rel.variants {
            let path = format!("models/{}/{}/{}.vtar", rel.model, rel.version, v.variant);
            let meta = TargetMeta::Full { model: rel.model.clone(), version: rel.version, variant: v.variant.clone(), release: release.clone(), tier: v.tier.clone() };
            self.add_target(&path, &v.bytes, Some(meta.to_custom()))?;
            out.push(Published { path: path.clone(), length: v.bytes.len() as u64, kind: "full" });
            if !rel.deltas {
                continue;
            }
            let base = metas
                .iter()
                .filter_map(|(p, m)| match m {
                    TargetMeta::Full { model, version, variant, .. } if *model == rel.model && *variant == v.variant => Some((*version, p.clone())),
                    _ => None,
                })
                .max();
            if let Some((base_version, base_path)) = base {
                let base_bytes = self.target_bytes(&base_path)?;
                let (patch, _) = delta::diff(&base_bytes, &v.bytes)?;
                if patch.len() < v.bytes.len() {
                    let dpath = format!("models/{}/{}/{}.from-{}.vdelta", rel.model, rel.version, v.variant, base_version);
                    let meta = TargetMeta::Delta {
                        model: rel.model.clone(),
                        version: rel.version,
                        variant: v.variant.clone(),
                        full: path.clone(),
                        base_version,
                        base_sha256: hex::encode(Sha256::digest(&base_bytes)),
                    };
                    self.add_target(&dpath, &patch, Some(meta.to_custom()))?;
                    out.push(Published { path: dpath, length: patch.len() as u64, kind: "delta" });
                }
            }
        }
        let mut pol = self.policy();
        pol.rollouts.insert(release, rel.rollout_percent.min(100));
        self.set_policy(&pol)?;
        Ok(out)
    }

    /// Signs the pending targets (targets, snapshot and timestamp versions + 1).
    pub fn sign(&mut self, keys: &Keyring, _now: i64, exp: Expiry) -> Result<(), RepoError> {
        let t = self.targets_version + 1;
        let signed = json!({"_type": "targets", "spec_version": SPEC_VERSION, "version": t, "expires": rfc3339(exp.targets), "targets": self.targets});
        let data = envelope(&signed, &threshold_signers(keys, "targets")?)?;
        self.write_md(&format!("{t}.targets.json"), &data)?;
        self.targets_version = t;
        self.sign_snapshot(keys, exp)
    }

    /// Re-signs snapshot and timestamp over the current targets (e.g. with new expiries).
    pub fn sign_snapshot(&mut self, keys: &Keyring, exp: Expiry) -> Result<(), RepoError> {
        let s = self.snapshot_version + 1;
        let signed = json!({"_type": "snapshot", "spec_version": SPEC_VERSION, "version": s, "expires": rfc3339(exp.snapshot),
                            "meta": {"targets.json": {"version": self.targets_version}}});
        let data = envelope(&signed, &threshold_signers(keys, "snapshot")?)?;
        self.write_md(&format!("{s}.snapshot.json"), &data)?;
        self.snapshot_version = s;
        self.refresh_timestamp(keys, exp.timestamp)
    }

    /// Signs a new timestamp (version + 1) over the current snapshot, expiring at `expires`.
    pub fn refresh_timestamp(&mut self, keys: &Keyring, expires: i64) -> Result<(), RepoError> {
        let sp = self.dir.join("metadata").join(format!("{}.snapshot.json", self.snapshot_version));
        let snap = std::fs::read(&sp).map_err(|e| io(&sp, e))?;
        let v = self.timestamp_version + 1;
        let signed = json!({"_type": "timestamp", "spec_version": SPEC_VERSION, "version": v, "expires": rfc3339(expires),
                            "meta": {"snapshot.json": {"version": self.snapshot_version, "length": snap.len(), "hashes": hashes(&snap)}}});
        let data = envelope(&signed, &threshold_signers(keys, "timestamp")?)?;
        self.write_md("timestamp.json", &data)?;
        self.timestamp_version = v;
        Ok(())
    }
}

fn threshold_signers(keys: &Keyring, role: &str) -> Result<Vec<Key>, RepoError> {
    let ks = keys.role(role);
    let t = keys.threshold(role) as usize;
    if ks.len() < t {
        return Err(RepoError::Invalid(format!("role {role} needs {t} signing keys, {} available", ks.len())));
    }
    Ok(ks[..t].to_vec())
}

/// A repository read straight from its directory (same layout as served over HTTP).
#[derive(Debug, Clone)]
pub struct DirRemote {
    dir: PathBuf,
}

impl DirRemote {
    /// A remote over repository directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirRemote { dir: dir.into() }
    }
}

impl Remote for DirRemote {
    fn fetch(&mut self, kind: FetchKind, path: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(FetchError::Other(format!("refusing path {path:?}")));
        }
        let base = match kind {
            FetchKind::Metadata => self.dir.join("metadata"),
            FetchKind::Target => self.dir.join("targets"),
        };
        let p = base.join(path);
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FetchError::NotFound),
            Err(e) => return Err(FetchError::Other(format!("{}: {e}", p.display()))),
        };
        if meta.len() > max_len {
            return Err(FetchError::TooLong);
        }
        std::fs::read(&p).map_err(|e| FetchError::Other(format!("{}: {e}", p.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::metadata::parse_expires;

    #[test]
    fn rfc3339_round_trips_through_the_verifier_parser() {
        for t in [0i64, 1_800_000_000, 951_782_400 /* 2000-02-29 */, 4_102_444_800, 1_709_164_799] {
            assert_eq!(parse_expires(&rfc3339(t)), Some(t), "{}", rfc3339(t));
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
