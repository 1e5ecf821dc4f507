//! Rig calibration: the eight cameras, their intrinsics and extrinsics.
//!
//! CONTRACT (other crates code against these signatures; keep them stable):
//! `Rig::builtin()`, `Rig::load(path)`, `Rig::cameras()`, `Camera::{project, unproject_depth}`,
//! `Camera::width/height` and the other public fields of [`Camera`].
//!
//! The calibration file is TOML (`replay-data/rig.toml` is the built-in rig; its header
//! documents every field). Loading checks every camera and reports the first fault as a
//! [`CalibError`] naming the file, the camera and the field.
//!
//! Lens model: pinhole plus Brown–Conrady distortion on normalised coordinates (the
//! OpenCV `k1, k2, p1, p2, k3` convention). [`Camera::project`] distorts;
//! [`Camera::undistort`] inverts the distortion by Newton's method.

use std::fmt;
use std::path::Path;

use nalgebra::{Isometry3, Matrix3, Point2, Point3, Rotation3, Translation3, UnitQuaternion, Unit, Vector3};
use serde::{Deserialize, Serialize};

/// Number of cameras on the production rig.
pub const CAMERA_COUNT: usize = 8;

/// Index of a camera in the rig, `0..CAMERA_COUNT`, in the order of the calibration file.
pub type CameraId = usize;

/// Largest squared undistorted radius the lens model is evaluated at (about 87 degrees off axis).
const MAX_RADIUS2: f64 = 400.0;
/// Newton iterations allowed in [`Camera::undistort`].
const NEWTON_MAX_ITERS: usize = 40;
/// Residual (normalised units) at which [`Camera::undistort`] stops.
const NEWTON_TOL: f64 = 1e-13;
/// Tolerance on `R^T R = I` for a calibration rotation matrix.
const ORTHONORMAL_TOL: f64 = 1e-6;

/// How much the vehicle relies on a camera; drives the scheduler's degradation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    /// Rear and rear-side views: first to lose rate.
    Low,
    /// Side views.
    Medium,
    /// Forward views: last to lose rate.
    High,
}

impl Criticality {
    /// The name used in the calibration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
        }
    }
}

/// One calibrated camera.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    /// Short name used for MCAP topics, e.g. `front_wide`.
    pub name: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Horizontal focal length, pixels.
    pub fx: f64,
    /// Vertical focal length, pixels.
    pub fy: f64,
    /// Principal point u, pixels.
    pub cx: f64,
    /// Principal point v, pixels.
    pub cy: f64,
    /// Brown–Conrady coefficients `[k1, k2, p1, p2, k3]` (all zero for an ideal pinhole).
    pub distortion: [f64; 5],
    /// Pose of the camera frame in the vehicle frame (maps camera coordinates to vehicle coordinates).
    pub camera_to_vehicle: Isometry3<f64>,
    /// Scheduling criticality.
    pub criticality: Criticality,
    /// Minimum frame rate the scheduler must keep for this camera, frames per second.
    pub min_fps: f64,
}

impl Camera {
    /// Projects a point in the vehicle frame to a (distorted) pixel.
    ///
    /// `None` when the point is behind the camera or so far off axis that the lens model
    /// no longer describes it (beyond the radius where the radial distortion stops being
    /// monotonic). The pixel may lie outside the image.
    pub fn project(&self, p_vehicle: &Point3<f64>) -> Option<Point2<f64>> {
        let p = self.camera_to_vehicle.inverse_transform_point(p_vehicle);
        self.project_camera(&p)
    }

    /// Projects a point given in this camera's frame (OpenCV axes) to a pixel; see [`Camera::project`].
    pub fn project_camera(&self, p: &Point3<f64>) -> Option<Point2<f64>> {
        if p.z <= 1e-6 {
            return None;
        }
        let (x, y) = (p.x / p.z, p.y / p.z);
        if x * x + y * y > self.max_radius2() {
            return None;
        }
        let (xd, yd) = self.distort(x, y);
        Some(Point2::new(self.fx * xd + self.cx, self.fy * yd + self.cy))
    }

