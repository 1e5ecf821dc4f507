//! TUF 1.0 metadata, parsed into types whose fields can only hold values the
//! specification allows. Fields are private to the crate; values come only from
//! [`Metadata::parse`] and friends, which reject anything malformed with the field named.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256, Sha512};

use super::error::TufError;
use super::json::Json;
use super::keys::PublicKey;

/// The four top-level role names; a delegated role may not use them.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// One entry of `signatures`.
#[derive(Debug, Clone)]
pub struct Signature {
    pub(crate) keyid: String,
    pub(crate) sig: String,
}

/// The parts of `signed` every role has.
#[derive(Debug, Clone)]
pub struct Common {
    pub(crate) version: u64,
    pub(crate) spec_version: String,
    pub(crate) expires: String,
    pub(crate) expires_unix: i64,
}

impl Common {
    /// The metadata version (at least 1).
    pub fn version(&self) -> u64 {
        self.version
    }
    /// `expires` in seconds since the Unix epoch.
    pub fn expires_unix(&self) -> i64 {
        self.expires_unix
    }
    /// The `spec_version` string (major version 1).
    pub fn spec_version(&self) -> &str {
        &self.spec_version
    }
}

/// Key ids and threshold of a role.
#[derive(Debug, Clone)]
pub struct Role {
    pub(crate) keyids: Vec<String>,
    pub(crate) threshold: u32,
}

impl Role {
    /// Key ids, unique.
    pub fn keyids(&self) -> &[String] {
        &self.keyids
    }
    /// Signatures required (at least 1).
    pub fn threshold(&self) -> u32 {
        self.threshold
    }
}

/// `root` metadata.
#[derive(Debug, Clone)]
pub struct Root {
    pub(crate) common: Common,
    pub(crate) consistent_snapshot: bool,
    pub(crate) keys: BTreeMap<String, PublicKey>,
    pub(crate) root: Role,
    pub(crate) timestamp: Role,
    pub(crate) snapshot: Role,
    pub(crate) targets: Role,
}

impl Root {
    /// Version, expiry, spec version.
    pub fn common(&self) -> &Common {
        &self.common
    }
    /// Whether the repository publishes consistent snapshots.
    pub fn consistent_snapshot(&self) -> bool {
        self.consistent_snapshot
    }
    /// The role definition for a top-level role name.
    pub fn role(&self, name: &str) -> Option<&Role> {
        match name {
            "root" => Some(&self.root),
            "timestamp" => Some(&self.timestamp),
            "snapshot" => Some(&self.snapshot),
            "targets" => Some(&self.targets),
            _ => None,
        }
    }
    /// Fingerprints of the keys of a top-level role and its threshold, to detect rotation.
    pub(crate) fn role_key_set(&self, name: &str) -> (BTreeSet<Vec<u8>>, u32) {
        let Some(role) = self.role(name) else { return (BTreeSet::new(), 0) };
        let set = role.keyids.iter().filter_map(|k| self.keys.get(k)).map(PublicKey::fingerprint).collect();
        (set, role.threshold)
    }
}

/// A `meta` entry of timestamp or snapshot.
#[derive(Debug, Clone)]
pub struct MetaFile {
    pub(crate) version: u64,
    pub(crate) length: Option<u64>,
    pub(crate) hashes: Option<Hashes>,
}

impl MetaFile {
    /// Version of the referenced file.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Stated length, if any.
    pub fn length(&self) -> Option<u64> {
        self.length
    }
    /// Checks `data` against the stated length and hashes (those stated only).
    pub fn verify(&self, what: &str, data: &[u8]) -> Result<(), TufError> {
        if let Some(len) = self.length {
            check_length(what, data, len)?;
        }
        if let Some(h) = &self.hashes {
            h.verify(what, data)?;
        }
        Ok(())
    }
}

/// Hash algorithm name to lowercase hex digest, in document order, at least one.
#[derive(Debug, Clone)]
pub struct Hashes(pub(crate) Vec<(String, String)>);

