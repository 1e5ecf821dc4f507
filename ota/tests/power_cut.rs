//! Power-cut safety: the whole update life cycle (install v2 by delta, trial boot, commit;
//! install v3, trial, health-gate revert; install v4 by full file, trial boots until the
//! boot counter reverts it) runs on a simulated medium that loses power at each storage
//! operation in turn. After every cut, and for each way the medium may have kept
//! un-synced data (lost, kept, torn), the device reboots and must boot a model that
//! verifies against its record and is byte-identical to a published version, with a
//! committed (last-known-good) slot that verifies, and must then still be able to update.

mod common;

use std::collections::HashMap;

use ota::artifact::ArchiveSmokeTest;
use ota::client::{self, HealthGates, MemStore, OtaError, TrialOutcome, TrialRun, Verdict};
use ota::repo::{DirRemote, Expiry, Keyring, ModelRelease, Repository, VariantArtifact};
use ota::rollout::{FleetPolicy, Offer, TargetMeta, TierReq};
use ota::slots::{SlotInfo, SlotStore};
use ota::storage::{CutMode, SimStorage, StorageError};
use ota::tuf::{Limits, Updater};
use sha2::{Digest, Sha256};

const NOW: i64 = 1_800_000_000;
const TRIES: u32 = 2;

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: std::path::PathBuf,
    root: Vec<u8>,
    arts: HashMap<u64, Vec<u8>>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let keys = Keyring::generate(1, 1, 1, 1).unwrap();
    let mut r = Repository::create(&repo, &keys, NOW, Expiry::from_now(NOW)).unwrap();
    let v1 = common::tiny(1);
    let v2 = common::fine_tune(&v1, 2);
    let v3 = common::head_only(&v2, 3);
    let v4 = common::fine_tune(&v3, 4);
    let mut arts = HashMap::new();
    arts.insert(1, v1.bytes());
    for (v, m) in [(1u64, &v1), (2, &v2), (3, &v3), (4, &v4)] {
        let rel = ModelRelease {
            model: "detector".into(),
            version: v,
            release: None,
            rollout_percent: 100,
            variants: vec![VariantArtifact { variant: "full".into(), bytes: m.bytes(), tier: TierReq::default() }],
            deltas: true,
        };
        r.publish_model(&rel).unwrap();
        arts.insert(v, m.bytes());
    }
    r.sign(&keys, NOW, Expiry::from_now(NOW)).unwrap();
    let root = std::fs::read(r.root_path()).unwrap();
    Fixture { _tmp: tmp, repo, root, arts }
}

fn updater(f: &Fixture) -> Updater<DirRemote, MemStore> {
    let mut store = MemStore::default();
    store.0.insert("root".into(), f.root.clone());
    Updater::new(DirRemote::new(&f.repo), store, NOW, Limits::default()).unwrap()
}

/// The offer for `version` with a delta from the committed model when one exists.
fn offer_for(up: &mut Updater<DirRemote, MemStore>, version: u64, installed_sha: &str) -> Offer {
    up.refresh().unwrap();
    let targets = client::trusted_targets(up);
    let full = targets.iter().find(|t| matches!(TargetMeta::of(t), Some(TargetMeta::Full { version: v, .. }) if v == version)).unwrap().clone();
    let delta = targets
        .iter()
        .find(|t| matches!(TargetMeta::of(t), Some(TargetMeta::Delta { ref full, ref base_sha256, .. }) if full.as_str() == full_path(version) && base_sha256 == installed_sha))
        .cloned();
    Offer { version, variant: "full".into(), release: format!("detector-{version}"), full, delta }
}

fn full_path(v: u64) -> String {
    format!("models/detector/{v}/full.vtar")
}

fn install(f: &Fixture, slots: &mut SlotStore<SimStorage>, version: u64, expect_delta: Option<bool>) -> Result<(), OtaError> {
    let mut up = updater(f);
    let sha = slots.state().committed_info().unwrap().sha256.clone();
    let offer = offer_for(&mut up, version, &sha);
    let staged = client::download(offer, &mut up, slots)?;
    if let Some(d) = expect_delta {
        assert_eq!(staged.via_delta(), d, "version {version}");
    }
    let tested = staged.verify(slots)?.smoke_test(slots, &ArchiveSmokeTest::default())?;
    tested.switch(slots, TRIES, HealthGates::default())?;
    Ok(())
}

fn finish(slots: &mut SlotStore<SimStorage>, verdict: Verdict) -> Result<TrialOutcome, OtaError> {
    let b = slots.boot()?;
    let t = TrialRun::resume(&b, HealthGates::default()).ok_or_else(|| OtaError::Refused("expected a trial boot".into()))?;
    t.finish(slots, &verdict, &FleetPolicy::default())
}

/// The full life cycle; returns at the first error (the power cut).
fn scenario(f: &Fixture, slots: &mut SlotStore<SimStorage>, check: bool) -> Result<(), OtaError> {
    slots.boot()?;
    install(f, slots, 2, check.then_some(true))?;
    let o = finish(slots, Verdict::Pass)?;
    if check {
        assert_eq!(o, TrialOutcome::Committed(2));
    }
    install(f, slots, 3, check.then_some(true))?;
    let o = finish(slots, Verdict::Fail("latency".into()))?;
    if check {
        assert!(matches!(o, TrialOutcome::Reverted(_)), "{o:?}");
        assert_eq!(slots.state().committed_info().unwrap().version, 2);
    }
    install(f, slots, 4, check.then_some(false))?;
    for _ in 0..TRIES {
        let b = slots.boot()?;
        if check {
            assert!(b.trial && b.info.version == 4);
        }
    }
    let b = slots.boot()?;
    if check {
        assert!(!b.trial && b.reverted && b.info.version == 2, "boot counter must revert to last-known-good");
    }
    Ok(())
}

