//! Randomized kill -9 soak of the real device binary: `vigil-ota run` boots, installs
//! whatever the repository offers, runs the trial and commits, while this test kills it
//! (SIGKILL) at a random instant, over and over; new versions are published as the
//! device catches up. After every kill the device directory must hold a state record
//! that verifies and a model that boots and verifies.
//!
//! CI runs 60 kills (seconds); set `VIGIL_OTA_SOAK_KILLS=1000` for the soak.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ota::repo::{Expiry, Keyring, ModelRelease, Repository, VariantArtifact};
use ota::rollout::TierReq;
use ota::slots::{SlotInfo, SlotStore};
use ota::storage::FsStorage;
use rand::{Rng as _, SeedableRng as _};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_vigil-ota");

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn publish(repo: &mut Repository, keys: &Keyring, version: u64, bytes: Vec<u8>) {
    let rel = ModelRelease {
        model: "detector".into(),
        version,
        release: None,
        rollout_percent: 100,
        variants: vec![VariantArtifact { variant: "full".into(), bytes, tier: TierReq::default() }],
        deltas: true,
    };
    repo.publish_model(&rel).unwrap();
    repo.sign(keys, now(), Expiry::from_now(now())).unwrap();
}

fn provision(dev: &Path, repo: &Path, root: &[u8], v1: &[u8]) {
    std::fs::create_dir_all(dev.join("metadata")).unwrap();
    std::fs::write(dev.join("metadata/root.json"), root).unwrap();
    let cfg = ota::client::DeviceConfig {
        device_id: "soak-vehicle".into(),
        model: "detector".into(),
        tier: ota::rollout::DeviceTier { accelerator: "cpu".into(), memory_mb: 4096, runtime: 1 },
        trial_boots: 3,
        gates: ota::client::HealthGates { frames: 15, max_latency_us: 33_000, max_violations_per_mille: 10 },
        repository: repo.display().to_string(),
    };
    std::fs::write(dev.join("device.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let info = SlotInfo { version: 1, variant: "full".into(), target: String::new(), release: "factory".into(), sha256: hex::encode(Sha256::digest(v1)), length: v1.len() as u64 };
    SlotStore::provision(FsStorage::open(dev.join("slots")).unwrap(), v1, info).unwrap();
}

#[test]
fn random_kills_never_leave_an_unbootable_device() {
    let kills: usize = std::env::var("VIGIL_OTA_SOAK_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let tmp = tempfile::tempdir().unwrap();
    let (repo_dir, dev) = (tmp.path().join("repo"), tmp.path().join("device"));
    let keys = Keyring::generate(1, 1, 1, 1).unwrap();
    let mut repo = Repository::create(&repo_dir, &keys, now(), Expiry::from_now(now())).unwrap();
    let mut model = common::tiny(100);
    let mut arts = std::collections::HashMap::new();
    arts.insert(1u64, model.bytes());
    publish(&mut repo, &keys, 1, model.bytes());
    provision(&dev, &repo_dir, &std::fs::read(repo.root_path()).unwrap(), &model.bytes());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x50a6);
    let mut latest = 1u64;
    let (mut unbootable, mut commits_seen, mut trials_seen) = (Vec::new(), std::collections::BTreeSet::new(), 0usize);
    for k in 0..kills {
        let committed = {
            let st = SlotStore::open(FsStorage::open(dev.join("slots")).unwrap()).unwrap();
            st.state().committed_info().unwrap().version
        };
        if committed == latest || rng.random_ratio(1, 4) {
            latest += 1;
            model = common::fine_tune(&model, latest);
            arts.insert(latest, model.bytes());
            publish(&mut repo, &keys, latest, model.bytes());
        }
        let mut child = Command::new(BIN)
            .args(["run", "--device", dev.to_str().unwrap(), "--frame-ms", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Reboot check: the record verifies and what would boot verifies and is a published model.
        let res = (|| -> Result<(), String> {
            let mut st = SlotStore::open(FsStorage::open(dev.join("slots")).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            let (slot, info) = st.inspect().map_err(|e| e.to_string())?;
            let (_, bytes) = st.read_verified(slot).map_err(|e| e.to_string())?;
            if arts.get(&info.version) != Some(&bytes) {
                return Err(format!("slot {slot:?} holds version {} that differs from the published artifact", info.version));
            }
            st.read_verified(st.state().committed).map_err(|e| format!("last-known-good: {e}"))?;
            commits_seen.insert(st.state().committed_info().map(|i| i.version).unwrap_or(0));
            if st.state().trial.is_some() {
                trials_seen += 1;
            }
            Ok(())
        })();
        if let Err(e) = res {
            unbootable.push(format!("kill {k}: {e}"));
        }
    }
    println!("{kills} kills: committed versions seen {commits_seen:?}, killed during trial {trials_seen} times, {} unbootable", unbootable.len());
    assert!(unbootable.is_empty(), "unbootable states:\n{}", unbootable.join("\n"));
    assert!(commits_seen.len() >= 3, "the device should make progress between kills: {commits_seen:?}");
    assert!(trials_seen > 0, "some kills should land during a trial");
}