impl Hashes {
    /// The first listed digest (hex), used for consistent-snapshot target file names.
    pub fn first_hex(&self) -> &str {
        &self.0[0].1
    }
    /// `(algorithm, hex digest)` pairs in document order.
    pub fn entries(&self) -> &[(String, String)] {
        &self.0
    }
    /// Every listed hash must match; an algorithm this client lacks is a mismatch.
    pub fn verify(&self, what: &str, data: &[u8]) -> Result<(), TufError> {
        for (alg, want) in &self.0 {
            let got = match alg.as_str() {
                "sha256" => hex::encode(Sha256::digest(data)),
                "sha512" => hex::encode(Sha512::digest(data)),
                other => {
                    return Err(TufError::LengthOrHashMismatch {
                        what: what.to_string(),
                        reason: format!("unsupported hash algorithm {other:?}"),
                    });
                }
            };
            if !got.eq_ignore_ascii_case(want) {
                return Err(TufError::LengthOrHashMismatch {
                    what: what.to_string(),
                    reason: format!("{alg} hash mismatch: expected {want}, got {got}"),
                });
            }
        }
        Ok(())
    }
}

fn check_length(what: &str, data: &[u8], len: u64) -> Result<(), TufError> {
    if data.len() as u64 != len {
        return Err(TufError::LengthOrHashMismatch {
            what: what.to_string(),
            reason: format!("length mismatch: expected {len} bytes, got {}", data.len()),
        });
    }
    Ok(())
}

/// `timestamp` metadata.
#[derive(Debug, Clone)]
pub struct Timestamp {
    pub(crate) common: Common,
    pub(crate) snapshot_meta: MetaFile,
}

impl Timestamp {
    /// Version, expiry.
    pub fn common(&self) -> &Common {
        &self.common
    }
    /// The `snapshot.json` entry.
    pub fn snapshot_meta(&self) -> &MetaFile {
        &self.snapshot_meta
    }
}

/// `snapshot` metadata.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) common: Common,
    pub(crate) meta: BTreeMap<String, MetaFile>,
}

impl Snapshot {
    /// Version, expiry.
    pub fn common(&self) -> &Common {
        &self.common
    }
    /// The entry for `ROLE.json`.
    pub fn meta(&self, file: &str) -> Option<&MetaFile> {
        self.meta.get(file)
    }
}

/// One entry of `targets`.
#[derive(Debug, Clone)]
pub struct TargetFile {
    pub(crate) path: String,
    pub(crate) length: u64,
    pub(crate) hashes: Hashes,
    pub(crate) custom: Option<Json>,
}

impl TargetFile {
    /// The target path.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Exact length in bytes.
    pub fn length(&self) -> u64 {
        self.length
    }
    /// Hashes (at least one).
    pub fn hashes(&self) -> &Hashes {
        &self.hashes
    }
    /// The `custom` object, if present.
    pub fn custom(&self) -> Option<&Json> {
        self.custom.as_ref()
    }
    /// Checks a downloaded target's length and every hash.
    pub fn verify(&self, data: &[u8]) -> Result<(), TufError> {
        let what = format!("target {:?}", self.path);
        check_length(&what, data, self.length)?;
        self.hashes.verify(&what, data)
    }
}

/// Which target paths a delegation covers.
#[derive(Debug, Clone)]
pub enum PathSpec {
    /// Shell-style patterns matched per `/`-separated segment.
    Patterns(Vec<String>),
    /// Hex prefixes of the SHA-256 of the target path.
    HashPrefixes(Vec<String>),
}

/// A delegated role in an explicit `roles` list.
#[derive(Debug, Clone)]
pub struct DelegatedRole {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) terminating: bool,
    pub(crate) paths: PathSpec,
}

impl DelegatedRole {
    /// Whether `target` falls under this delegation.
    pub fn covers(&self, target: &str) -> bool {
        match &self.paths {
            PathSpec::Patterns(ps) => ps.iter().any(|p| path_matches(target, p)),
            PathSpec::HashPrefixes(ps) => {
                let h = hex::encode(Sha256::digest(target.as_bytes()));
                ps.iter().any(|p| h.starts_with(p.as_str()))
            }
        }
    }
}

