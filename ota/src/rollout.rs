//! Targeting and rollout: which signed target this device should run.
//!
//! Every model target carries, in its TUF `custom` field (signed with the targets
//! metadata), a `vigil` object:
//!
//! ```json
//! {"vigil": {"kind": "full", "model": "detector", "version": 3, "variant": "full-int8",
//!            "release": "detector-3", "tier": {"accelerators": ["cuda"], "min_memory_mb": 4096,
//!            "min_runtime": 1, "rank": 10}}}
//! {"vigil": {"kind": "delta", "model": "detector", "version": 3, "variant": "full-int8",
//!            "full": "models/detector/3/full-int8.vtar", "base_version": 2, "base_sha256": "..."}}
//! ```
//!
//! The fleet policy is the target [`POLICY_TARGET`], whose `custom.vigil` is
//! `{"kind": "policy", "halt": false, "pin": null, "rollouts": {"detector-3": 10}}`:
//! `halt` stops every install and every commit; `pin` makes the fleet run exactly that
//! version (installing it even if older, reverting a trial of any other); `rollouts`
//! gives each release's percentage. A device is in a release's cohort when
//! [`cohort_bucket`] (sha256 of device id and release id, mod 100) is below it, so the
//! 1% cohort is inside the 10% cohort, and so on.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tuf::TargetFile;

/// Target path of the signed fleet policy.
pub const POLICY_TARGET: &str = "fleet/policy.json";

/// What a variant needs from the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TierReq {
    /// Accelerators it runs on (`cuda`, `wgsl`, `cpu`); empty: any.
    #[serde(default)]
    pub accelerators: Vec<String>,
    /// Least device memory, MiB.
    #[serde(default)]
    pub min_memory_mb: u64,
    /// Least runtime (plan format) version.
    #[serde(default)]
    pub min_runtime: u32,
    /// Preference among fitting variants: higher wins.
    #[serde(default)]
    pub rank: i32,
}

/// This device's tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTier {
    /// Accelerator available (`cuda`, `wgsl`, `cpu`).
    pub accelerator: String,
    /// Memory, MiB.
    pub memory_mb: u64,
    /// Runtime (plan format) version.
    pub runtime: u32,
}

impl TierReq {
    /// Whether a device of tier `d` can run this variant.
    pub fn fits(&self, d: &DeviceTier) -> bool {
        (self.accelerators.is_empty() || self.accelerators.iter().any(|a| a == &d.accelerator)) && d.memory_mb >= self.min_memory_mb && d.runtime >= self.min_runtime
    }
}

/// The `custom.vigil` object of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetMeta {
    /// A full model artifact.
    Full {
        /// Model name.
        model: String,
        /// Model version (monotonic per model).
        version: u64,
        /// Variant name.
        variant: String,
        /// Release identifier (cohorts hash it).
        release: String,
        /// Tier requirement.
        tier: TierReq,
    },
    /// A delta patch producing a full artifact from a base.
    Delta {
        /// Model name.
        model: String,
        /// Version produced.
        version: u64,
        /// Variant name.
        variant: String,
        /// Target path of the full artifact it produces (whose hashes verify the result).
        full: String,
        /// Version of the base.
        base_version: u64,
        /// sha256 of the base (hex).
        base_sha256: String,
    },
    /// The fleet policy.
    Policy(FleetPolicy),
}

/// The signed fleet policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FleetPolicy {
    /// Kill switch: no install starts and no trial commits.
    #[serde(default)]
    pub halt: bool,
    /// Fleet-wide pin to one model version.
    #[serde(default)]
    pub pin: Option<u64>,
    /// Rollout percentage per release (0..=100); a release not listed is at 0%.
    #[serde(default)]
    pub rollouts: std::collections::BTreeMap<String, u8>,
}

impl TargetMeta {
    /// Reads a target's `custom.vigil` (None when absent or not ours).
    pub fn of(t: &TargetFile) -> Option<TargetMeta> {
        let v: Value = t.custom()?.into();
        serde_json::from_value(v.get("vigil")?.clone()).ok()
    }
    /// As the `custom` object of a target.
    pub fn to_custom(&self) -> Value {
        serde_json::json!({ "vigil": self })
    }
}

/// The device's bucket (0..100) for `release`: deterministic, uniform, independent across releases.
pub fn cohort_bucket(device_id: &str, release: &str) -> u8 {
    let mut h = Sha256::new();
    h.update(device_id.as_bytes());
    h.update([0u8]);
    h.update(release.as_bytes());
    let d = h.finalize();
    let x = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (x % 100) as u8
}

/// Whether a device is in a release's cohort at `percent`.
pub fn in_cohort(device_id: &str, release: &str, percent: u8) -> bool {
    cohort_bucket(device_id, release) < percent.min(100)
}

