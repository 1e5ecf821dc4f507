//! Calibration: loading, validation errors, projection and undistortion.

use nalgebra::{Isometry3, Point2, Point3, Translation3, UnitQuaternion, Vector3};
use rig::calib::{rotation_from_rpy, BUILTIN_RIG_TOML};
use rig::{CalibError, Camera, Criticality, Rig, CAMERA_COUNT};

fn pixel_grid(cam: &Camera, n: u32) -> Vec<Point2<f64>> {
    let (w, h) = (f64::from(cam.width), f64::from(cam.height));
    let mut out = Vec::new();
    for i in 0..=n {
        for j in 0..=n {
            out.push(Point2::new(w * f64::from(i) / f64::from(n), h * f64::from(j) / f64::from(n)));
        }
    }
    out
}

fn ideal_camera(position: [f64; 3], rpy_deg: [f64; 3]) -> Camera {
    let r = rotation_from_rpy(rpy_deg[0].to_radians(), rpy_deg[1].to_radians(), rpy_deg[2].to_radians());
    Camera {
        name: "test".into(),
        width: 640,
        height: 384,
        fx: 500.0,
        fy: 400.0,
        cx: 300.0,
        cy: 200.0,
        distortion: [0.0; 5],
        camera_to_vehicle: Isometry3::from_parts(
            Translation3::new(position[0], position[1], position[2]),
            UnitQuaternion::from_rotation_matrix(&r),
        ),
        criticality: Criticality::High,
        min_fps: 10.0,
    }
}

#[test]
fn builtin_rig_has_the_production_layout() {
    let rig = Rig::builtin();
    assert_eq!(rig.cameras().len(), CAMERA_COUNT);
    let names: Vec<&str> = rig.cameras().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "front_main",
            "front_wide",
            "front_narrow",
            "side_left_forward",
            "side_right_forward",
            "side_left_rearward",
            "side_right_rearward",
            "rear"
        ]
    );
    for c in rig.cameras() {
        assert_eq!((c.width, c.height), (640, 384), "{}", c.name);
    }
    let fov = |name: &str| rig.camera(name).unwrap().1.horizontal_fov_deg().unwrap();
    assert!((45.0..=55.0).contains(&fov("front_main")), "front_main fov {}", fov("front_main"));
    assert!((110.0..=130.0).contains(&fov("front_wide")), "front_wide fov {}", fov("front_wide"));
    assert!((25.0..=31.0).contains(&fov("front_narrow")), "front_narrow fov {}", fov("front_narrow"));
    // Viewing directions: forward cameras look along +x, left cameras to +y, the rear camera to -x.
    let axis = |name: &str| rig.camera(name).unwrap().1.camera_to_vehicle.rotation * Vector3::z();
    assert!(axis("front_main").x > 0.99);
    assert!(axis("side_left_forward").y > 0.7 && axis("side_left_forward").x > 0.4);
    assert!(axis("side_right_forward").y < -0.7);
    assert!(axis("side_left_rearward").y > 0.5 && axis("side_left_rearward").x < -0.5);
    assert!(axis("rear").x < -0.95);
    // Pitch is positive looking down: the rear camera (12 deg) looks at the ground.
    assert!(axis("rear").z < -0.15);
    assert_eq!(rig.camera("front_main").unwrap().1.criticality, Criticality::High);
    assert_eq!(rig.camera("rear").unwrap().1.criticality, Criticality::Low);
}

#[test]
fn optical_axis_maps_to_principal_point_on_every_camera() {
    for cam in Rig::builtin().cameras() {
        for depth in [0.5, 7.0, 120.0] {
            let p = cam.camera_to_vehicle.transform_point(&Point3::new(0.0, 0.0, depth));
            let px = cam.project(&p).unwrap();
            assert!((px.x - cam.cx).abs() < 1e-9 && (px.y - cam.cy).abs() < 1e-9, "{}: {px:?}", cam.name);
        }
        // A point behind the camera does not project.
        let behind = cam.camera_to_vehicle.transform_point(&Point3::new(0.0, 0.0, -3.0));
        assert!(cam.project(&behind).is_none(), "{}", cam.name);
    }
}