/// Succinct hash-bin delegation (TAP 15): `2^bit_length` bins named `PREFIX-HEX`.
#[derive(Debug, Clone)]
pub struct SuccinctRoles {
    pub(crate) role: Role,
    pub(crate) bit_length: u32,
    pub(crate) name_prefix: String,
}

impl SuccinctRoles {
    /// The bin role responsible for `target`.
    pub fn role_for(&self, target: &str) -> String {
        let d = Sha256::digest(target.as_bytes());
        let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> (32 - self.bit_length);
        let width = format!("{:x}", (1u64 << self.bit_length) - 1).len();
        format!("{}-{:0width$x}", self.name_prefix, n)
    }
    /// Whether `name` is one of the bins.
    pub fn is_bin(&self, name: &str) -> bool {
        let Some(suffix) = name.strip_prefix(&self.name_prefix).and_then(|s| s.strip_prefix('-')) else {
            return false;
        };
        let width = format!("{:x}", (1u64 << self.bit_length) - 1).len();
        suffix.len() == width
            && suffix.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            && u64::from_str_radix(suffix, 16).is_ok_and(|n| n < (1u64 << self.bit_length))
    }
}

/// Roles delegated to: an ordered list, or succinct hash bins.
#[derive(Debug, Clone)]
pub enum DelegatedRoles {
    /// Explicit roles in priority order.
    List(Vec<DelegatedRole>),
    /// Hash bins.
    Succinct(SuccinctRoles),
}

/// `delegations` of a targets role.
#[derive(Debug, Clone)]
pub struct Delegations {
    pub(crate) keys: BTreeMap<String, PublicKey>,
    pub(crate) roles: DelegatedRoles,
}

impl Delegations {
    /// Roles to visit for `target`, in order, each with its `terminating` flag.
    pub fn roles_for(&self, target: &str) -> Vec<(String, bool)> {
        match &self.roles {
            DelegatedRoles::List(list) => {
                list.iter().filter(|r| r.covers(target)).map(|r| (r.name.clone(), r.terminating)).collect()
            }
            DelegatedRoles::Succinct(s) => vec![(s.role_for(target), true)],
        }
    }
    /// The key ids and threshold for delegated role `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        match &self.roles {
            DelegatedRoles::List(list) => list.iter().find(|r| r.name == name).map(|r| &r.role),
            DelegatedRoles::Succinct(s) => s.is_bin(name).then_some(&s.role),
        }
    }
}

/// `targets` metadata (top-level or delegated).
#[derive(Debug, Clone)]
pub struct Targets {
    pub(crate) common: Common,
    pub(crate) targets: BTreeMap<String, TargetFile>,
    pub(crate) delegations: Option<Delegations>,
}

impl Targets {
    /// Version, expiry.
    pub fn common(&self) -> &Common {
        &self.common
    }
    /// The entry for `path`.
    pub fn target(&self, path: &str) -> Option<&TargetFile> {
        self.targets.get(path)
    }
    /// All targets, by path.
    pub fn targets(&self) -> impl Iterator<Item = &TargetFile> {
        self.targets.values()
    }
    /// Delegations, if any.
    pub fn delegations(&self) -> Option<&Delegations> {
        self.delegations.as_ref()
    }
}

/// The `signed` part of a metadata file.
#[derive(Debug, Clone)]
pub enum Signed {
    /// root
    Root(Root),
    /// timestamp
    Timestamp(Timestamp),
    /// snapshot
    Snapshot(Snapshot),
    /// targets, top-level or delegated
    Targets(Targets),
}

impl Signed {
    /// The `_type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Signed::Root(_) => "root",
            Signed::Timestamp(_) => "timestamp",
            Signed::Snapshot(_) => "snapshot",
            Signed::Targets(_) => "targets",
        }
    }
    /// Version and expiry.
    pub fn common(&self) -> &Common {
        match self {
            Signed::Root(r) => &r.common,
            Signed::Timestamp(t) => &t.common,
            Signed::Snapshot(s) => &s.common,
            Signed::Targets(t) => &t.common,
        }
    }
}

/// A parsed metadata file: its signed content, the canonical bytes signatures cover,
/// and the signatures.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub(crate) signed: Signed,
    pub(crate) canonical: Vec<u8>,
    pub(crate) signatures: Vec<Signature>,
}