/// A chosen update.
#[derive(Debug, Clone)]
pub struct Offer {
    /// Version offered.
    pub version: u64,
    /// Variant.
    pub variant: String,
    /// Release.
    pub release: String,
    /// The full artifact target.
    pub full: TargetFile,
    /// A delta from the installed (committed) model, when one is published.
    pub delta: Option<TargetFile>,
}

/// Why no update is offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoOffer {
    /// The kill switch is on.
    Halted,
    /// The newest fitting version is installed (or pinned and installed).
    UpToDate,
    /// A newer release exists but this device's bucket is outside its rollout.
    NotInCohort {
        /// Release.
        release: String,
        /// Device bucket.
        bucket: u8,
        /// Rollout percentage.
        percent: u8,
    },
    /// No published variant fits this device's tier.
    NoFittingVariant,
}

/// What the device has installed, for choosing.
#[derive(Debug, Clone)]
pub struct Installed<'a> {
    /// Committed version and sha256.
    pub version: u64,
    /// Committed artifact sha256 (hex).
    pub sha256: &'a str,
    /// Artifacts rejected before (never offered again).
    pub rejected: &'a [String],
}

/// The policy among `targets` (default when none is published).
pub fn policy<'a>(targets: impl IntoIterator<Item = &'a TargetFile>) -> FleetPolicy {
    for t in targets {
        if t.path() == POLICY_TARGET
            && let Some(TargetMeta::Policy(p)) = TargetMeta::of(t)
        {
            return p;
        }
    }
    FleetPolicy::default()
}

/// Picks the update for a device: honours the kill switch and the pin, then the newest
/// version above the installed one that has a variant fitting the tier (best rank),
/// subject to the release's cohort; attaches a delta from the installed artifact if published.
pub fn choose(targets: &[&TargetFile], model: &str, tier: &DeviceTier, device_id: &str, installed: &Installed<'_>) -> Result<Offer, NoOffer> {
    let pol = policy(targets.iter().copied());
    if pol.halt {
        return Err(NoOffer::Halted);
    }
    let mut fulls: Vec<(u64, i32, &TargetFile, String, String)> = Vec::new();
    for &t in targets {
        if let Some(TargetMeta::Full { model: m, version, variant, release, tier: req }) = TargetMeta::of(t)
            && m == model
            && req.fits(tier)
            && !installed.rejected.iter().any(|r| t.hashes().entries().iter().any(|(a, h)| a == "sha256" && h == r))
        {
            fulls.push((version, req.rank, t, variant, release));
        }
    }
    if fulls.is_empty() {
        return Err(NoOffer::NoFittingVariant);
    }
    // Newest version first, best rank first.
    fulls.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let pick = match pol.pin {
        Some(p) => {
            if p == installed.version {
                return Err(NoOffer::UpToDate);
            }
            fulls.iter().find(|f| f.0 == p).ok_or(NoOffer::NoFittingVariant)?
        }
        None => {
            let f = fulls.iter().find(|f| f.0 > installed.version).ok_or(NoOffer::UpToDate)?;
            let percent = pol.rollouts.get(&f.4).copied().unwrap_or(0);
            if !in_cohort(device_id, &f.4, percent) {
                return Err(NoOffer::NotInCohort { release: f.4.clone(), bucket: cohort_bucket(device_id, &f.4), percent });
            }
            f
        }
    };
    let (version, _, full, variant, release) = pick;
    let delta = targets
        .iter()
        .find(|t| matches!(TargetMeta::of(t), Some(TargetMeta::Delta { full: ref fp, ref base_sha256, .. }) if fp == full.path() && base_sha256 == installed.sha256))
        .map(|t| (*t).clone());
    Ok(Offer { version: *version, variant: variant.clone(), release: release.clone(), full: (*full).clone(), delta })
}