    /// Back-projects a pixel at a given depth (metres along the optical axis) to the vehicle frame.
    ///
    /// The distortion is removed by [`Camera::undistort`]; should it fail (a pixel far outside
    /// the image on a strongly distorted lens) the pinhole ray is used instead.
    pub fn unproject_depth(&self, pixel: &Point2<f64>, depth: f64) -> Point3<f64> {
        let xd = (pixel.x - self.cx) / self.fx;
        let yd = (pixel.y - self.cy) / self.fy;
        let (x, y) = self.undistort(xd, yd).unwrap_or((xd, yd));
        self.camera_to_vehicle.transform_point(&Point3::new(x * depth, y * depth, depth))
    }

    /// Unit viewing ray of a pixel in the vehicle frame (from [`Camera::position`]); `None`
    /// when the distortion cannot be inverted there.
    pub fn ray(&self, pixel: &Point2<f64>) -> Option<Unit<Vector3<f64>>> {
        let xd = (pixel.x - self.cx) / self.fx;
        let yd = (pixel.y - self.cy) / self.fy;
        let (x, y) = self.undistort(xd, yd)?;
        Some(Unit::new_normalize(self.camera_to_vehicle.rotation * Vector3::new(x, y, 1.0)))
    }

    /// Camera centre in the vehicle frame, metres.
    pub fn position(&self) -> Point3<f64> {
        Point3::from(self.camera_to_vehicle.translation.vector)
    }

    /// Applies the Brown–Conrady model to undistorted normalised coordinates `(x, y) = (X/Z, Y/Z)`.
    pub fn distort(&self, x: f64, y: f64) -> (f64, f64) {
        let [k1, k2, p1, p2, k3] = self.distortion;
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
        (
            x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
            y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
        )
    }

    /// Inverts [`Camera::distort`] by Newton's method on the 2x2 Jacobian, starting at the
    /// distorted point. Returns the undistorted normalised coordinates, or `None` when it does
    /// not converge within the valid radius of the lens model.
    pub fn undistort(&self, xd: f64, yd: f64) -> Option<(f64, f64)> {
        self.undistort_with_iterations(xd, yd).map(|(x, y, _)| (x, y))
    }

    /// [`Camera::undistort`] that also returns the number of Newton steps taken.
    pub fn undistort_with_iterations(&self, xd: f64, yd: f64) -> Option<(f64, f64, usize)> {
        if !(xd.is_finite() && yd.is_finite()) {
            return None;
        }
        let [k1, k2, p1, p2, k3] = self.distortion;
        let limit = self.max_radius2();
        let (mut x, mut y) = (xd, yd);
        // Keep the start inside the valid radius so the first Jacobian is meaningful.
        let r2 = x * x + y * y;
        if r2 > limit {
            let s = (limit / r2).sqrt() * 0.9;
            x *= s;
            y *= s;
        }
        for it in 0..=NEWTON_MAX_ITERS {
            let (fx, fy) = self.distort(x, y);
            let (ex, ey) = (fx - xd, fy - yd);
            if ex.abs() < NEWTON_TOL && ey.abs() < NEWTON_TOL {
                return (x * x + y * y <= limit).then_some((x, y, it));
            }
            if it == NEWTON_MAX_ITERS {
                break;
            }
            let r2 = x * x + y * y;
            let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
            // d(radial)/d(r2)
            let dradial = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2);
            let j00 = radial + 2.0 * x * x * dradial + 2.0 * p1 * y + 6.0 * p2 * x;
            let j01 = 2.0 * x * y * dradial + 2.0 * p1 * x + 2.0 * p2 * y;
            let j10 = 2.0 * x * y * dradial + 2.0 * p1 * x + 2.0 * p2 * y;
            let j11 = radial + 2.0 * y * y * dradial + 6.0 * p1 * y + 2.0 * p2 * x;
            let det = j00 * j11 - j01 * j10;
            if det.abs() < 1e-15 || !det.is_finite() {
                return None;
            }
            let dx = (j11 * ex - j01 * ey) / det;
            let dy = (j00 * ey - j10 * ex) / det;
            // Damp steps that would leave the valid radius.
            let mut step = 1.0;
            while step > 1e-4 {
                let (nx, ny) = (x - step * dx, y - step * dy);
                if nx * nx + ny * ny <= limit {
                    break;
                }
                step *= 0.5;
            }
            x -= step * dx;
            y -= step * dy;
        }
        None
    }

    /// Squared undistorted normalised radius up to which the radial distortion is
    /// monotonic (the lens model's domain), capped at about 87 degrees off axis.
    ///
    /// The radial map `r -> r (1 + k1 r^2 + k2 r^4 + k3 r^6)` has derivative
    /// `g(s) = 1 + 3 k1 s + 5 k2 s^2 + 7 k3 s^3` with `s = r^2`; this is its first positive root.
    pub fn max_radius2(&self) -> f64 {
        let [k1, k2, _, _, k3] = self.distortion;
        first_positive_root(1.0, 3.0 * k1, 5.0 * k2, 7.0 * k3, MAX_RADIUS2)
    }

    /// Horizontal field of view in degrees, measured through the principal point row
    /// (from the left image edge to the right one, distortion included).
    pub fn horizontal_fov_deg(&self) -> Option<f64> {
        let left = self.undistort((0.0 - self.cx) / self.fx, 0.0)?;
        let right = self.undistort((f64::from(self.width) - self.cx) / self.fx, 0.0)?;
        Some((right.0.atan() - left.0.atan()).to_degrees())
    }

    /// Whether a pixel position lies inside the image rectangle `[0, width) x [0, height)`.
    pub fn contains(&self, pixel: &Point2<f64>) -> bool {
        pixel.x >= 0.0 && pixel.y >= 0.0 && pixel.x < f64::from(self.width) && pixel.y < f64::from(self.height)
    }
}