impl Metadata {
    /// Parses a metadata file; `what` names it in errors (e.g. `"2.root.json"`).
    pub fn parse(bytes: &[u8], what: &str) -> Result<Metadata, TufError> {
        let doc = Json::parse(bytes).map_err(|e| TufError::malformed(what, e.to_string()))?;
        let Json::Object(_) = &doc else {
            return Err(TufError::malformed(what, "top level must be an object"));
        };
        let signed_json = doc.get("signed").ok_or_else(|| TufError::malformed(what, "missing field \"signed\""))?;
        let sigs = match doc.get("signatures") {
            Some(Json::Array(a)) => a,
            Some(_) => return Err(TufError::malformed(what, "\"signatures\" must be an array")),
            None => return Err(TufError::malformed(what, "missing field \"signatures\"")),
        };
        let mut signatures = Vec::with_capacity(sigs.len());
        for (i, s) in sigs.iter().enumerate() {
            let f = |name: &str| match s.get(name) {
                Some(Json::Str(v)) => Ok(v.clone()),
                _ => Err(TufError::malformed(what, format!("signatures[{i}].{name} must be a string"))),
            };
            signatures.push(Signature { keyid: f("keyid")?, sig: f("sig")? });
        }
        let signed = parse_signed(signed_json, what)?;
        Ok(Metadata { signed, canonical: signed_json.canonical(), signatures })
    }

    /// The signed content.
    pub fn signed(&self) -> &Signed {
        &self.signed
    }
}

// ---------------------------------------------------------------------------
// field readers

struct Obj<'a> {
    v: &'a Json,
    what: &'a str,
    ctx: String,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Json, what: &'a str, ctx: &str) -> Result<Self, TufError> {
        if !matches!(v, Json::Object(_)) {
            return Err(TufError::malformed(what, format!("{ctx} must be an object, found {}", v.kind())));
        }
        Ok(Obj { v, what, ctx: ctx.to_string() })
    }
    fn name(&self, f: &str) -> String {
        if self.ctx.is_empty() { f.to_string() } else { format!("{}.{f}", self.ctx) }
    }
    fn err(&self, f: &str, reason: &str) -> TufError {
        TufError::malformed(self.what, format!("field {:?} {reason}", self.name(f)))
    }
    fn opt(&self, f: &str) -> Option<&'a Json> {
        self.v.get(f)
    }
    fn req(&self, f: &str) -> Result<&'a Json, TufError> {
        self.v.get(f).ok_or_else(|| self.err(f, "is missing"))
    }
    fn str(&self, f: &str) -> Result<&'a str, TufError> {
        match self.req(f)? {
            Json::Str(s) => Ok(s),
            o => Err(self.err(f, &format!("must be a string, found {}", o.kind()))),
        }
    }
    fn bool_opt(&self, f: &str) -> Result<Option<bool>, TufError> {
        match self.opt(f) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(o) => Err(self.err(f, &format!("must be a boolean, found {}", o.kind()))),
        }
    }
    fn int(&self, f: &str, min: i64) -> Result<u64, TufError> {
        match self.req(f)? {
            Json::Int(n) if *n >= min => Ok(*n as u64),
            Json::Int(n) => Err(self.err(f, &format!("must be at least {min}, found {n}"))),
            o => Err(self.err(f, &format!("must be an integer, found {}", o.kind()))),
        }
    }
    fn members(&self, f: &str) -> Result<&'a [(String, Json)], TufError> {
        match self.req(f)? {
            Json::Object(m) => Ok(m),
            o => Err(self.err(f, &format!("must be an object, found {}", o.kind()))),
        }
    }
    fn str_list(&self, f: &str, unique: bool) -> Result<Vec<String>, TufError> {
        let Json::Array(a) = self.req(f)? else {
            return Err(self.err(f, "must be an array of strings"));
        };
        let mut out: Vec<String> = Vec::with_capacity(a.len());
        for v in a {
            let Json::Str(s) = v else { return Err(self.err(f, "must be an array of strings")) };
            if unique && out.contains(s) {
                return Err(self.err(f, &format!("lists {s:?} twice")));
            }
            out.push(s.clone());
        }
        Ok(out)
    }
}