#[test]
fn known_offsets_project_to_known_pixels() {
    // Level camera at 1.5 m looking forward: vehicle +y (left) is image -u, vehicle -z is image +v.
    let cam = ideal_camera([2.0, 0.0, 1.5], [0.0, 0.0, 0.0]);
    let px = cam.project(&Point3::new(12.0, 1.0, 1.5)).unwrap();
    assert!((px.x - (300.0 - 500.0 * 0.1)).abs() < 1e-9 && (px.y - 200.0).abs() < 1e-9, "{px:?}");
    let px = cam.project(&Point3::new(12.0, 0.0, 0.5)).unwrap();
    assert!((px.x - 300.0).abs() < 1e-9 && (px.y - (200.0 + 400.0 * 0.1)).abs() < 1e-9, "{px:?}");
    // Yawed 90 deg to the left: it looks along vehicle +y.
    let left = ideal_camera([0.0, 0.0, 1.0], [0.0, 0.0, 90.0]);
    let px = left.project(&Point3::new(0.0, 10.0, 1.0)).unwrap();
    assert!((px.x - 300.0).abs() < 1e-9 && (px.y - 200.0).abs() < 1e-9, "{px:?}");
    // Pitched 10 deg down: the principal ray meets the ground 1 / tan(10 deg) metres ahead.
    let down = ideal_camera([0.0, 0.0, 1.0], [0.0, 10.0, 0.0]);
    let px = down.project(&Point3::new(1.0 / 10f64.to_radians().tan(), 0.0, 0.0)).unwrap();
    assert!((px.x - 300.0).abs() < 1e-9 && (px.y - 200.0).abs() < 1e-9, "{px:?}");
    // Distortion: a barrel lens pulls an off-axis point towards the centre by k1 r^2.
    let mut barrel = ideal_camera([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]);
    barrel.distortion = [-0.2, 0.0, 0.0, 0.0, 0.0];
    // Camera-frame point (0.5, 0, 1) = vehicle (1, -0.5, 0): r = 0.5, factor 1 - 0.2 * 0.25 = 0.95.
    let px = barrel.project(&Point3::new(1.0, -0.5, 0.0)).unwrap();
    assert!((px.x - (300.0 + 500.0 * 0.5 * 0.95)).abs() < 1e-9, "{px:?}");
}

#[test]
fn vehicle_camera_round_trips_on_every_camera() {
    for cam in Rig::builtin().cameras() {
        // pixel -> 3D at depth -> pixel, over the whole image including its corners.
        for px in pixel_grid(cam, 12) {
            for depth in [0.8, 5.0, 33.0, 90.0] {
                let p = cam.unproject_depth(&px, depth);
                let cam_frame = cam.camera_to_vehicle.inverse_transform_point(&p);
                assert!((cam_frame.z - depth).abs() < 1e-9, "{}: depth {}", cam.name, cam_frame.z);
                let back = cam.project(&p).unwrap_or_else(|| panic!("{}: {px:?} did not reproject", cam.name));
                assert!((back - px).norm() < 1e-6, "{}: {px:?} -> {back:?}", cam.name);
            }
        }
        // 3D -> pixel -> 3D for points in front of the camera.
        for i in 0..50 {
            let f = f64::from(i);
            let local = Point3::new((f * 0.37).sin() * 0.8, (f * 0.91).cos() * 0.5, 2.0 + f);
            let p = cam.camera_to_vehicle.transform_point(&local);
            let px = cam.project(&p).unwrap();
            let back = cam.unproject_depth(&px, local.z);
            assert!((back - p).norm() < 1e-6 * local.z.max(1.0), "{}: {p:?} -> {back:?}", cam.name);
        }
    }
}

#[test]
fn undistortion_converges_over_every_image() {
    for cam in Rig::builtin().cameras() {
        let mut worst = 0;
        for px in pixel_grid(cam, 20) {
            let (xd, yd) = ((px.x - cam.cx) / cam.fx, (px.y - cam.cy) / cam.fy);
            let (x, y, iters) = cam
                .undistort_with_iterations(xd, yd)
                .unwrap_or_else(|| panic!("{}: no convergence at {px:?}", cam.name));
            let (rx, ry) = cam.distort(x, y);
            assert!((rx - xd).abs() < 1e-12 && (ry - yd).abs() < 1e-12, "{}: residual at {px:?}", cam.name);
            worst = worst.max(iters);
        }
        assert!(worst <= 12, "{}: {worst} Newton steps", cam.name);
    }
}