/// First root in `(0, cap]` of `c0 + c1 s + c2 s^2 + c3 s^3` (with `c0 > 0`), or `cap` if none.
fn first_positive_root(c0: f64, c1: f64, c2: f64, c3: f64, cap: f64) -> f64 {
    let g = |s: f64| c0 + s * (c1 + s * (c2 + s * c3));
    // Critical points split (0, cap] into intervals on which g is monotonic.
    // At most two critical points plus the cap; a fixed array keeps projection allocation-free.
    let mut knots = [0.0f64; 3];
    let mut n = 0;
    let (a, b, c) = (3.0 * c3, 2.0 * c2, c1);
    let mut add = |s: f64| {
        if s > 0.0 && s < cap {
            knots[n] = s;
            n += 1;
        }
    };
    if a.abs() > 1e-300 {
        let disc = b * b - 4.0 * a * c;
        if disc >= 0.0 {
            let sq = disc.sqrt();
            add((-b - sq) / (2.0 * a));
            add((-b + sq) / (2.0 * a));
        }
    } else if b.abs() > 1e-300 {
        add(-c / b);
    }
    knots[..n].sort_by(f64::total_cmp);
    knots[n] = cap;
    let knots = &knots[..=n];
    let mut lo = 0.0;
    for &hi in knots {
        if g(hi) <= 0.0 {
            let (mut l, mut h) = (lo, hi);
            for _ in 0..100 {
                let m = 0.5 * (l + h);
                if g(m) > 0.0 {
                    l = m;
                } else {
                    h = m;
                }
            }
            return l;
        }
        lo = hi;
    }
    cap
}

