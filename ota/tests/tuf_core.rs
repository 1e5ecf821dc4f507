//! The TUF verification core over repositories built in Rust: in-memory remote and
//! store, fixed start times, every attack class rejected with its typed reason.

use std::collections::HashMap;

use ed25519_dalek::{Signer as _, SigningKey};
use ota::tuf::json::Json;
use ota::tuf::keys::PublicKey;
use ota::tuf::{FetchError, FetchKind, Limits, Remote, Store, TrustedSet, TufError, Updater};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NOW: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z
const FUTURE: &str = "2030-01-01T00:00:00Z";
const PAST: &str = "2020-01-01T00:00:00Z";

// ----------------------------------------------------------------------------------
// signing helpers

enum Sk {
    Ed(SigningKey),
    P256(p256::ecdsa::SigningKey),
}

struct Key {
    sk: Sk,
    id: String,
    json: Value,
}

fn canonical(v: &Value) -> Vec<u8> {
    Json::parse(&serde_json::to_vec(v).unwrap()).unwrap().canonical()
}

fn ed_key(seed: u8) -> Key {
    let sk = SigningKey::from_bytes(&[seed; 32]);
    let json = json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(sk.verifying_key().as_bytes())}});
    let id = hex::encode(Sha256::digest(canonical(&json)));
    Key { sk: Sk::Ed(sk), id, json }
}

fn p256_key(seed: u8) -> Key {
    use p256::pkcs8::EncodePublicKey;
    let sk = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let pem = sk.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap();
    let json = json!({"keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256", "keyval": {"public": pem}});
    let id = hex::encode(Sha256::digest(canonical(&json)));
    Key { sk: Sk::P256(sk), id, json }
}

impl Key {
    fn sign(&self, msg: &[u8]) -> String {
        match &self.sk {
            Sk::Ed(k) => hex::encode(k.sign(msg).to_bytes()),
            Sk::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(msg);
                hex::encode(s.to_der().as_bytes())
            }
        }
    }
}

fn envelope(signed: &Value, keys: &[&Key]) -> Vec<u8> {
    let c = canonical(signed);
    let sigs: Vec<Value> = keys.iter().map(|k| json!({"keyid": k.id, "sig": k.sign(&c)})).collect();
    serde_json::to_vec_pretty(&json!({"signed": signed, "signatures": sigs})).unwrap()
}

fn hashes(data: &[u8]) -> Value {
    json!({"sha256": hex::encode(Sha256::digest(data))})
}

// ----------------------------------------------------------------------------------
// a repository

struct Repo {
    files: HashMap<String, Vec<u8>>,
    root_keys: Vec<Key>,
    root_threshold: u32,
    ts: Key,
    snap: Key,
    tgt: Key,
    root_v: u64,
    ts_v: u64,
    snap_v: u64,
    tgt_v: u64,
    ts_expires: &'static str,
    snap_expires: &'static str,
    tgt_expires: &'static str,
    consistent: bool,
    targets: serde_json::Map<String, Value>,
    delegations: Option<Value>,
    delegated: Vec<(String, Vec<u8>, u64)>,
}

impl Repo {
    fn new(consistent: bool) -> Repo {
        let mut r = Repo {
            files: HashMap::new(),
            root_keys: vec![ed_key(1)],
            root_threshold: 1,
            ts: ed_key(2),
            snap: ed_key(3),
            tgt: p256_key(4),
            root_v: 1,
            ts_v: 0,
            snap_v: 0,
            tgt_v: 0,
            ts_expires: FUTURE,
            snap_expires: FUTURE,
            tgt_expires: FUTURE,
            consistent,
            targets: serde_json::Map::new(),
            delegations: None,
            delegated: Vec::new(),
        };
        let root = r.root_signed(FUTURE);
        let data = envelope(&root, &r.root_keys.iter().collect::<Vec<_>>());
        r.files.insert("1.root.json".into(), data);
        r.publish();
        r
    }