/// Seconds since the epoch for a `YYYY-MM-DDTHH:MM:SSZ` timestamp.
pub fn parse_expires(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        if t.bytes().all(|c| c.is_ascii_digit()) { t.parse().ok() } else { None }
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > mdays[(mo - 1) as usize] || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    // Days from civil date (proleptic Gregorian), Howard Hinnant's algorithm.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

fn parse_common(o: &Obj<'_>, what: &str) -> Result<Common, TufError> {
    let version = o.int("version", 1)?;
    let spec_version = o.str("spec_version")?.to_string();
    let parts: Vec<&str> = spec_version.split('.').collect();
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())) {
        return Err(TufError::malformed(what, format!("spec_version {spec_version:?} is not MAJOR.MINOR[.PATCH]")));
    }
    if parts[0] != "1" {
        return Err(TufError::malformed(what, format!("unsupported spec_version {spec_version:?} (major version must be 1)")));
    }
    let expires = o.str("expires")?.to_string();
    let expires_unix = parse_expires(&expires)
        .ok_or_else(|| TufError::malformed(what, format!("expires {expires:?} is not YYYY-MM-DDTHH:MM:SSZ")))?;
    Ok(Common { version, spec_version, expires, expires_unix })
}

fn parse_role(v: &Json, what: &str, ctx: &str, keys: &BTreeMap<String, PublicKey>) -> Result<Role, TufError> {
    let o = Obj::new(v, what, ctx)?;
    let keyids = o.str_list("keyids", true)?;
    let threshold = o.int("threshold", 1)?;
    let threshold = u32::try_from(threshold).map_err(|_| o.err("threshold", "is too large"))?;
    if let Some(k) = keyids.iter().find(|k| !keys.contains_key(*k)) {
        return Err(o.err("keyids", &format!("names key {k:?} that is not in \"keys\"")));
    }
    Ok(Role { keyids, threshold })
}

fn parse_keys(v: &Json, what: &str, ctx: &str) -> Result<BTreeMap<String, PublicKey>, TufError> {
    let Json::Object(m) = v else {
        return Err(TufError::malformed(what, format!("{ctx} must be an object")));
    };
    let mut keys = BTreeMap::new();
    for (id, k) in m {
        keys.insert(id.clone(), PublicKey::from_json(k, &format!("{what} {ctx}[{id:?}]"))?);
    }
    Ok(keys)
}

fn parse_hashes(v: &Json, what: &str, ctx: &str) -> Result<Hashes, TufError> {
    let Json::Object(m) = v else {
        return Err(TufError::malformed(what, format!("{ctx}.hashes must be an object")));
    };
    if m.is_empty() {
        return Err(TufError::malformed(what, format!("{ctx}.hashes must not be empty")));
    }
    let mut out = Vec::with_capacity(m.len());
    for (alg, h) in m {
        let Json::Str(h) = h else {
            return Err(TufError::malformed(what, format!("{ctx}.hashes[{alg:?}] must be a string")));
        };
        out.push((alg.clone(), h.clone()));
    }
    Ok(Hashes(out))
}

fn parse_metafile(v: &Json, what: &str, ctx: &str) -> Result<MetaFile, TufError> {
    let o = Obj::new(v, what, ctx)?;
    let version = o.int("version", 1)?;
    let length = match o.opt("length") {
        None => None,
        Some(_) => Some(o.int("length", 1)?),
    };
    let hashes = match o.opt("hashes") {
        None => None,
        Some(h) => Some(parse_hashes(h, what, ctx)?),
    };
    Ok(MetaFile { version, length, hashes })
}

