//! End to end, through the real `vigil-ota` binary and a loopback HTTP server it runs:
//! keygen; publish version 1; provision a device with it; publish version 2; the device
//! updates by delta into its inactive slot, trial-runs and commits; version 3 (fails its
//! smoke test) and version 4 (fails the health gates) are reverted automatically; a
//! replayed old timestamp, an expired snapshot and a tampered target are each refused,
//! and the device keeps booting its verified model throughout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use ota::repo::{Expiry, Keyring, Repository, target_file_name};
use ota::slots::{Slot, SlotStore};
use ota::storage::FsStorage;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_vigil-ota");

fn ota(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("running vigil-ota")
}

fn ok(args: &[&str]) -> String {
    let o = ota(args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "vigil-ota {args:?} failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn fails(args: &[&str]) -> String {
    let o = ota(args);
    assert!(!o.status.success(), "vigil-ota {args:?} should have failed:\n{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).to_string()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(repo: &Path, addr_file: &Path) -> (Server, String) {
    let child = Command::new(BIN).args(["serve", repo.to_str().unwrap(), "--addr", "127.0.0.1:0", "--addr-file", addr_file.to_str().unwrap()]).spawn().unwrap();
    let server = Server(child);
    let t0 = Instant::now();
    loop {
        if let Ok(a) = std::fs::read_to_string(addr_file)
            && !a.is_empty()
        {
            return (server, format!("http://{a}"));
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn slots(dev: &Path) -> SlotStore<FsStorage> {
    SlotStore::open(FsStorage::open(dev.join("slots")).unwrap()).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn publish_update_by_delta_commit_revert_broken_and_refuse_attacks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (keys, repo, dev) = (d.join("keys"), d.join("repo"), d.join("device"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (ks, rs, ds) = (s(&keys), s(&repo), s(&dev));

    let v1 = common::detector(1, 0.5).bytes();
    let v2 = common::fine_tune(&common::detector(1, 0.5), 2).bytes();
    let v3 = common::broken(&common::detector(3, 0.5)).bytes();
    let v4 = common::head_only(&common::detector(1, 0.5), 4).bytes();
    let v5 = common::head_only(&common::detector(1, 0.5), 5).bytes();
    let files: Vec<PathBuf> = [&v1, &v2, &v3, &v4, &v5].iter().enumerate().map(|(i, b)| write(d, &format!("v{}.vtar", i + 1), b)).collect();
    let f = |i: usize| format!("full={}", files[i - 1].display());

    ok(&["keygen", "--keys", &ks, "--repo", &rs, "--root-keys", "3", "--root-threshold", "2", "--targets-keys", "2", "--targets-threshold", "2"]);
    ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "1", "--variant", &f(1), "--tier", "full=any:1024:1:10"]);
    let (_server, url) = serve(&repo, &d.join("addr"));
    let root = s(&repo.join("metadata/root.json"));
    ok(&[
        "provision", "--device", &ds, "--root", &root, "--id", "vehicle-0042", "--repository", &url, "--initial", &s(&files[0]),
        "--initial-version", "1", "--initial-variant", "full", "--gate-frames", "50", "--trial-boots", "2",
    ]);
    assert!(ok(&["check", "--device", &ds]).contains("no update"));

    // Version 2: published with a delta from version 1; the device takes the delta.
    let pub2 = ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "2", "--variant", &f(2), "--tier", "full=any:1024:1:10"]);
    assert!(pub2.contains("delta") && pub2.contains("from-1.vdelta"), "{pub2}");
    let c = ok(&["check", "--device", &ds]);
    assert!(c.contains("version 2") && c.contains("via delta"), "{c}");
    let inst = ok(&["install", "--device", &ds]);
    assert!(inst.contains("version 2") && inst.contains("from a delta"), "{inst}");
    let st = slots(&dev);
    let t = st.state().trial.clone().expect("trial after install");
    assert_eq!((t.slot, st.state().committed), (Slot::B, Slot::A), "installed into the inactive slot");
    assert_eq!(std::fs::read(dev.join("slots/slot-b.bin")).unwrap(), v2);
    let out = ok(&["trial", "--device", &ds]);
    assert!(out.contains("Committed(2)"), "{out}");
    let st = slots(&dev);
    assert_eq!((st.state().committed, st.state().committed_info().unwrap().version), (Slot::B, 2));

    let saved_timestamp = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();

    // Version 3 fails its smoke test (NaN scale): rejected before the switch.
    ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "3", "--variant", &f(3)]);
    let e = fails(&["install", "--device", &ds]);
    assert!(e.contains("smoke test failed for version 3") && e.contains("not finite"), "{e}");
    let st = slots(&dev);
    assert!(st.state().trial.is_none());
    assert_eq!(st.state().committed_info().unwrap().version, 2);
    assert!(st.state().rejected.contains(&hex::encode(Sha256::digest(&v3))));

    // Version 4 passes the smoke test but misses the latency gate in trial: reverted.
    ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "4", "--variant", &f(4)]);
    ok(&["install", "--device", &ds]);
    let out = ok(&["trial", "--device", &ds, "--latency-us", "50000"]);
    assert!(out.contains("Reverted") && out.contains("health gate"), "{out}");
    assert!(ok(&["boot", "--device", &ds]).contains("version 2"), "back on last-known-good");
    assert!(ok(&["check", "--device", &ds]).contains("no update"), "rejected versions are not offered again");

    // Replayed old timestamp: refused as a rollback.
    let current_timestamp = std::fs::read(repo.join("metadata/timestamp.json")).unwrap();
    std::fs::write(repo.join("metadata/timestamp.json"), &saved_timestamp).unwrap();
    let e = fails(&["check", "--device", &ds]);
    assert!(e.contains("timestamp rollback"), "{e}");
    std::fs::write(repo.join("metadata/timestamp.json"), &current_timestamp).unwrap();

    // Expired snapshot: refused.
    let keyring = Keyring::load(&keys).unwrap();
    let mut r = Repository::open(&repo).unwrap();
    let mut exp = Expiry::from_now(now());
    exp.snapshot = now() - 3600;
    r.sign_snapshot(&keyring, exp).unwrap();
    let e = fails(&["check", "--device", &ds]);
    assert!(e.contains("snapshot expired"), "{e}");
    r.sign_snapshot(&keyring, Expiry::from_now(now())).unwrap();

    // Tampered target: version 5's artifact altered on the server after signing.
    ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "5", "--variant", &f(5)]);
    let sha5 = hex::encode(Sha256::digest(&v5));
    let p5 = repo.join("targets").join(target_file_name("models/detector/5/full.vtar", &sha5));
    let mut bad = v5.clone();
    bad[1000] ^= 0x01;
    std::fs::write(&p5, &bad).unwrap();
    let e = fails(&["install", "--device", &ds]);
    assert!(e.contains("hash mismatch"), "{e}");
    let mut st = slots(&dev);
    assert!(st.state().trial.is_none(), "a tampered target never becomes a trial");
    let (slot, info) = st.inspect().unwrap();
    assert_eq!((slot, info.version), (Slot::B, 2));

    // Restored, the same version installs and commits (by full file: no delta from 2).
    std::fs::write(&p5, &v5).unwrap();
    assert!(ok(&["install", "--device", &ds]).contains("from the full artifact"));
    assert!(ok(&["trial", "--device", &ds]).contains("Committed(5)"));
    assert_eq!(std::fs::read(dev.join("slots/slot-a.bin")).unwrap(), v5);
    let status = ok(&["status", "--device", &ds]);
    assert!(status.contains("next boot: slot A, version 5"), "{status}");
}