    fn root_signed(&self, expires: &str) -> Value {
        let mut keys = serde_json::Map::new();
        for k in self.root_keys.iter().chain([&self.ts, &self.snap, &self.tgt]) {
            keys.insert(k.id.clone(), k.json.clone());
        }
        json!({
            "_type": "root", "spec_version": "1.0.31", "version": self.root_v, "expires": expires,
            "consistent_snapshot": self.consistent, "keys": keys,
            "roles": {
                "root": {"keyids": self.root_keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(), "threshold": self.root_threshold},
                "timestamp": {"keyids": [self.ts.id], "threshold": 1},
                "snapshot": {"keyids": [self.snap.id], "threshold": 1},
                "targets": {"keyids": [self.tgt.id], "threshold": 1},
            }
        })
    }

    fn initial_root(&self) -> Vec<u8> {
        self.files["1.root.json"].clone()
    }

    /// Root v+1, signed by `signers` (indices into old and new root key lists are up to the caller).
    fn rotate_root(&mut self, new_keys: Vec<Key>, threshold: u32, expires: &str, sign_old: bool, sign_new: bool) {
        let old = std::mem::replace(&mut self.root_keys, new_keys);
        self.root_threshold = threshold;
        self.root_v += 1;
        let signed = self.root_signed(expires);
        let mut signers: Vec<&Key> = Vec::new();
        if sign_old {
            signers.extend(old.iter());
        }
        if sign_new {
            signers.extend(self.root_keys.iter());
        }
        let data = envelope(&signed, &signers);
        self.files.insert(format!("{}.root.json", self.root_v), data);
    }

    fn name(&self, role: &str, v: u64) -> String {
        if self.consistent { format!("{v}.{role}.json") } else { format!("{role}.json") }
    }

    fn add_target(&mut self, path: &str, data: &[u8]) {
        self.targets.insert(path.into(), json!({"length": data.len(), "hashes": hashes(data)}));
        let file = if self.consistent {
            let h = hex::encode(Sha256::digest(data));
            match path.rsplit_once('/') {
                Some((d, b)) => format!("{d}/{h}.{b}"),
                None => format!("{h}.{path}"),
            }
        } else {
            path.to_string()
        };
        self.files.insert(format!("targets/{file}"), data.to_vec());
    }

    fn publish(&mut self) {
        self.publish_targets();
        self.publish_snapshot();
        self.publish_timestamp();
    }

    fn publish_targets(&mut self) {
        self.tgt_v += 1;
        let mut signed = json!({"_type": "targets", "spec_version": "1.0.31", "version": self.tgt_v,
            "expires": self.tgt_expires, "targets": self.targets});
        if let Some(d) = &self.delegations {
            signed["delegations"] = d.clone();
        }
        let data = envelope(&signed, &[&self.tgt]);
        self.files.insert(self.name("targets", self.tgt_v), data);
    }

    fn snapshot_signed(&self) -> Value {
        let mut meta = serde_json::Map::new();
        meta.insert("targets.json".into(), json!({"version": self.tgt_v}));
        for (name, _, v) in &self.delegated {
            meta.insert(format!("{name}.json"), json!({"version": v}));
        }
        json!({"_type": "snapshot", "spec_version": "1.0.31", "version": self.snap_v, "expires": self.snap_expires, "meta": meta})
    }

    fn publish_snapshot(&mut self) -> Vec<u8> {
        self.snap_v += 1;
        let data = envelope(&self.snapshot_signed(), &[&self.snap]);
        self.files.insert(self.name("snapshot", self.snap_v), data.clone());
        data
    }

    fn publish_timestamp(&mut self) {
        let snap = self.files[&self.name("snapshot", self.snap_v)].clone();
        self.publish_timestamp_with(json!({"version": self.snap_v, "length": snap.len(), "hashes": hashes(&snap)}));
    }

    fn publish_timestamp_with(&mut self, snapshot_meta: Value) {
        self.ts_v += 1;
        let signed = json!({"_type": "timestamp", "spec_version": "1.0.31", "version": self.ts_v,
            "expires": self.ts_expires, "meta": {"snapshot.json": snapshot_meta}});
        let data = envelope(&signed, &[&self.ts]);
        self.files.insert("timestamp.json".into(), data);
    }
}

