//! The C header and the Rust definition agree on every size and offset.

use std::mem::{offset_of, size_of};
use std::process::Command;

use control::*;

/// (C expression, Rust value) pairs.
fn expectations() -> Vec<(&'static str, usize)> {
    macro_rules! off {
        ($cty:literal, $cfield:literal, $rty:ty, $rfield:ident) => {
            (concat!("offsetof(", $cty, ", ", $cfield, ")"), offset_of!($rty, $rfield))
        };
    }
    vec![
        ("sizeof(vigil_object)", size_of::<Object>()),
        off!("vigil_object", "track_id", Object, track_id),
        off!("vigil_object", "class_id", Object, class),
        off!("vigil_object", "flags", Object, flags),
        off!("vigil_object", "confidence", Object, confidence),
        off!("vigil_object", "position", Object, position),
        off!("vigil_object", "velocity", Object, velocity),
        ("sizeof(vigil_camera_status)", size_of::<CameraStatus>()),
        off!("vigil_camera_status", "last_capture_ns", CameraStatus, last_capture_ns),
        off!("vigil_camera_status", "frames", CameraStatus, frames),
        off!("vigil_camera_status", "fps_milli", CameraStatus, fps_milli),
        ("sizeof(vigil_snapshot)", size_of::<Snapshot>()),
        off!("vigil_snapshot", "sequence", Snapshot, sequence),
        off!("vigil_snapshot", "capture_ns", Snapshot, capture_ns),
        off!("vigil_snapshot", "publish_ns", Snapshot, publish_ns),
        off!("vigil_snapshot", "model_version", Snapshot, model_version),
        off!("vigil_snapshot", "degradation_level", Snapshot, degradation_level),
        off!("vigil_snapshot", "flags", Snapshot, flags),
        off!("vigil_snapshot", "object_count", Snapshot, object_count),
        off!("vigil_snapshot", "camera_count", Snapshot, camera_count),
        off!("vigil_snapshot", "cameras", Snapshot, cameras),
        off!("vigil_snapshot", "objects", Snapshot, objects),
        off!("vigil_snapshot", "checksum", Snapshot, checksum),
        ("sizeof(vigil_segment_header)", HEADER_SIZE),
        ("offsetof(vigil_segment_header, seq)", SEQ_OFFSET),
        ("VIGIL_SEGMENT_SIZE", SEGMENT_SIZE),
        ("VIGIL_MAX_OBJECTS", MAX_OBJECTS),
        ("VIGIL_MAX_CAMERAS", MAX_CAMERAS),
        ("VIGIL_VERSION", VERSION as usize),
        ("VIGIL_FLAG_STALE", usize::from(FLAG_STALE)),
        ("VIGIL_FLAG_DEGRADED", usize::from(FLAG_DEGRADED)),
        ("VIGIL_FLAG_REVERTED", usize::from(FLAG_REVERTED)),
    ]
}

fn cc() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    Command::new(&cc).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| cc)
}

#[test]
fn header_matches_rust_layout() {
    let Some(cc) = cc() else {
        println!("skipped: no C compiler (`cc` or $CC) to compile include/vigil_snapshot.h");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exp = expectations();
    let mut src = String::from("#include <stdio.h>\n#include \"vigil_snapshot.h\"\nint main(void) {\n");
    for (c, _) in &exp {
        src.push_str(&format!("    printf(\"%zu\\n\", (size_t)({c}));\n"));
    }
    // The C checksum of a known snapshot, to compare with the Rust one.
    src.push_str(
        "    vigil_snapshot s = {0};\n    s.sequence = 7; s.objects[3].confidence = 0.5f; s.cameras[1].frames = 9;\n    \
         printf(\"%llu\\n\", (unsigned long long)vigil_checksum(&s));\n    return 0;\n}\n",
    );
    let c = dir.path().join("layout.c");
    std::fs::write(&c, src).unwrap();
    let exe = dir.path().join("layout");
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let out = Command::new(&cc).args(["-std=c11", "-Wall", "-Werror", "-I", include]).arg(&c).arg("-o").arg(&exe).output().unwrap();
    assert!(out.status.success(), "compiling the header failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let text = String::from_utf8(run.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), exp.len() + 1);
    for ((expr, rust), line) in exp.iter().zip(&lines) {
        assert_eq!(line.parse::<usize>().unwrap(), *rust, "{expr}: C says {line}, Rust says {rust}");
    }
    let mut s = Snapshot { sequence: 7, ..Snapshot::default() };
    s.objects[3].confidence = 0.5;
    s.cameras[1].frames = 9;
    assert_eq!(lines[exp.len()].parse::<u64>().unwrap(), checksum(&s), "C and Rust checksums differ");
}
