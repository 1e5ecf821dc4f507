//! The committed detector's INT8 accuracy bound, end to end through the binary on a small
//! held-out log: `vigil record synthetic` with a seed the model never saw in training,
//! `vigil compile --calib` on a second log, then `vigil eval` of the FP32 ONNX model and of the
//! compiled `full` plan on the held-out log (the same decode rules on both paths).
//!
//! Bounds (docs/MODEL.md): the FP32 model must detect (mAP@0.5 at least `MIN_FP32_MAP`, so the
//! comparison means something), and INT8 must stay within `TOLERANCE` mAP points of it. The
//! issue's 1-point target is measured on a larger held-out log by the command in
//! docs/PERFORMANCE.md; a few dozen images make mAP coarse, hence the wider bound here.

use std::path::Path;
use std::process::{Command, Output};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/vigil_det.onnx");
/// mAP points (0..100 scale, as `vigil eval` prints).
const TOLERANCE: f64 = 3.0;
const MIN_FP32_MAP: f64 = 10.0;
const IMAGES: &str = "48";

fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).args(args).env("VIGIL_LOG", "warn").output().expect("run vigil")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn record(path: &Path, seed: &str) {
    let o = vigil(&["record", "synthetic", "--seconds", "2", "--fps", "3", "--seed", seed, "--out", path.to_str().unwrap()]);
    assert!(o.status.success(), "record failed: {}", text(&o));
}

fn map_of(o: &Output) -> f64 {
    let out = text(o);
    assert!(o.status.success(), "eval failed: {out}");
    eprint!("{out}");
    out.lines()
        .find(|l| l.trim_start().starts_with("mAP@0.5"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no mAP line: {out}"))
}

#[test]
fn int8_full_stays_within_tolerance_of_fp32_on_a_held_out_log() {
    let dir = tempfile::tempdir().unwrap();
    let (held, calib, plans) = (dir.path().join("held.mcap"), dir.path().join("calib.mcap"), dir.path().join("plans"));
    // Training used rig seeds 1-3 (tools/data) and stand-in scenes; 9100 and 9200 are unseen.
    record(&held, "9100");
    record(&calib, "9200");
    let o = vigil(&[
        "compile", MODEL, "--calib", calib.to_str().unwrap(), "--max-frames", "16", "--variants", "full", "--time-frames", "1", "--out",
        plans.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "compile failed: {}", text(&o));
    let fp32 = map_of(&vigil(&["eval", MODEL, "--variant", "full", "--data", held.to_str().unwrap(), "--max-frames", IMAGES]));
    let plan = plans.join("full.vplan");
    let int8 = map_of(&vigil(&["eval", plan.to_str().unwrap(), "--data", held.to_str().unwrap(), "--max-frames", IMAGES]));
    eprintln!("held-out log, {IMAGES} images: FP32 mAP@0.5 {fp32:.2}, INT8 {int8:.2}, difference {:.2} points", int8 - fp32);
    assert!(fp32 >= MIN_FP32_MAP, "the committed model detects too little on rig frames (FP32 mAP@0.5 {fp32:.2} < {MIN_FP32_MAP})");
    assert!((fp32 - int8).abs() <= TOLERANCE, "INT8 mAP {int8:.2} vs FP32 {fp32:.2}: beyond {TOLERANCE} points");
}
