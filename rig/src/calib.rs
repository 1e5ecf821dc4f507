//! Rig calibration: the eight cameras, their intrinsics and extrinsics.
//!
//! CONTRACT (other crates code against these signatures; keep them stable):
//! `Rig::builtin()`, `Rig::load(path)`, `Rig::cameras()`, `Camera::{project, unproject_depth}`,
//! `Camera::width/height`.

use nalgebra::{Isometry3, Point2, Point3};
use serde::{Deserialize, Serialize};

/// Number of cameras on the production rig.
pub const CAMERA_COUNT: usize = 8;

/// Index of a camera in the rig, `0..CAMERA_COUNT`, in the order of the calibration file.
pub type CameraId = usize;

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

/// One calibrated camera.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    /// Short name used for MCAP topics, e.g. `front_wide`.
    pub name: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Focal lengths and principal point, pixels.
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
    /// Projects a point in the vehicle frame to a (distorted) pixel; `None` behind the camera.
    pub fn project(&self, p_vehicle: &Point3<f64>) -> Option<Point2<f64>> {
        let p = self.camera_to_vehicle.inverse_transform_point(p_vehicle);
        if p.z <= 1e-6 {
            return None;
        }
        Some(Point2::new(self.fx * p.x / p.z + self.cx, self.fy * p.y / p.z + self.cy))
    }

    /// Back-projects a pixel at a given depth (metres along the optical axis) to the vehicle frame.
    pub fn unproject_depth(&self, pixel: &Point2<f64>, depth: f64) -> Point3<f64> {
        let x = (pixel.x - self.cx) / self.fx * depth;
        let y = (pixel.y - self.cy) / self.fy * depth;
        self.camera_to_vehicle.transform_point(&Point3::new(x, y, depth))
    }
}

/// The eight-camera rig.
#[derive(Clone, Debug, PartialEq)]
pub struct Rig {
    cameras: Vec<Camera>,
}

impl Rig {
    /// The cameras in calibration-file order; always exactly [`CAMERA_COUNT`].
    pub fn cameras(&self) -> &[Camera] {
        &self.cameras
    }

    /// The built-in production-like rig (the content of `replay-data/rig.toml`).
    pub fn builtin() -> Rig {
        // Placeholder geometry until the calibration loader lands: eight forward pinholes.
        let cam = |i: usize| Camera {
            name: format!("cam{i}"),
            width: 640,
            height: 384,
            fx: 400.0,
            fy: 400.0,
            cx: 320.0,
            cy: 192.0,
            distortion: [0.0; 5],
            camera_to_vehicle: Isometry3::identity(),
            criticality: Criticality::High,
            min_fps: 18.0,
        };
        Rig { cameras: (0..CAMERA_COUNT).map(cam).collect() }
    }
}