/// A calibration fault: which file, which camera, which field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibError {
    /// The file (or label) the calibration came from.
    pub file: String,
    /// The camera at fault, as `#index `name`` (or `#index` when it has no name yet).
    pub camera: Option<String>,
    /// The field at fault, e.g. `fx` or `rotation`.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CalibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(c) = &self.camera {
            write!(f, ": camera {c}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CalibError {}

/// The eight-camera rig.
#[derive(Clone, Debug, PartialEq)]
pub struct Rig {
    cameras: Vec<Camera>,
}

/// The built-in calibration file, embedded at compile time.
pub const BUILTIN_RIG_TOML: &str = include_str!("../../replay-data/rig.toml");

impl Rig {
    /// The cameras in calibration-file order; always exactly [`CAMERA_COUNT`].
    pub fn cameras(&self) -> &[Camera] {
        &self.cameras
    }

    /// A camera and its index by name.
    pub fn camera(&self, name: &str) -> Option<(CameraId, &Camera)> {
        self.cameras.iter().enumerate().find(|(_, c)| c.name == name)
    }

    /// The built-in production-like rig (the content of `replay-data/rig.toml`).
    pub fn builtin() -> Rig {
        // The embedded file is checked by the crate's tests; failing here is a build defect.
        Rig::from_toml_str(BUILTIN_RIG_TOML, "replay-data/rig.toml (built in)")
            .unwrap_or_else(|e| panic!("built-in rig calibration is invalid: {e}"))
    }

    /// Loads and validates a calibration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Rig, CalibError> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CalibError {
            file: label.clone(),
            camera: None,
            field: None,
            message: format!("cannot read calibration file: {e}"),
        })?;
        Rig::from_toml_str(&text, &label)
    }

    /// Parses and validates calibration TOML; `file` names the source in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Rig, CalibError> {
        let top_err = |field: Option<&str>, message: String| CalibError {
            file: file.to_string(),
            camera: None,
            field: field.map(str::to_string),
            message,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| top_err(None, format!("invalid TOML: {e}")))?;
        for key in table.keys() {
            if key != "version" && key != "camera" {
                return Err(top_err(Some(key), "unknown top-level key (expected `version` and `[[camera]]`)".into()));
            }
        }
        match table.get("version") {
            None => return Err(top_err(Some("version"), "missing field (this reader understands version = 1)".into())),
            Some(toml::Value::Integer(1)) => {}
            Some(v) => return Err(top_err(Some("version"), format!("unsupported version {v} (expected 1)"))),
        }
        let cams = match table.get("camera") {
            None => return Err(top_err(Some("camera"), "no [[camera]] tables".into())),
            Some(toml::Value::Array(a)) => a,
            Some(_) => return Err(top_err(Some("camera"), "must be an array of tables ([[camera]])".into())),
        };
        let mut cameras = Vec::with_capacity(cams.len());
        for (i, v) in cams.iter().enumerate() {
            let t = v.as_table().ok_or_else(|| CalibError {
                file: file.to_string(),
                camera: Some(format!("#{i}")),
                field: None,
                message: "must be a table".into(),
            })?;
            cameras.push(parse_camera(t, i, file)?);
        }
        Rig::from_cameras_labelled(cameras, file)
    }

    /// Builds a rig from cameras made in code (or read from a log), with the same checks as a file.
    pub fn from_cameras(cameras: Vec<Camera>) -> Result<Rig, CalibError> {
        Rig::from_cameras_labelled(cameras, "<cameras>")
    }

    fn from_cameras_labelled(cameras: Vec<Camera>, file: &str) -> Result<Rig, CalibError> {
        if cameras.len() != CAMERA_COUNT {
            return Err(CalibError {
                file: file.to_string(),
                camera: None,
                field: Some("camera".into()),
                message: format!("expected {CAMERA_COUNT} cameras, found {}", cameras.len()),
            });
        }
        for (i, cam) in cameras.iter().enumerate() {
            validate_camera(cam, i, file)?;
            if let Some(j) = cameras[..i].iter().position(|c| c.name == cam.name) {
                return Err(CalibError {
                    file: file.to_string(),
                    camera: Some(camera_label(i, Some(&cam.name))),
                    field: Some("name".into()),
                    message: format!("duplicate camera name (also camera #{j})"),
                });
            }
        }
        Ok(Rig { cameras })
    }

    /// Writes the rig as calibration TOML (rotations as matrices) that [`Rig::from_toml_str`] reads back.
    pub fn to_toml_string(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("# vigil camera rig calibration (see replay-data/rig.toml for the field reference)\nversion = 1\n");
        for c in &self.cameras {
            let r = c.camera_to_vehicle.rotation.to_rotation_matrix();
            let m = r.matrix();
            let t = c.camera_to_vehicle.translation.vector;
            let d = c.distortion;
            // `{:?}` on f64 prints the shortest representation that round-trips exactly.
            let _ = write!(
                s,
                "\n[[camera]]\nname = \"{}\"\ncriticality = \"{}\"\nmin_fps = {:?}\nwidth = {}\nheight = {}\n\
                 fx = {:?}\nfy = {:?}\ncx = {:?}\ncy = {:?}\ndistortion = [{:?}, {:?}, {:?}, {:?}, {:?}]\n\
                 position = [{:?}, {:?}, {:?}]\nrotation = [[{:?}, {:?}, {:?}], [{:?}, {:?}, {:?}], [{:?}, {:?}, {:?}]]\n",
                c.name,
                c.criticality.as_str(),
                c.min_fps,
                c.width,
                c.height,
                c.fx,
                c.fy,
                c.cx,
                c.cy,
                d[0],
                d[1],
                d[2],
                d[3],
                d[4],
                t.x,
                t.y,
                t.z,
                m[(0, 0)],
                m[(0, 1)],
                m[(0, 2)],
                m[(1, 0)],
                m[(1, 1)],
                m[(1, 2)],
                m[(2, 0)],
                m[(2, 1)],
                m[(2, 2)],
            );
        }
        s
    }
}