fn parse_signed(v: &Json, what: &str) -> Result<Signed, TufError> {
    let o = Obj::new(v, what, "signed")?;
    let ty = o.str("_type")?;
    let common = parse_common(&o, what)?;
    match ty {
        "root" => {
            let consistent_snapshot = o.bool_opt("consistent_snapshot")?.unwrap_or(false);
            let keys = parse_keys(o.req("keys")?, what, "signed.keys")?;
            let roles = o.members("roles")?;
            for (name, _) in roles {
                if !TOP_LEVEL_ROLES.contains(&name.as_str()) {
                    return Err(TufError::malformed(what, format!("signed.roles has unknown role {name:?}")));
                }
            }
            let get = |n: &str| -> Result<Role, TufError> {
                let r = roles
                    .iter()
                    .find(|(k, _)| k == n)
                    .ok_or_else(|| TufError::malformed(what, format!("signed.roles is missing role {n:?}")))?;
                parse_role(&r.1, what, &format!("signed.roles.{n}"), &keys)
            };
            let (root, timestamp, snapshot, targets) = (get("root")?, get("timestamp")?, get("snapshot")?, get("targets")?);
            Ok(Signed::Root(Root { common, consistent_snapshot, keys, root, timestamp, snapshot, targets }))
        }
        "timestamp" => {
            let meta = o.members("meta")?;
            if meta.len() != 1 || meta[0].0 != "snapshot.json" {
                return Err(TufError::malformed(what, "signed.meta must list exactly \"snapshot.json\""));
            }
            let snapshot_meta = parse_metafile(&meta[0].1, what, "signed.meta[\"snapshot.json\"]")?;
            Ok(Signed::Timestamp(Timestamp { common, snapshot_meta }))
        }
        "snapshot" => {
            let mut meta = BTreeMap::new();
            for (name, m) in o.members("meta")? {
                meta.insert(name.clone(), parse_metafile(m, what, &format!("signed.meta[{name:?}]"))?);
            }
            Ok(Signed::Snapshot(Snapshot { common, meta }))
        }
        "targets" => {
            let mut targets = BTreeMap::new();
            for (path, t) in o.members("targets")? {
                let ctx = format!("signed.targets[{path:?}]");
                let to = Obj::new(t, what, &ctx)?;
                let length = to.int("length", 0)?;
                let hashes = parse_hashes(to.req("hashes")?, what, &ctx)?;
                let custom = to.opt("custom").cloned();
                targets.insert(path.clone(), TargetFile { path: path.clone(), length, hashes, custom });
            }
            let delegations = match o.opt("delegations") {
                None => None,
                Some(d) => Some(parse_delegations(d, what)?),
            };
            Ok(Signed::Targets(Targets { common, targets, delegations }))
        }
        other => Err(TufError::malformed(what, format!("unknown signed._type {other:?}"))),
    }
}

fn parse_delegations(v: &Json, what: &str) -> Result<Delegations, TufError> {
    let o = Obj::new(v, what, "signed.delegations")?;
    let keys = parse_keys(o.req("keys")?, what, "signed.delegations.keys")?;
    let roles = match (o.opt("roles"), o.opt("succinct_roles")) {
        (Some(_), Some(_)) => {
            return Err(TufError::malformed(what, "signed.delegations has both \"roles\" and \"succinct_roles\""));
        }
        (None, None) => {
            return Err(TufError::malformed(what, "signed.delegations needs \"roles\" or \"succinct_roles\""));
        }
        (Some(Json::Array(list)), None) => {
            let mut out: Vec<DelegatedRole> = Vec::with_capacity(list.len());
            for (i, r) in list.iter().enumerate() {
                let ctx = format!("signed.delegations.roles[{i}]");
                let ro = Obj::new(r, what, &ctx)?;
                let name = ro.str("name")?.to_string();
                if TOP_LEVEL_ROLES.contains(&name.as_str()) {
                    return Err(ro.err("name", &format!("uses top-level role name {name:?}")));
                }
                if out.iter().any(|x| x.name == name) {
                    return Err(ro.err("name", &format!("delegates to {name:?} twice")));
                }
                let role = parse_role(r, what, &ctx, &keys)?;
                let terminating = ro.bool_opt("terminating")?.unwrap_or(false);
                let paths = match (ro.opt("paths"), ro.opt("path_hash_prefixes")) {
                    (Some(_), None) => PathSpec::Patterns(ro.str_list("paths", false)?),
                    (None, Some(_)) => PathSpec::HashPrefixes(ro.str_list("path_hash_prefixes", false)?),
                    _ => return Err(ro.err("paths", "exactly one of paths and path_hash_prefixes must be given")),
                };
                out.push(DelegatedRole { name, role, terminating, paths });
            }
            DelegatedRoles::List(out)
        }
        (Some(_), None) => return Err(TufError::malformed(what, "signed.delegations.roles must be an array")),
        (None, Some(s)) => {
            let ctx = "signed.delegations.succinct_roles";
            let so = Obj::new(s, what, ctx)?;
            let role = parse_role(s, what, ctx, &keys)?;
            let bit_length = so.int("bit_length", 1)?;
            if bit_length > 32 {
                return Err(so.err("bit_length", "must be between 1 and 32"));
            }
            let name_prefix = so.str("name_prefix")?.to_string();
            DelegatedRoles::Succinct(SuccinctRoles { role, bit_length: bit_length as u32, name_prefix })
        }
    };
    Ok(Delegations { keys, roles })
}