// ----------------------------------------------------------------------------------
// ports

#[derive(Default)]
struct MemRemote {
    files: HashMap<String, Vec<u8>>,
    log: Vec<(String, u64)>,
}

impl Remote for MemRemote {
    fn fetch(&mut self, kind: FetchKind, path: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let key = match kind {
            FetchKind::Metadata => path.to_string(),
            FetchKind::Target => format!("targets/{path}"),
        };
        self.log.push((key.clone(), max_len));
        match self.files.get(&key) {
            None => Err(FetchError::NotFound),
            Some(d) if d.len() as u64 > max_len => Err(FetchError::TooLong),
            Some(d) => Ok(d.clone()),
        }
    }
}

#[derive(Default, Clone)]
struct MemStore {
    files: HashMap<String, Vec<u8>>,
}

impl Store for MemStore {
    fn load(&mut self, role: &str) -> Option<Vec<u8>> {
        self.files.get(role).cloned()
    }
    fn save(&mut self, role: &str, data: &[u8]) -> Result<(), String> {
        self.files.insert(role.into(), data.to_vec());
        Ok(())
    }
    fn remove(&mut self, role: &str) -> Result<(), String> {
        self.files.remove(role);
        Ok(())
    }
}

struct Device {
    store: MemStore,
}

impl Device {
    fn new(repo: &Repo) -> Device {
        let mut store = MemStore::default();
        store.files.insert("root".into(), repo.initial_root());
        Device { store }
    }

    fn refresh_at(&mut self, repo: &Repo, now: i64) -> Result<Vec<(String, u64)>, TufError> {
        let remote = MemRemote { files: repo.files.clone(), log: Vec::new() };
        let mut up = Updater::new(remote, self.store.clone(), now, Limits::default())?;
        let res = up.refresh();
        let (remote, store) = up.into_parts();
        self.store = store;
        res.map(|()| remote.log)
    }

    fn refresh(&mut self, repo: &Repo) -> Result<Vec<(String, u64)>, TufError> {
        self.refresh_at(repo, NOW)
    }

    fn download(&mut self, repo: &Repo, path: &str) -> Result<Vec<u8>, TufError> {
        let remote = MemRemote { files: repo.files.clone(), log: Vec::new() };
        let mut up = Updater::new(remote, self.store.clone(), NOW, Limits::default())?;
        let res = up.target_info(path).and_then(|info| up.download_target(&info));
        let (_, store) = up.into_parts();
        self.store = store;
        res
    }

    fn version(&self, role: &str) -> Option<u64> {
        let d: Value = serde_json::from_slice(self.store.files.get(role)?).ok()?;
        d["signed"]["version"].as_u64()
    }
}

// ----------------------------------------------------------------------------------
// tests

#[test]
fn canonical_json_matches_securesystemslib_vector() {
    // Input and expected output produced by securesystemslib.formats.encode_canonical.
    let input = r#"{"b": [1, -2, true, null, {"z": "\"q\"", "a": "\\x"}], "a": "na\u00efve\n\tend", "_type": "x", "\u00e9": {}, "A": 0}"#;
    let expected = "{\"A\":0,\"_type\":\"x\",\"a\":\"na\u{ef}ve\n\tend\",\"b\":[1,-2,true,null,{\"a\":\"\\\\x\",\"z\":\"\\\"q\\\"\"}],\"\u{e9}\":{}}";
    assert_eq!(String::from_utf8(Json::parse(input.as_bytes()).unwrap().canonical()).unwrap(), expected);
}