fn camera_label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("#{index} `{n}`"),
        None => format!("#{index}"),
    }
}

/// The rotation taking the OpenCV camera axes to a body that looks along vehicle +x
/// (camera z -> body x, camera x -> body -y, camera y -> body -z).
fn body_from_opencv() -> Matrix3<f64> {
    Matrix3::new(0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
}

/// Vehicle-from-camera rotation for a camera with the given roll, pitch and yaw (radians);
/// see the `rpy_deg` field in `replay-data/rig.toml`.
pub fn rotation_from_rpy(roll: f64, pitch: f64, yaw: f64) -> Rotation3<f64> {
    let body = Rotation3::from_euler_angles(roll, pitch, yaw);
    Rotation3::from_matrix_unchecked(body.matrix() * body_from_opencv())
}

const CAMERA_KEYS: [&str; 14] = [
    "name",
    "criticality",
    "min_fps",
    "width",
    "height",
    "fx",
    "fy",
    "cx",
    "cy",
    "distortion",
    "position",
    "rpy_deg",
    "rotation",
    "description",
];

fn parse_camera(t: &toml::Table, index: usize, file: &str) -> Result<Camera, CalibError> {
    let name_for_label = t.get("name").and_then(toml::Value::as_str).map(str::to_string);
    let err = |field: &str, message: String| CalibError {
        file: file.to_string(),
        camera: Some(camera_label(index, name_for_label.as_deref())),
        field: Some(field.to_string()),
        message,
    };
    for key in t.keys() {
        if !CAMERA_KEYS.contains(&key.as_str()) {
            return Err(err(key, format!("unknown field (known: {})", CAMERA_KEYS.join(", "))));
        }
    }
    let get = |field: &str| t.get(field).ok_or_else(|| err(field, "missing field".into()));
    let number = |field: &str, v: &toml::Value| -> Result<f64, CalibError> {
        match v {
            toml::Value::Float(f) => Ok(*f),
            toml::Value::Integer(i) => Ok(*i as f64),
            other => Err(err(field, format!("expected a number, found {}", other.type_str()))),
        }
    };
    let float = |field: &str| -> Result<f64, CalibError> { number(field, get(field)?) };
    let array = |field: &str, v: &toml::Value, n: usize| -> Result<Vec<f64>, CalibError> {
        let a = v.as_array().ok_or_else(|| err(field, format!("expected an array of {n} numbers, found {}", v.type_str())))?;
        if a.len() != n {
            return Err(err(field, format!("expected {n} numbers, found {}", a.len())));
        }
        a.iter().map(|x| number(field, x)).collect()
    };
    let dim = |field: &str| -> Result<u32, CalibError> {
        match get(field)? {
            toml::Value::Integer(i) if *i > 0 && *i <= 16384 => Ok(*i as u32),
            toml::Value::Integer(i) => Err(err(field, format!("must be a positive pixel count up to 16384, found {i}"))),
            other => Err(err(field, format!("expected an integer, found {}", other.type_str()))),
        }
    };

    let name = match get("name")? {
        toml::Value::String(s) => s.clone(),
        other => return Err(err("name", format!("expected a string, found {}", other.type_str()))),
    };
    let criticality = match get("criticality")? {
        toml::Value::String(s) => match s.as_str() {
            "high" => Criticality::High,
            "medium" => Criticality::Medium,
            "low" => Criticality::Low,
            _ => return Err(err("criticality", format!("expected \"high\", \"medium\" or \"low\", found \"{s}\""))),
        },
        other => return Err(err("criticality", format!("expected a string, found {}", other.type_str()))),
    };
    let min_fps = float("min_fps")?;
    let width = dim("width")?;
    let height = dim("height")?;
    let (fx, fy, cx, cy) = (float("fx")?, float("fy")?, float("cx")?, float("cy")?);
    let d = array("distortion", get("distortion")?, 5)?;
    let p = array("position", get("position")?, 3)?;
    let rotation = match (t.get("rpy_deg"), t.get("rotation")) {
        (Some(_), Some(_)) => {
            return Err(err("rotation", "give either `rpy_deg` or `rotation`, not both".into()));
        }
        (None, None) => return Err(err("rpy_deg", "missing field (give `rpy_deg` or `rotation`)".into())),
        (Some(v), None) => {
            let a = array("rpy_deg", v, 3)?;
            if a.iter().any(|x| !x.is_finite()) {
                return Err(err("rpy_deg", "angles must be finite".into()));
            }
            rotation_from_rpy(a[0].to_radians(), a[1].to_radians(), a[2].to_radians())
        }
        (None, Some(v)) => {
            let rows = v.as_array().ok_or_else(|| err("rotation", format!("expected a 3x3 array, found {}", v.type_str())))?;
            if rows.len() != 3 {
                return Err(err("rotation", format!("expected 3 rows, found {}", rows.len())));
            }
            let mut m = Matrix3::zeros();
            for (r, row) in rows.iter().enumerate() {
                let vals = array("rotation", row, 3)?;
                for (c, x) in vals.into_iter().enumerate() {
                    m[(r, c)] = x;
                }
            }
            check_rotation(&m).map_err(|msg| err("rotation", msg))?;
            Rotation3::from_matrix_unchecked(m)
        }
    };
    Ok(Camera {
        name,
        width,
        height,
        fx,
        fy,
        cx,
        cy,
        distortion: [d[0], d[1], d[2], d[3], d[4]],
        camera_to_vehicle: Isometry3::from_parts(
            Translation3::new(p[0], p[1], p[2]),
            UnitQuaternion::from_rotation_matrix(&rotation),
        ),
        criticality,
        min_fps,
    })
}

fn check_rotation(m: &Matrix3<f64>) -> Result<(), String> {
    if m.iter().any(|x| !x.is_finite()) {
        return Err("entries must be finite".into());
    }
    let dev = (m.transpose() * m - Matrix3::identity()).abs().max();
    if dev > ORTHONORMAL_TOL {
        return Err(format!("not orthonormal: max |R^T R - I| = {dev:.3e} (tolerance {ORTHONORMAL_TOL:.0e})"));
    }
    if m.determinant() < 0.0 {
        return Err("determinant is -1: a reflection, not a rotation".into());
    }
    Ok(())
}

fn validate_camera(c: &Camera, index: usize, file: &str) -> Result<(), CalibError> {
    let err = |field: &str, message: String| CalibError {
        file: file.to_string(),
        camera: Some(camera_label(index, Some(&c.name))),
        field: Some(field.to_string()),
        message,
    };
    if c.name.is_empty() || !c.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(err("name", format!("must be non-empty [a-z0-9_]+ (it names MCAP topics), found {:?}", c.name)));
    }
    if c.width == 0 || c.height == 0 {
        return Err(err(if c.width == 0 { "width" } else { "height" }, "must be positive".into()));
    }
    for (field, f) in [("fx", c.fx), ("fy", c.fy)] {
        if !f.is_finite() || f <= 0.0 {
            return Err(err(field, format!("focal length must be positive and finite, found {f}")));
        }
    }
    for (field, p, size) in [("cx", c.cx, c.width), ("cy", c.cy, c.height)] {
        if !p.is_finite() || p < 0.0 || p > f64::from(size) {
            return Err(err(field, format!("principal point {p} is outside the image (0..={size})")));
        }
    }
    if !c.min_fps.is_finite() || c.min_fps <= 0.0 {
        return Err(err("min_fps", format!("must be positive, found {}", c.min_fps)));
    }
    if c.distortion.iter().any(|x| !x.is_finite()) {
        return Err(err("distortion", "coefficients must be finite".into()));
    }
    let t = c.camera_to_vehicle.translation.vector;
    if t.iter().any(|x| !x.is_finite()) {
        return Err(err("position", "must be finite".into()));
    }
    let m = *c.camera_to_vehicle.rotation.to_rotation_matrix().matrix();
    check_rotation(&m).map_err(|msg| err("rotation", msg))?;
    // The lens model must be invertible over the whole image: every border pixel undistorts.
    let (w, h) = (f64::from(c.width), f64::from(c.height));
    let steps = 16;
    for i in 0..=steps {
        let f = f64::from(i) / f64::from(steps);
        for (u, v) in [(f * w, 0.0), (f * w, h), (0.0, f * h), (w, f * h)] {
            if c.undistort((u - c.cx) / c.fx, (v - c.cy) / c.fy).is_none() {
                return Err(err(
                    "distortion",
                    format!("cannot be inverted at pixel ({u:.0}, {v:.0}): the radial distortion folds over inside the image"),
                ));
            }
        }
    }
    Ok(())
}