/// Shell-style match of a target path against a delegation pattern, segment by segment:
/// both must have the same number of `/`-separated segments; `*` matches any run of
/// characters within a segment, `?` one character, `[...]`/`[!...]` a set.
pub fn path_matches(target: &str, pattern: &str) -> bool {
    let t: Vec<&str> = target.split('/').collect();
    let p: Vec<&str> = pattern.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| glob(a.as_bytes(), b.as_bytes()))
}

fn glob(s: &[u8], p: &[u8]) -> bool {
    // Iterative wildcard match with single-star backtracking; bounded by |s| * |p|.
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    si += 1;
                    pi += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(s[si], &p[pi..]) {
                        if matched {
                            si += 1;
                            pi += next;
                            continue;
                        }
                    } else if s[si] == b'[' {
                        si += 1;
                        pi += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    si += 1;
                    pi += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against a `[...]` class at the start of `p`; returns (matched, class length),
/// or `None` when the bracket is not a complete class (then it is a literal `[`).
fn class(c: u8, p: &[u8]) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some(b'!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    loop {
        let &x = p.get(i)?;
        if x == b']' && i > start {
            return Some((matched != negate, i + 1));
        }
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&e| e != b']') {
            let e = p[i + 2];
            if x <= c && c <= e {
                matched = true;
            }
            i += 3;
        } else {
            if x == c {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_parses_strict_utc() {
        assert_eq!(parse_expires("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_expires("2030-01-01T00:00:00Z"), Some(1_893_456_000));
        assert_eq!(parse_expires("2024-02-29T12:00:01Z"), Some(1_709_208_001));
        assert_eq!(parse_expires("2023-02-29T12:00:00Z"), None);
        assert_eq!(parse_expires("2030-01-01T00:00:00+00:00"), None);
        assert_eq!(parse_expires("2030-01-01 00:00:00Z"), None);
    }

    #[test]
    fn path_patterns_match_per_segment() {
        assert!(path_matches("models/a.vplan", "models/*"));
        assert!(!path_matches("models/x/a.vplan", "models/*"));
        assert!(path_matches("models/x/a.vplan", "models/*/*.vplan"));
        assert!(path_matches("a1", "a?"));
        assert!(path_matches("b", "[abc]"));
        assert!(!path_matches("d", "[abc]"));
        assert!(path_matches("d", "[!abc]"));
        assert!(path_matches("f5", "f[0-9]"));
        assert!(path_matches("file.txt", "*.txt"));
        assert!(!path_matches("file.txt.bak", "*.txt"));
        assert!(path_matches("abcabd", "*ab?"));
    }

    #[test]
    fn succinct_bins_are_named_and_recognised() {
        let s = SuccinctRoles { role: Role { keyids: vec![], threshold: 1 }, bit_length: 8, name_prefix: "bin".into() };
        let name = s.role_for("a/b.txt");
        assert!(name.starts_with("bin-") && name.len() == 6, "{name}");
        assert!(s.is_bin(&name));
        assert!(!s.is_bin("bin-100") && !s.is_bin("bin-1") && !s.is_bin("other-00"));
    }
}