#[test]
fn happy_path_refresh_and_download() {
    for consistent in [true, false] {
        let mut repo = Repo::new(consistent);
        repo.add_target("models/det.vplan", b"weights");
        repo.publish();
        let mut dev = Device::new(&repo);
        let log = dev.refresh(&repo).unwrap();
        assert_eq!(dev.version("timestamp"), Some(repo.ts_v));
        assert_eq!(dev.version("snapshot"), Some(repo.snap_v));
        assert_eq!(dev.version("targets"), Some(repo.tgt_v));
        let snap_name = if consistent { format!("{}.snapshot.json", repo.snap_v) } else { "snapshot.json".into() };
        let snap_len = repo.files[&snap_name].len() as u64;
        // Length caps: root and timestamp by configuration, snapshot by the timestamp's length.
        assert!(log.contains(&("2.root.json".into(), 512_000)), "{log:?}");
        assert!(log.contains(&("timestamp.json".into(), 16_384)), "{log:?}");
        assert!(log.contains(&(snap_name, snap_len)), "{log:?}");
        assert_eq!(dev.download(&repo, "models/det.vplan").unwrap(), b"weights");
    }
}

#[test]
fn expiry_uses_the_fixed_start_time_with_exact_boundary() {
    let repo = Repo::new(true);
    let expires = ota::tuf::metadata::parse_expires(FUTURE).unwrap();
    let mut dev = Device::new(&repo);
    dev.refresh_at(&repo, expires - 1).unwrap();
    let mut dev = Device::new(&repo);
    let err = dev.refresh_at(&repo, expires).unwrap_err();
    assert!(matches!(&err, TufError::Expired { role, .. } if role == "root"), "{err}");
}

#[test]
fn expired_timestamp_snapshot_targets_are_refused() {
    for role in ["timestamp", "snapshot", "targets"] {
        let mut repo = Repo::new(true);
        match role {
            "timestamp" => repo.ts_expires = PAST,
            "snapshot" => repo.snap_expires = PAST,
            _ => repo.tgt_expires = PAST,
        }
        repo.publish();
        let err = Device::new(&repo).refresh(&repo).unwrap_err();
        assert!(matches!(&err, TufError::Expired { role: r, .. } if r == role), "{role}: {err}");
        assert!(err.to_string().contains(&format!("{role} expired")));
    }
}

#[test]
fn rollback_of_each_role_is_refused() {
    // timestamp
    let mut repo = Repo::new(true);
    let mut dev = Device::new(&repo);
    dev.refresh(&repo).unwrap();
    let old_ts = repo.files["timestamp.json"].clone();
    repo.publish();
    dev.refresh(&repo).unwrap();
    repo.files.insert("timestamp.json".into(), old_ts);
    let err = dev.refresh(&repo).unwrap_err();
    assert!(matches!(&err, TufError::Rollback { role, .. } if role == "timestamp"), "{err}");

    // snapshot version referenced by timestamp goes back
    let mut repo = Repo::new(true);
    let mut dev = Device::new(&repo);
    repo.publish();
    dev.refresh(&repo).unwrap();
    let v = repo.snap_v - 1;
    repo.publish_timestamp_with(json!({"version": v}));
    let err = dev.refresh(&repo).unwrap_err();
    assert!(matches!(&err, TufError::Rollback { role, .. } if role.contains("snapshot")), "{err}");

    // targets version in snapshot goes back
    let mut repo = Repo::new(true);
    repo.publish();
    let mut dev = Device::new(&repo);
    dev.refresh(&repo).unwrap();
    repo.tgt_v -= 1;
    repo.publish_snapshot();
    repo.publish_timestamp();
    let err = dev.refresh(&repo).unwrap_err();
    assert!(matches!(&err, TufError::Rollback { role, .. } if role.contains("targets.json")), "{err}");
}