#[test]
fn kill_switch_and_pin_are_honoured_before_install_and_before_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (keys, repo, dev) = (d.join("keys"), d.join("repo"), d.join("device"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (ks, rs, ds) = (s(&keys), s(&repo), s(&dev));
    let m = common::tiny(7);
    let v1 = write(d, "v1", &m.bytes());
    let v2 = write(d, "v2", &common::fine_tune(&m, 8).bytes());
    let v3 = write(d, "v3", &common::fine_tune(&m, 9).bytes());
    ok(&["keygen", "--keys", &ks, "--repo", &rs]);
    ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "1", "--variant", &format!("full={}", v1.display())]);
    ok(&[
        "provision", "--device", &ds, "--root", &s(&repo.join("metadata/root.json")), "--id", "v-1", "--repository", &rs, "--initial", &s(&v1),
        "--initial-version", "1", "--initial-variant", "full", "--gate-frames", "10",
    ]);
    // Staged rollout: at 0% nobody updates; at 100% everybody does.
    ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "2", "--rollout", "0", "--variant", &format!("full={}", v2.display())]);
    assert!(ok(&["check", "--device", &ds]).contains("NotInCohort"));
    ok(&["policy", "--repo", &rs, "--keys", &ks, "--rollout", "detector-2=100", "--halt"]);
    assert!(ok(&["check", "--device", &ds]).contains("Halted"));
    assert!(ok(&["install", "--device", &ds]).contains("no update"));
    ok(&["policy", "--repo", &rs, "--keys", &ks, "--resume"]);
    ok(&["install", "--device", &ds]);
    // Kill switch thrown during the trial: the trial is not committed.
    ok(&["policy", "--repo", &rs, "--keys", &ks, "--halt"]);
    let e = fails(&["commit", "--device", &ds]);
    assert!(e.contains("kill switch"), "{e}");
    let out = ok(&["trial", "--device", &ds]);
    assert!(out.contains("Reverted") && out.contains("kill switch"), "{out}");
    ok(&["policy", "--repo", &rs, "--keys", &ks, "--resume"]);
    // v3 is published but the fleet is pinned to 1: nothing to do; pinned to 3: installs it.
    ok(&["publish", "--repo", &rs, "--keys", &ks, "--model", "detector", "--version", "3", "--variant", &format!("full={}", v3.display())]);
    ok(&["policy", "--repo", &rs, "--keys", &ks, "--pin", "1"]);
    assert!(ok(&["check", "--device", &ds]).contains("UpToDate"));
    ok(&["policy", "--repo", &rs, "--keys", &ks, "--pin", "3"]);
    ok(&["install", "--device", &ds]);
    assert!(ok(&["trial", "--device", &ds]).contains("Committed(3)"));
    // --help explains every subcommand.
    for sub in ["keygen", "publish", "policy", "refresh-timestamp", "serve", "provision", "status", "check", "install", "boot", "trial", "commit", "rollback", "run"] {
        let h = ok(&[sub, "--help"]);
        assert!(h.len() > 100 && h.contains("Usage"), "{sub} --help:\n{h}");
    }
}
