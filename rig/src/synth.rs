//! The deterministic synthetic world and its renderer.
//!
//! CONTRACT (other crates code against these signatures; keep them stable):
//! `SyntheticRig::new(rig, seed, fps)`, `SyntheticRig::next_frame(&mut self, images) -> FrameTruth`,
//! and the serde form of [`FrameTruth`] (it is the `vigil.GroundTruth` JSON schema in MCAP).

use serde::{Deserialize, Serialize};

use crate::calib::Rig;

/// Object classes the detector learns. The discriminant is the class index of the model's heatmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ObjectClass {
    /// Passenger car, van.
    Car = 0,
    /// Truck, bus.
    Truck = 1,
    /// Pedestrian.
    Pedestrian = 2,
    /// Cyclist (rider and bicycle as one object).
    Cyclist = 3,
}

impl ObjectClass {
    /// Number of classes.
    pub const COUNT: usize = 4;
    /// All classes in index order.
    pub const ALL: [ObjectClass; 4] = [Self::Car, Self::Truck, Self::Pedestrian, Self::Cyclist];
}

/// An object's 2D box in one camera.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GtBox {
    /// Camera index in the rig.
    pub camera: u8,
    /// Box corners, pixels, clipped to the image: `[u0, v0, u1, v1]`.
    pub bbox: [f32; 4],
    /// Fraction of the object's projected pixels that are visible (not occluded, inside the image).
    pub visible_fraction: f32,
    /// Distance along the camera's optical axis to the object centre, metres.
    pub depth: f32,
}

/// One object of the world with its ground truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GtObject {
    /// Stable id across frames.
    pub id: u32,
    /// Class.
    pub class: ObjectClass,
    /// Centre of the object's 3D box in the vehicle frame, metres.
    pub position: [f64; 3],
    /// Length, width, height, metres.
    pub size: [f64; 3],
    /// Heading about the vehicle z axis, radians.
    pub yaw: f64,
    /// Velocity in the vehicle frame, m/s.
    pub velocity: [f64; 3],
    /// Euclidean distance from the vehicle origin, metres.
    pub distance: f64,
    /// Boxes in every camera that sees any part of the object.
    pub boxes: Vec<GtBox>,
}

/// Ground truth of one rig frame (all cameras share one capture instant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct FrameTruth {
    /// Frame counter from 0.
    pub frame: u64,
    /// Capture time, nanoseconds since the start of the recording.
    pub timestamp_ns: u64,
    /// Ego pose in the world frame: `[x, y, yaw]`, metres and radians.
    pub ego_pose: [f64; 3],
    /// Ego speed, m/s.
    pub ego_speed: f64,
    /// Labelled objects (static clutter is not labelled).
    pub objects: Vec<GtObject>,
}

/// The synthetic world rendered through a rig.
#[derive(Debug)]
pub struct SyntheticRig {
    rig: Rig,
    seed: u64,
    fps: f64,
    frame: u64,
}

impl SyntheticRig {
    /// A world seeded by `seed`, stepped at `fps`.
    pub fn new(rig: Rig, seed: u64, fps: f64) -> Self {
        SyntheticRig { rig, seed, fps, frame: 0 }
    }

    /// The rig the world renders through.
    pub fn rig(&self) -> &Rig {
        &self.rig
    }

    /// Advances one frame and renders every camera as packed RGB8 into `images[cam]`
    /// (each `width * height * 3` bytes), returning that frame's ground truth.
    pub fn next_frame(&mut self, images: &mut [Vec<u8>]) -> FrameTruth {
        for (cam, img) in self.rig.cameras().iter().zip(images.iter_mut()) {
            img.resize((cam.width * cam.height * 3) as usize, 0);
            let shade = ((self.seed as u64 + self.frame) % 200) as u8;
            img.fill(shade);
        }
        let truth = FrameTruth {
            frame: self.frame,
            timestamp_ns: (self.frame as f64 * 1e9 / self.fps).round() as u64,
            ..FrameTruth::default()
        };
        self.frame += 1;
        truth
    }
}