#[test]
fn threshold_counts_each_key_once() {
    let repo = Repo::new(true);
    let k = ed_key(9);
    let k2 = ed_key(10);
    // A root whose root role needs 2 keys, listing k under two key ids.
    let mut keys = serde_json::Map::new();
    keys.insert(k.id.clone(), k.json.clone());
    keys.insert("alias".into(), k.json.clone());
    keys.insert(k2.id.clone(), k2.json.clone());
    let role = |ids: Value, t: u32| json!({"keyids": ids, "threshold": t});
    let signed = json!({"_type": "root", "spec_version": "1.0", "version": 1, "expires": FUTURE, "keys": keys,
        "roles": {"root": role(json!([k.id, "alias"]), 2), "timestamp": role(json!([k.id]), 1),
                  "snapshot": role(json!([k.id]), 1), "targets": role(json!([k.id]), 1)}});
    let c = canonical(&signed);
    let s = k.sign(&c);
    let doc = |sigs: Value| serde_json::to_vec(&json!({"signed": signed, "signatures": sigs})).unwrap();
    // Same key under two ids.
    let err = TrustedSet::new(&doc(json!([{"keyid": k.id, "sig": s}, {"keyid": "alias", "sig": s}])), NOW).unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { valid: 1, threshold: 2, .. }), "{err}");
    assert!(err.to_string().contains("duplicate"));
    // Same signature repeated.
    let err = TrustedSet::new(&doc(json!([{"keyid": k.id, "sig": s}, {"keyid": k.id, "sig": s}])), NOW).unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { valid: 1, threshold: 2, .. }), "{err}");
    // A key not in the role does not count, even with a valid signature.
    let s2 = k2.sign(&c);
    let err = TrustedSet::new(&doc(json!([{"keyid": k.id, "sig": s}, {"keyid": k2.id, "sig": s2}])), NOW).unwrap_err();
    assert!(matches!(err, TufError::ThresholdNotMet { valid: 1, .. }), "{err}");
    drop(repo);
}

#[test]
fn root_rotation_checks_old_and_new_thresholds_and_consecutive_versions() {
    // Good rotation with threshold change.
    let mut repo = Repo::new(true);
    repo.rotate_root(vec![ed_key(20), ed_key(21)], 2, FUTURE, true, true);
    repo.rotate_root(vec![ed_key(20), ed_key(21)], 2, FUTURE, true, false);
    repo.publish();
    let mut dev = Device::new(&repo);
    dev.refresh(&repo).unwrap();
    assert_eq!(dev.version("root"), Some(3));

    // Not signed by the old root.
    let mut repo = Repo::new(true);
    repo.rotate_root(vec![ed_key(30)], 1, FUTURE, false, true);
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(err.to_string().contains("trusted root's keys"), "{err}");

    // Not signed by the new root.
    let mut repo = Repo::new(true);
    repo.rotate_root(vec![ed_key(31)], 1, FUTURE, true, false);
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(err.to_string().contains("by its own keys"), "{err}");

    // An expired intermediate root is fine, an expired final root is not.
    let mut repo = Repo::new(true);
    repo.rotate_root(vec![ed_key(1)], 1, PAST, true, true);
    repo.rotate_root(vec![ed_key(1)], 1, FUTURE, true, true);
    Device::new(&repo).refresh(&repo).unwrap();
    repo.rotate_root(vec![ed_key(1)], 1, PAST, true, true);
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(matches!(&err, TufError::Expired { role, .. } if role == "root"), "{err}");

    // Root N+2 served as N+1.
    let mut repo = Repo::new(true);
    repo.rotate_root(vec![ed_key(1)], 1, FUTURE, true, true);
    let v2 = repo.files.remove("2.root.json").unwrap();
    drop(v2);
    repo.rotate_root(vec![ed_key(1)], 1, FUTURE, true, true);
    let v3 = repo.files.remove("3.root.json").unwrap();
    repo.files.insert("2.root.json".into(), v3);
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(matches!(err, TufError::VersionMismatch { expected: 2, got: 3, .. }), "{err}");
}

#[test]
fn root_rotation_loop_is_bounded() {
    let mut repo = Repo::new(true);
    for _ in 0..40 {
        repo.rotate_root(vec![ed_key(1)], 1, FUTURE, true, true);
    }
    repo.publish();
    let mut dev = Device::new(&repo);
    let log = dev.refresh(&repo).unwrap();
    assert_eq!(log.iter().filter(|(n, _)| n.ends_with(".root.json")).count(), 32);
    assert_eq!(dev.version("root"), Some(33));
}