fn provisioned(f: &Fixture) -> SimStorage {
    let v1 = &f.arts[&1];
    let info = SlotInfo { version: 1, variant: "full".into(), target: full_path(1), release: "detector-1".into(), sha256: hex::encode(Sha256::digest(v1)), length: v1.len() as u64 };
    SlotStore::provision(SimStorage::new(), v1, info).unwrap().into_storage().reboot(CutMode::LoseUnsynced)
}

fn check_bootable(f: &Fixture, medium: SimStorage, what: &str) -> Result<u64, String> {
    let mut st = SlotStore::open(medium).map_err(|e| format!("{what}: open: {e}"))?;
    let (lkg_info, lkg_bytes) = st.read_verified(st.state().committed).map_err(|e| format!("{what}: last-known-good does not verify: {e}"))?;
    if f.arts.get(&lkg_info.version) != Some(&lkg_bytes) {
        return Err(format!("{what}: last-known-good bytes differ from the published artifact"));
    }
    let b = st.boot().map_err(|e| format!("{what}: boot: {e}"))?;
    let published = f.arts.get(&b.info.version).ok_or_else(|| format!("{what}: booted unknown version {}", b.info.version))?;
    if &b.bytes != published {
        return Err(format!("{what}: booted bytes of version {} differ from the published artifact", b.info.version));
    }
    // The device must still be able to update after recovering.
    while st.state().trial.is_some() {
        st.boot().map_err(|e| format!("{what}: boot after recovery: {e}"))?;
    }
    if st.state().committed_info().unwrap().version < 4 {
        install(f, &mut st, 4, None).map_err(|e| format!("{what}: install after recovery: {e}"))?;
        let b = st.boot().map_err(|e| format!("{what}: trial boot after recovery: {e}"))?;
        if b.info.version != 4 || b.bytes != f.arts[&4] {
            return Err(format!("{what}: recovery install booted version {}", b.info.version));
        }
    }
    Ok(b.info.version)
}

#[test]
fn the_uncut_life_cycle_behaves() {
    let f = fixture();
    let mut slots = SlotStore::open(provisioned(&f)).unwrap();
    scenario(&f, &mut slots, true).unwrap();
}

#[test]
fn every_cut_point_leaves_a_verified_bootable_model() {
    let f = fixture();
    let base = provisioned(&f);
    let mut probe = SlotStore::open(base.clone()).unwrap();
    scenario(&f, &mut probe, false).unwrap();
    let total = probe.storage_mut().ops();
    assert!(total > 40, "the life cycle should touch storage many times, got {total}");
    let mut failures = Vec::new();
    let mut booted_versions = std::collections::BTreeSet::new();
    let mut runs = 0;
    for cut in 1..total {
        let mut slots = SlotStore::open(base.clone()).unwrap();
        slots.storage_mut().cut_power_at(cut);
        match scenario(&f, &mut slots, false) {
            Err(OtaError::Slots(ota::slots::SlotError::Storage(StorageError::PowerCut(n)))) => assert_eq!(n, cut),
            Err(OtaError::Slots(ota::slots::SlotError::Storage(e))) => panic!("cut {cut}: unexpected storage error {e}"),
            Err(e) if slots.storage_mut().is_dead() => {
                // The cut surfaced through another layer (e.g. verification reading a dead medium).
                let _ = e;
            }
            Err(e) => panic!("cut {cut}: scenario failed without a cut: {e}"),
            Ok(()) => panic!("cut {cut}: the scenario finished although the power was cut"),
        }
        let medium = slots.into_storage();
        for mode in [CutMode::LoseUnsynced, CutMode::KeepAll, CutMode::TornData] {
            runs += 1;
            match check_bootable(&f, medium.reboot(mode), &format!("cut at op {cut} ({mode:?})")) {
                Ok(v) => {
                    booted_versions.insert(v);
                }
                Err(e) => failures.push(e),
            }
        }
    }
    println!("{runs} cut/reboot combinations over {} cut points; booted versions {booted_versions:?}", total - 1);
    assert!(failures.is_empty(), "{} unbootable or inconsistent states:\n{}", failures.len(), failures.join("\n"));
    assert!(booted_versions.len() >= 3, "cuts should land in every phase: {booted_versions:?}");
}

#[test]
fn bit_rot_in_the_committed_slot_falls_back_to_the_other_verified_slot() {
    let f = fixture();
    let mut slots = SlotStore::open(provisioned(&f)).unwrap();
    slots.boot().unwrap();
    install(&f, &mut slots, 2, Some(true)).unwrap();
    finish(&mut slots, Verdict::Pass).unwrap();
    let c = slots.state().committed;
    let mut medium = slots.into_storage();
    medium.corrupt(c.file(), 100);
    let mut st = SlotStore::open(medium).unwrap();
    let b = st.boot().unwrap();
    assert_eq!(b.slot, c.other());
    assert_eq!(b.bytes, f.arts[&1], "the previous verified model boots; the rotten one never does");
}

#[test]
fn a_tampered_slot_is_never_switched_to() {
    let f = fixture();
    let mut slots = SlotStore::open(provisioned(&f)).unwrap();
    let mut up = updater(&f);
    let sha = slots.state().committed_info().unwrap().sha256.clone();
    let offer = offer_for(&mut up, 2, &sha);
    let staged = client::download(offer, &mut up, &mut slots).unwrap();
    // Something overwrites the inactive slot between download and verify.
    let slot = slots.state().committed.other();
    slots.storage_mut().corrupt(slot.file(), 7);
    let e = staged.verify(&mut slots).unwrap_err();
    assert!(e.to_string().contains("hash mismatch"), "{e}");
    assert!(slots.state().trial.is_none());
}