#[test]
fn project_refuses_points_beyond_the_lens_model() {
    let rig = Rig::builtin();
    let mut cam = rig.camera("front_main").unwrap().1.clone();
    // With k1 alone the radial polynomial r (1 + k1 r^2) folds over at r^2 = -1 / (3 k1)
    // (about 64 degrees off axis); a point at 80 degrees would otherwise land back in the image.
    cam.distortion = [-0.08, 0.0, 0.0, 0.0, 0.0];
    assert!((cam.max_radius2() - 1.0 / 0.24).abs() < 1e-9, "{}", cam.max_radius2());
    let at = |deg: f64| Point3::new(deg.to_radians().sin(), 0.0, deg.to_radians().cos());
    assert!(cam.project_camera(&at(80.0)).is_none());
    let (x, _) = cam.distort(80f64.to_radians().tan(), 0.0);
    assert!(x < 0.0, "the unguarded model folds over: {x}");
    assert!(cam.project_camera(&at(60.0)).is_some());
    // The built-in lenses are monotonic over the whole model range: far off-axis points
    // project, outside the image.
    let front_main = rig.camera("front_main").unwrap().1;
    let px = front_main.project_camera(&at(80.0)).unwrap();
    assert!(!front_main.contains(&px) && px.x > 640.0, "{px:?}");
}

fn load(text: &str) -> Result<Rig, CalibError> {
    Rig::from_toml_str(text, "bad.toml")
}

/// Replaces the first occurrence of `from` after the `n`th `[[camera]]` header.
fn edit_camera(n: usize, from: &str, to: &str) -> String {
    let starts: Vec<usize> = BUILTIN_RIG_TOML.match_indices("[[camera]]").map(|(i, _)| i).collect();
    let start = starts[n];
    let end = starts.get(n + 1).copied().unwrap_or(BUILTIN_RIG_TOML.len());
    let section = &BUILTIN_RIG_TOML[start..end];
    assert!(section.contains(from), "camera {n} has no {from:?}");
    format!("{}{}{}", &BUILTIN_RIG_TOML[..start], section.replacen(from, to, 1), &BUILTIN_RIG_TOML[end..])
}

fn assert_error(result: Result<Rig, CalibError>, camera: Option<&str>, field: Option<&str>, words: &str) {
    let e = result.expect_err("expected a calibration error");
    let text = e.to_string();
    assert!(text.starts_with("bad.toml"), "{text}");
    if let Some(c) = camera {
        assert!(e.camera.as_deref().is_some_and(|x| x.contains(c)), "camera {c} not named: {text}");
        assert!(text.contains(c), "{text}");
    }
    if let Some(f) = field {
        assert_eq!(e.field.as_deref(), Some(f), "{text}");
        assert!(text.contains(&format!("`{f}`")), "{text}");
    }
    assert!(text.contains(words), "{words:?} not in {text}");
}

#[test]
fn wrong_camera_count_is_reported() {
    let last = BUILTIN_RIG_TOML.rfind("[[camera]]").unwrap();
    assert_error(load(&BUILTIN_RIG_TOML[..last]), None, Some("camera"), "expected 8 cameras, found 7");
    let extra = &BUILTIN_RIG_TOML[last..].replace("\"rear\"", "\"rear2\"");
    assert_error(load(&format!("{BUILTIN_RIG_TOML}\n{extra}")), None, Some("camera"), "found 9");
}

#[test]
fn duplicate_names_are_reported() {
    let text = edit_camera(4, "name = \"side_right_forward\"", "name = \"front_wide\"");
    assert_error(load(&text), Some("#4 `front_wide`"), Some("name"), "duplicate camera name (also camera #1)");
}

#[test]
fn non_orthonormal_rotation_is_reported() {
    let text = edit_camera(2, "rpy_deg = [0.0, 1.0, 0.0]", "rotation = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.1, 0.0]]");
    assert_error(load(&text), Some("front_narrow"), Some("rotation"), "not orthonormal");
    let reflection = edit_camera(2, "rpy_deg = [0.0, 1.0, 0.0]", "rotation = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]");
    assert_error(load(&reflection), Some("front_narrow"), Some("rotation"), "reflection");
    // The same matrix, proper, loads and equals the rpy form of a level forward camera.
    let ok = edit_camera(2, "rpy_deg = [0.0, 1.0, 0.0]", "rotation = [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]");
    let rig = load(&ok).unwrap();
    let r = rig.cameras()[2].camera_to_vehicle.rotation;
    assert!((r.to_rotation_matrix().matrix() - rotation_from_rpy(0.0, 0.0, 0.0).matrix()).abs().max() < 1e-12);
}

#[test]
fn bad_focal_lengths_are_reported() {
    let text = edit_camera(3, "fx = 330.0", "fx = -330.0");
    assert_error(load(&text), Some("side_left_forward"), Some("fx"), "focal length must be positive");
    let text = edit_camera(7, "fy = 215.0", "fy = 0");
    assert_error(load(&text), Some("#7 `rear`"), Some("fy"), "found 0");
}