#[test]
fn mix_and_match_is_refused() {
    // Snapshot content not matching the timestamp's hash.
    let mut repo = Repo::new(true);
    let other = ed_key(50);
    let snap = repo.files[&repo.name("snapshot", repo.snap_v)].clone();
    let mut meta = json!({"version": repo.snap_v, "length": snap.len(), "hashes": hashes(b"something else")});
    repo.publish_timestamp_with(meta.clone());
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(matches!(&err, TufError::LengthOrHashMismatch { reason, .. } if reason.contains("sha256 hash mismatch")), "{err}");
    // Wrong length.
    meta["hashes"] = hashes(&snap);
    meta["length"] = json!(snap.len() + 1);
    repo.publish_timestamp_with(meta);
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(err.to_string().contains("length mismatch"), "{err}");
    drop(other);

    // Snapshot version differs from the one the timestamp names.
    let mut repo = Repo::new(false);
    repo.publish_snapshot();
    repo.publish_timestamp_with(json!({"version": repo.snap_v + 1}));
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(matches!(&err, TufError::VersionMismatch { role, .. } if role == "snapshot"), "{err}");

    // Targets version differs from the snapshot's.
    let mut repo = Repo::new(false);
    repo.tgt_v += 1; // snapshot claims a version that is not the published one
    repo.publish_snapshot();
    repo.publish_timestamp();
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(matches!(&err, TufError::VersionMismatch { role, .. } if role == "targets"), "{err}");
}

#[test]
fn endless_data_is_capped() {
    let mut repo = Repo::new(true);
    let huge = vec![b' '; 20_000];
    repo.files.insert("timestamp.json".into(), huge);
    let err = Device::new(&repo).refresh(&repo).unwrap_err();
    assert!(matches!(err, TufError::TooLong { max: 16_384, .. }), "{err}");

    let mut repo = Repo::new(true);
    repo.add_target("t", b"12345");
    repo.publish();
    let h = hex::encode(Sha256::digest(b"12345"));
    repo.files.insert(format!("targets/{h}.t"), b"123456".to_vec());
    let err = Device::new(&repo).download(&repo, "t").unwrap_err();
    assert!(matches!(err, TufError::TooLong { max: 5, .. }), "{err}");
}

#[test]
fn tampered_target_is_refused() {
    let mut repo = Repo::new(false);
    repo.add_target("a/b.bin", b"genuine");
    repo.publish();
    repo.files.insert("targets/a/b.bin".into(), b"forgery".to_vec());
    let err = Device::new(&repo).download(&repo, "a/b.bin").unwrap_err();
    assert!(matches!(&err, TufError::LengthOrHashMismatch { reason, .. } if reason.contains("hash mismatch")), "{err}");
}

#[test]
fn fast_forward_recovery_after_timestamp_key_rotation() {
    let mut repo = Repo::new(true);
    repo.ts_v = 999;
    repo.publish_timestamp();
    let mut dev = Device::new(&repo);
    dev.refresh(&repo).unwrap();
    assert_eq!(dev.version("timestamp"), Some(1000));
    // Without rotation a reset timestamp is a rollback.
    repo.ts_v = 0;
    repo.publish_timestamp();
    assert!(matches!(dev.refresh(&repo).unwrap_err(), TufError::Rollback { .. }));
    // Rotate the timestamp key: the stored timestamp is discarded.
    repo.ts = ed_key(60);
    repo.rotate_root(vec![ed_key(1)], 1, FUTURE, true, true);
    repo.ts_v = 0;
    repo.publish_timestamp();
    dev.refresh(&repo).unwrap();
    assert_eq!(dev.version("timestamp"), Some(1));
}

