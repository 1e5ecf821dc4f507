//! `vigil record` and `vigil replay` end to end, through the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const FRAMES: u64 = 72; // 2 s at 36 fps

fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).args(args).env("VIGIL_LOG", "warn").output().expect("run vigil")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn record(out: &Path) -> Output {
    vigil(&["record", "synthetic", "--seconds", "2", "--seed", "7", "--out", out.to_str().unwrap()])
}

/// One recording shared by the tests of this binary (`--seconds 2 --seed 7`).
fn recording() -> &'static Path {
    static REC: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &REC.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mcap");
        let o = record(&path);
        assert!(o.status.success(), "record failed: {}", stderr(&o));
        (dir, path)
    })
    .1
}

fn replay_json(path: &Path) -> (Output, Option<serde_json::Value>) {
    let o = vigil(&["replay", path.to_str().unwrap(), "--json"]);
    let v = serde_json::from_slice(&o.stdout).ok();
    (o, v)
}

fn assert_no_panic(o: &Output) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "vigil panicked: {e}");
    assert_ne!(o.status.code(), Some(101), "exit code 101 is a panic: {e}");
}

#[test]
fn recording_twice_gives_identical_bytes_and_no_partial_file() {
    let a = recording();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b.mcap");
    let o = record(&b);
    assert!(o.status.success(), "{}", stderr(&o));
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(&b).unwrap());
    assert!(x.len() > 100_000, "a 2 s, 8-camera recording of {} bytes is implausibly small", x.len());
    assert!(x == y, "two recordings with the same arguments differ ({} vs {} bytes)", x.len(), y.len());
    assert!(!dir.path().join("b.mcap.partial").exists());
}

#[test]
fn replay_reports_eight_cameras_with_the_expected_frame_counts() {
    let (o, v) = replay_json(recording());
    assert!(o.status.success(), "{}", stderr(&o));
    let v = v.expect("replay --json prints JSON");
    let cams = v["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 8);
    for c in cams {
        for key in ["messages", "decoded", "delivered", "staged", "expected"] {
            assert_eq!(c[key].as_u64(), Some(FRAMES), "camera {} {key}: {c}", c["name"]);
        }
        for key in ["missing_sequences", "timestamp_jumps", "out_of_order", "corrupt", "dropped"] {
            assert_eq!(c[key].as_u64(), Some(0), "camera {} {key}: {c}", c["name"]);
        }
        assert_eq!(c["calibration"], true);
        assert_eq!(c["schema"], "foxglove.CompressedImage");
    }
    assert_eq!(v["complete"], true);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    let topics: Vec<&str> = v["channels"].as_array().unwrap().iter().map(|c| c["topic"].as_str().unwrap()).collect();
    for t in ["/ground_truth", "/ego_pose", "/tf"] {
        assert!(topics.contains(&t), "{t} missing from {topics:?}");
    }
    let gt = v["channels"].as_array().unwrap().iter().find(|c| c["topic"] == "/ground_truth").unwrap();
    assert_eq!(gt["messages"].as_u64(), Some(FRAMES));
    assert_eq!(gt["schema"], "vigil.GroundTruth");
}

#[test]
fn replay_prints_a_table_and_writes_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("replay.mcap");
    let o = vigil(&["replay", recording().to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("camera") && table.contains("/ground_truth"), "{table}");
    let rows: Vec<&str> = table.lines().skip(1).take(8).collect();
    assert!(table.lines().next().unwrap().starts_with("camera"), "{table}");
    assert!(rows.iter().all(|l| l.contains(&format!(" {FRAMES} "))), "{table}");
    // The output is itself a sound MCAP log: 8 x 72 staged frames.
    let (o2, v) = replay_json(&out);
    let v = v.unwrap_or_else(|| panic!("{}", stderr(&o2)));
    let frames = v["channels"].as_array().unwrap().iter().find(|c| c["topic"] == "/replay/frames").unwrap();
    assert_eq!(frames["messages"].as_u64(), Some(8 * FRAMES));
}

#[test]
fn a_truncated_copy_fails_with_an_offset_not_a_panic() {
    let bytes = std::fs::read(recording()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 5, 20] {
        let p = dir.path().join(format!("cut{cut}.mcap"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let o = vigil(&["replay", p.to_str().unwrap()]);
        assert!(!o.status.success(), "truncated at {cut}: exit 0");
        assert_no_panic(&o);
        let e = stderr(&o);
        assert!(e.contains("byte offset") && e.contains("truncated"), "truncated at {cut}: {e}");
    }
}

#[test]
fn a_corrupted_byte_fails_with_a_clear_error() {
    let mut bytes = std::fs::read(recording()).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("corrupt.mcap");
    std::fs::write(&p, &bytes).unwrap();
    let o = vigil(&["replay", p.to_str().unwrap()]);
    assert!(!o.status.success(), "corrupt file: exit 0");
    assert_no_panic(&o);
    let e = stderr(&o);
    assert!(e.contains("byte offset") && e.contains("corrupt"), "{e}");
}

#[test]
fn bad_record_arguments_are_clear_errors_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mcap");
    let o = vigil(&["record", "synthetic", "--seconds", "1", "--cameras", "nosuchcam", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nosuchcam"), "{}", stderr(&o));
    let o = vigil(&["record", "synthetic", "--seconds=0", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--seconds"), "{}", stderr(&o));
    assert!(!out.exists() && !dir.path().join("x.mcap.partial").exists());
}

#[test]
fn deterministic_replay_writes_the_same_bytes_twice_and_refuses_a_bad_log_by_offset() {
    // A short log of its own (the full-size stand-in plans make long logs slow to replay).
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("short.mcap");
    let o = vigil(&["record", "synthetic", "--seconds", "0.5", "--fps", "12", "--seed", "3", "--out", log.to_str().unwrap()]);
    assert!(o.status.success(), "record failed: {}", stderr(&o));
    let empty = dir.path().join("no-model");
    std::fs::create_dir(&empty).unwrap();
    let run = |threads: &str, out: &Path| {
        let args = ["replay", log.to_str().unwrap(), "--deterministic", "--backend", "cpu", "--threads", threads];
        let mut args: Vec<&str> = args.to_vec();
        args.extend(["--model", empty.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        vigil(&args)
    };
    let (a, b) = (dir.path().join("a.mcap"), dir.path().join("b.mcap"));
    let o = run("2", &a);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("backend: cpu") && e.contains("snapshots") && e.contains("front_main"), "no summary: {e}");
    let o = run("1", &b);
    assert!(o.status.success(), "{}", stderr(&o));
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(x == y, "two deterministic replays differ ({} vs {} bytes)", x.len(), y.len());
    assert!(!String::from_utf8_lossy(&x).contains("backend"));

    let bytes = std::fs::read(&log).unwrap();
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("cut-out.mcap");
    let o = vigil(&["replay", cut.to_str().unwrap(), "--deterministic", "--model", empty.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert_no_panic(&o);
    let e = stderr(&o);
    assert!(e.contains("cut.mcap") && e.contains("byte offset"), "{e}");
    assert!(!out.exists() && !dir.path().join("cut-out.mcap.partial").exists(), "a refused replay left a file");
}
