//! `vigil compile --calib LOG.mcap` and `vigil eval --data LOG.mcap` end to end, through the
//! built binary, on a recorded synthetic log; and their refusals (an empty log, a corrupt
//! plan) name the file and the problem.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/vigil_det.onnx");

fn vigil(args: &[&str]) -> Output {
    Command::new(VIGIL).args(args).env("VIGIL_LOG", "warn").output().expect("run vigil")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// One recorded log (1 s, 8 cameras, with ground truth) and the floor plan compiled from it.
fn fixture() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static F: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("drive.mcap");
        let o = vigil(&["record", "synthetic", "--seconds", "1", "--seed", "21", "--out", log.to_str().unwrap()]);
        assert!(o.status.success(), "record failed: {}", text(&o));
        let plans = dir.path().join("plans");
        let o = vigil(&[
            "compile", MODEL, "--calib", log.to_str().unwrap(), "--max-frames", "8", "--variants", "floor", "--time-frames", "1", "--out",
            plans.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "compile --calib failed: {}", text(&o));
        assert!(text(&o).contains("floor"), "{}", text(&o));
        (dir, log, plans)
    })
}

#[test]
fn compile_from_a_log_writes_the_plan_and_its_report() {
    let (_, _, plans) = fixture();
    let plan = plans.join("floor.vplan");
    assert!(std::fs::metadata(&plan).map(|m| m.len() > 1000).unwrap_or(false), "{} missing or tiny", plan.display());
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(plans.join("report.json")).unwrap()).unwrap();
    assert_eq!(report[0]["variant"], "floor");
    assert_eq!(report[0]["calibration_frames"], 8);
    assert!(report[0]["layers"].as_array().unwrap().len() > 10);
}

fn eval_lines(o: &Output) -> (usize, f64) {
    let out = text(o);
    assert!(o.status.success(), "eval failed: {out}");
    let images = out.split(": ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{out}"));
    let map = out
        .lines()
        .find(|l| l.trim_start().starts_with("mAP@0.5"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no mAP line: {out}"));
    (images, map)
}

#[test]
fn eval_of_plan_and_onnx_on_the_log_print_map_per_class() {
    let (_, log, plans) = fixture();
    let plan = plans.join("floor.vplan");
    let o = vigil(&["eval", plan.to_str().unwrap(), "--data", log.to_str().unwrap(), "--max-frames", "16"]);
    let (images, map) = eval_lines(&o);
    assert_eq!(images, 16);
    assert!((0.0..=100.0).contains(&map));
    for class in ["car", "truck", "pedestrian", "cyclist"] {
        assert!(text(&o).contains(&format!("AP@0.5 {class}")), "{}", text(&o));
    }
    let o = vigil(&["eval", MODEL, "--variant", "floor", "--data", log.to_str().unwrap(), "--max-frames", "16"]);
    let (images, _) = eval_lines(&o);
    assert_eq!(images, 16);
}

#[test]
fn an_empty_calibration_log_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mcap");
    let mut w = mcap::Writer::new(std::io::BufWriter::new(std::fs::File::create(&empty).unwrap())).unwrap();
    w.finish().unwrap();
    drop(w);
    let out = dir.path().join("plans");
    let o = vigil(&["compile", MODEL, "--calib", empty.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!o.status.success(), "an empty log calibrated: {}", text(&o));
    assert!(text(&o).contains("empty.mcap") && text(&o).contains("no camera images"), "{}", text(&o));
    assert!(!out.join("full.vplan").exists());
    let missing = dir.path().join("missing.mcap");
    let o = vigil(&["eval", MODEL, "--data", missing.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("missing.mcap"), "{}", text(&o));
}

#[test]
fn a_corrupt_plan_is_refused_by_name() {
    let (dir, log, plans) = fixture();
    let bytes = std::fs::read(plans.join("floor.vplan")).unwrap();
    let bad = dir.path().join("cut.vplan");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let o = vigil(&["eval", bad.to_str().unwrap(), "--data", log.to_str().unwrap(), "--max-frames", "1"]);
    assert!(!o.status.success(), "a truncated plan evaluated: {}", text(&o));
    assert!(text(&o).contains("cut.vplan"), "the error should name the file: {}", text(&o));
}