#[test]
fn delegations_search_is_ordered_terminating_and_bounded() {
    let mut repo = Repo::new(true);
    let dk = ed_key(70);
    let mk_role = |name: &str, paths: Value, terminating: bool| {
        json!({"name": name, "keyids": [dk.id], "threshold": 1, "terminating": terminating, "paths": paths})
    };
    repo.delegations = Some(json!({"keys": {dk.id.clone(): dk.json.clone()},
        "roles": [mk_role("a", json!(["f/*"]), true), mk_role("b", json!(["f/*"]), false)]}));
    let data_a = b"in a".to_vec();
    let data_b = b"in b".to_vec();
    for (name, path, data) in [("a", "f/x", &data_a), ("b", "f/y", &data_b)] {
        let signed = json!({"_type": "targets", "spec_version": "1.0", "version": 1, "expires": FUTURE,
            "targets": {path: {"length": data.len(), "hashes": hashes(data)}}});
        let env = envelope(&signed, &[&dk]);
        repo.files.insert(format!("1.{name}.json"), env.clone());
        repo.delegated.push((name.into(), env, 1));
        let h = hex::encode(Sha256::digest(data));
        repo.files.insert(format!("targets/f/{h}.{}", &path[2..]), data.clone());
    }
    repo.publish();
    let mut dev = Device::new(&repo);
    assert_eq!(dev.download(&repo, "f/x").unwrap(), data_a);
    // "a" is terminating for f/*: "b" is never reached.
    let err = dev.download(&repo, "f/y").unwrap_err();
    assert!(matches!(err, TufError::TargetNotFound(_)), "{err}");
    assert!(dev.store.files.contains_key("a") && !dev.store.files.contains_key("b"));
}

#[test]
fn custom_target_metadata_is_readable() {
    let mut repo = Repo::new(false);
    repo.targets.insert(
        "m.vplan".into(),
        json!({"length": 1, "hashes": hashes(b"m"), "custom": {"tier": {"accelerator": "cuda"}, "rollout": 10}}),
    );
    repo.files.insert("targets/m.vplan".into(), b"m".to_vec());
    repo.publish();
    let mut dev = Device::new(&repo);
    let remote = MemRemote { files: repo.files.clone(), log: Vec::new() };
    let mut up = Updater::new(remote, dev.store.clone(), NOW, Limits::default()).unwrap();
    let info = up.target_info("m.vplan").unwrap();
    let custom: Value = info.custom().unwrap().into();
    assert_eq!(custom["tier"]["accelerator"], "cuda");
    assert_eq!(custom["rollout"], 10);
    assert_eq!(up.download_target(&info).unwrap(), b"m");
    dev.store = up.into_parts().1;
    assert!(dev.version("targets").is_some());
}

#[test]
fn ecdsa_key_verifies_and_wrong_signature_fails() {
    let k = p256_key(7);
    let pk = PublicKey::from_json(&Json::parse(&serde_json::to_vec(&k.json).unwrap()).unwrap(), "key").unwrap();
    let sig = k.sign(b"message");
    pk.verify(b"message", &sig).unwrap();
    assert!(pk.verify(b"massage", &sig).unwrap_err().contains("does not verify"));
    assert!(pk.verify(b"message", "zz").unwrap_err().contains("not hex"));
}

#[test]
fn mutated_metadata_never_panics_and_is_refused() {
    let repo = Repo::new(true);
    let base = repo.files["timestamp.json"].clone();
    let root = repo.initial_root();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut accepted = 0;
    for i in 0..3000 {
        let mut m = base.clone();
        match i % 3 {
            0 => {
                let p = (next() as usize) % m.len();
                m[p] ^= 1 << (next() % 8);
            }
            1 => m.truncate((next() as usize) % m.len()),
            _ => {
                let p = (next() as usize) % m.len();
                m.insert(p, (next() % 256) as u8);
            }
        }
        let mut set = TrustedSet::new(&root, NOW).unwrap();
        if set.update_timestamp(&m).is_ok() {
            accepted += 1;
            // Only changes outside the signed content (e.g. whitespace) may be accepted.
            let a = Json::parse(&m).unwrap();
            let b = Json::parse(&base).unwrap();
            assert_eq!(a.get("signed").unwrap().canonical(), b.get("signed").unwrap().canonical());
        }
    }
    assert!(accepted < 3000);
}