/// Whether a trial of `version` may commit under `policy` (kill switch and pin honoured before commit).
pub fn may_commit(policy: &FleetPolicy, version: u64) -> Result<(), String> {
    if policy.halt {
        return Err("fleet kill switch is on".into());
    }
    if let Some(p) = policy.pin
        && p != version
    {
        return Err(format!("fleet is pinned to version {p}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_are_nested_deterministic_and_near_uniform() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("vehicle-{i:05}")).collect();
        let count = |p: u8| ids.iter().filter(|id| in_cohort(id, "detector-7", p)).count();
        let (c1, c10, c50, c100) = (count(1), count(10), count(50), count(100));
        assert_eq!(c100, ids.len());
        assert!((50..=150).contains(&c1), "1%: {c1}");
        assert!((850..=1150).contains(&c10), "10%: {c10}");
        assert!((4700..=5300).contains(&c50), "50%: {c50}");
        for id in &ids {
            if in_cohort(id, "detector-7", 1) {
                assert!(in_cohort(id, "detector-7", 10) && in_cohort(id, "detector-7", 50));
            }
        }
        assert_eq!(cohort_bucket("v1", "r"), cohort_bucket("v1", "r"));
        // Different releases put a device in different buckets (early adopters rotate).
        let same = ids.iter().filter(|id| cohort_bucket(id, "a") == cohort_bucket(id, "b")).count();
        assert!(same < 300, "{same}");
    }

    fn target(path: &str, sha: &str, meta: &TargetMeta) -> TargetFile {
        let custom = crate::tuf::json::Json::parse(&serde_json::to_vec(&meta.to_custom()).unwrap()).unwrap();
        TargetFile { path: path.into(), length: 1, hashes: crate::tuf::metadata::Hashes(vec![("sha256".into(), sha.into())]), custom: Some(custom) }
    }

    fn full(v: u64, variant: &str, accel: &[&str], rank: i32) -> TargetMeta {
        let tier = TierReq { accelerators: accel.iter().map(|s| s.to_string()).collect(), min_memory_mb: 0, min_runtime: 0, rank };
        TargetMeta::Full { model: "detector".into(), version: v, variant: variant.into(), release: format!("detector-{v}"), tier }
    }

    #[test]
    fn choose_honours_tier_rank_delta_rejection_pin_and_halt() {
        let mut pol = FleetPolicy::default();
        pol.rollouts.insert("detector-2".into(), 100);
        pol.rollouts.insert("detector-3".into(), 100);
        let mut ts = vec![
            target("m/2/cuda.vtar", "c2", &full(2, "cuda", &["cuda"], 10)),
            target("m/2/lite.vtar", "l2", &full(2, "lite", &[], 1)),
            target("m/3/cuda.vtar", "c3", &full(3, "cuda", &["cuda"], 10)),
            target("m/3/cuda.from-2.vdelta", "d3", &TargetMeta::Delta { model: "detector".into(), version: 3, variant: "cuda".into(), full: "m/3/cuda.vtar".into(), base_version: 2, base_sha256: "c2".into() }),
            target(POLICY_TARGET, "p", &TargetMeta::Policy(pol.clone())),
        ];
        fn refs(ts: &[TargetFile]) -> Vec<&TargetFile> {
            ts.iter().collect()
        }
        let cpu = DeviceTier { accelerator: "cpu".into(), memory_mb: 4096, runtime: 1 };
        let gpu = DeviceTier { accelerator: "cuda".into(), memory_mb: 4096, runtime: 1 };
        let on = |v: u64, sha: &'static str| Installed { version: v, sha256: sha, rejected: &[] };
        // A CPU device gets the newest version that has a variant for it.
        let o = choose(&refs(&ts), "detector", &cpu, "v", &on(1, "x")).unwrap();
        assert_eq!((o.version, o.variant.as_str(), o.delta.is_none()), (2, "lite", true));
        // A CUDA device gets the best-ranked variant of the newest version, by delta from its base.
        let o = choose(&refs(&ts), "detector", &gpu, "v", &on(2, "c2")).unwrap();
        assert_eq!((o.version, o.variant.as_str()), (3, "cuda"));
        assert_eq!(o.delta.unwrap().path(), "m/3/cuda.from-2.vdelta");
        // No delta from another base.
        assert!(choose(&refs(&ts), "detector", &gpu, "v", &on(2, "other")).unwrap().delta.is_none());
        // A rejected artifact is skipped.
        let rej = ["c3".to_string()];
        let r = choose(&refs(&ts), "detector", &gpu, "v", &Installed { version: 2, sha256: "c2", rejected: &rej });
        assert_eq!(r.unwrap_err(), NoOffer::UpToDate);
        // Pin to 2: a device on 3 goes back to 2; a device on 2 stays.
        let mut pinned = pol.clone();
        pinned.pin = Some(2);
        ts.pop();
        ts.push(target(POLICY_TARGET, "p", &TargetMeta::Policy(pinned)));
        assert_eq!(choose(&refs(&ts), "detector", &gpu, "v", &on(3, "c3")).unwrap().version, 2);
        assert_eq!(choose(&refs(&ts), "detector", &gpu, "v", &on(2, "c2")).unwrap_err(), NoOffer::UpToDate);
        // Halt: nothing.
        let mut halted = pol;
        halted.halt = true;
        ts.pop();
        ts.push(target(POLICY_TARGET, "p", &TargetMeta::Policy(halted)));
        assert_eq!(choose(&refs(&ts), "detector", &gpu, "v", &on(1, "x")).unwrap_err(), NoOffer::Halted);
    }

    #[test]
    fn tier_fit() {
        let d = DeviceTier { accelerator: "cuda".into(), memory_mb: 8192, runtime: 2 };
        assert!(TierReq::default().fits(&d));
        assert!(TierReq { accelerators: vec!["cuda".into()], min_memory_mb: 4096, min_runtime: 2, rank: 0 }.fits(&d));
        assert!(!TierReq { accelerators: vec!["wgsl".into()], ..Default::default() }.fits(&d));
        assert!(!TierReq { min_memory_mb: 16384, ..Default::default() }.fits(&d));
        assert!(!TierReq { min_runtime: 3, ..Default::default() }.fits(&d));
    }
}
