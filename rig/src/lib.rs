//! The camera rig and the synthetic world.
//!
//! `rig` owns everything that describes *where the cameras are and what they see*:
//!
//! * [`calib`]: per-camera intrinsics (pinhole plus Brown–Conrady distortion) and
//!   extrinsics to the vehicle frame, loaded from a human-editable TOML file with
//!   errors that name the camera and field at fault.
//! * [`synth`]: a seeded, deterministic procedural world (road, lanes, ego motion,
//!   cars, trucks, pedestrians, cyclists, static clutter) rendered through every
//!   camera of the rig, with per-object ground truth.
//!
//! Frames of reference (used everywhere in vigil):
//! * **vehicle frame** (ISO 8855): x forward, y left, z up, metres, origin on the
//!   ground below the centre of the rear axle.
//! * **camera frame** (OpenCV): x right, y down, z along the optical axis.
//! * **image**: pixel (u, v), u right, v down, origin at the top-left corner of the
//!   top-left pixel; a pixel centre is at (u + 0.5, v + 0.5).
//!
//! This crate is `#![forbid(unsafe_code)]` and does no I/O except [`calib::Rig::load`].
#![forbid(unsafe_code)]

pub mod calib;
pub mod synth;

pub use calib::{CalibError, Camera, CameraId, Criticality, Rig, CAMERA_COUNT};
pub use synth::{FrameTruth, GtBox, GtObject, ObjectClass, PlacedObject, SyntheticRig};