#[test]
fn principal_point_outside_the_image_is_reported() {
    let text = edit_camera(0, "cx = 320.0", "cx = 700.0");
    assert_error(load(&text), Some("front_main"), Some("cx"), "outside the image");
    let text = edit_camera(1, "cy = 192.0", "cy = -1.0");
    assert_error(load(&text), Some("front_wide"), Some("cy"), "outside the image");
}

#[test]
fn missing_fields_are_reported() {
    let text = edit_camera(5, "fy = 380.0\n", "");
    assert_error(load(&text), Some("side_left_rearward"), Some("fy"), "missing field");
    let text = edit_camera(6, "min_fps = 9.0\n", "");
    assert_error(load(&text), Some("side_right_rearward"), Some("min_fps"), "missing field");
    let text = edit_camera(0, "rpy_deg = [0.0, 2.0, 0.0]\n", "");
    assert_error(load(&text), Some("front_main"), Some("rpy_deg"), "missing field");
    let text = edit_camera(0, "name = \"front_main\"\n", "");
    assert_error(load(&text), Some("#0"), Some("name"), "missing field");
    assert_error(load(&BUILTIN_RIG_TOML.replacen("version = 1", "", 1)), None, Some("version"), "missing field");
}

#[test]
fn malformed_values_are_reported() {
    let text = edit_camera(0, "fx = 686.0", "fx = \"wide\"");
    assert_error(load(&text), Some("front_main"), Some("fx"), "expected a number, found string");
    let text = edit_camera(0, "distortion = [-0.08, 0.02, 0.0, 0.0, 0.0]", "distortion = [-0.08, 0.02]");
    assert_error(load(&text), Some("front_main"), Some("distortion"), "expected 5 numbers, found 2");
    let text = edit_camera(0, "criticality = \"high\"", "criticality = \"urgent\"");
    assert_error(load(&text), Some("front_main"), Some("criticality"), "\"urgent\"");
    let text = edit_camera(0, "fx = 686.0", "fx = 686.0\nfocal = 3");
    assert_error(load(&text), Some("front_main"), Some("focal"), "unknown field");
    let text = edit_camera(0, "rpy_deg = [0.0, 2.0, 0.0]", "rpy_deg = [0.0, 2.0, 0.0]\nrotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]");
    assert_error(load(&text), Some("front_main"), Some("rotation"), "not both");
    // A lens whose distortion folds over inside the image cannot be undistorted there.
    let text = edit_camera(1, "distortion = [-0.30, 0.08, 0.0005, -0.0003, 0.0]", "distortion = [-0.45, 0.0, 0.0, 0.0, 0.0]");
    assert_error(load(&text), Some("front_wide"), Some("distortion"), "folds over");
    // TOML syntax errors carry the line.
    let e = load("version = 1\n[[camera]\nname = 3\n").unwrap_err().to_string();
    assert!(e.starts_with("bad.toml: invalid TOML") && e.contains("line 2"), "{e}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rig.toml");
    let e = Rig::load(&path).unwrap_err().to_string();
    assert!(e.contains("rig.toml") && e.contains("cannot read"), "{e}");
    std::fs::write(&path, edit_camera(2, "fx = 1283.0", "fx = -1.0")).unwrap();
    let e = Rig::load(&path).unwrap_err();
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.field.as_deref(), Some("fx"));
    std::fs::write(&path, BUILTIN_RIG_TOML).unwrap();
    assert_eq!(Rig::load(&path).unwrap(), Rig::builtin());
}

#[test]
fn toml_writer_round_trips() {
    let rig = Rig::builtin();
    let back = Rig::from_toml_str(&rig.to_toml_string(), "written").unwrap();
    for (a, b) in rig.cameras().iter().zip(back.cameras()) {
        assert_eq!((&a.name, a.width, a.height, a.fx, a.fy, a.cx, a.cy), (&b.name, b.width, b.height, b.fx, b.fy, b.cx, b.cy));
        assert_eq!((a.distortion, a.criticality, a.min_fps), (b.distortion, b.criticality, b.min_fps));
        let d = a.camera_to_vehicle.inverse() * b.camera_to_vehicle;
        assert!(d.translation.vector.norm() < 1e-12 && d.rotation.angle() < 1e-9, "{}", a.name);
    }
    assert!(Rig::from_cameras(rig.cameras()[..7].to_vec()).is_err());
}
