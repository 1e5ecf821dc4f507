//! From per-camera detections to a fused, tracked object list in the vehicle frame.
//!
//! Three steps, each a plain function of its inputs so replay is reproducible:
//! 1. [`lift`]: a detection (image box + depth along the optical axis) becomes a point in the
//!    vehicle frame with the rig calibration.
//! 2. [`Fusion`]: the same object seen by overlapping cameras is suppressed in bird's-eye view
//!    (class-aware distance gate, highest score wins, positions averaged by score).
//! 3. [`Tracker`]: constant-velocity alpha-beta tracks with stable ids and velocities.
//!
//! Every buffer is sized at construction; the per-frame calls never allocate (see the
//! `no_alloc` test binary).

use rig::{Camera, ObjectClass};

/// Most objects one fused frame can carry (the control snapshot has the same capacity).
pub const MAX_OBJECTS: usize = 128;

/// One detection in one camera image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// Camera index in the rig.
    pub camera: u8,
    /// Class.
    pub class: ObjectClass,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Box `[u0, v0, u1, v1]`, pixels.
    pub bbox: [f32; 4],
    /// Depth of the object centre along the camera's optical axis, metres.
    pub depth: f32,
}

/// A detection lifted to the vehicle frame (and, after fusion, merged across cameras).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object3D {
    /// Class.
    pub class: ObjectClass,
    /// Confidence in `[0, 1]`.
    pub score: f32,
    /// Centre in the vehicle frame, metres.
    pub position: [f32; 3],
    /// Width and height of the object as seen (metres), from the box and the depth.
    pub extent: [f32; 2],
    /// Bit `i` set when camera `i` contributed.
    pub camera_mask: u8,
}

/// Lifts one detection to the vehicle frame; `None` for a non-finite or non-positive depth.
pub fn lift(camera: &Camera, det: &Detection) -> Option<Object3D> {
    let depth = f64::from(det.depth);
    if !depth.is_finite() || depth <= 0.0 || !det.bbox.iter().all(|v| v.is_finite()) {
        return None;
    }
    let [u0, v0, u1, v1] = det.bbox.map(f64::from);
    let centre = nalgebra::Point2::new(0.5 * (u0 + u1), 0.5 * (v0 + v1));
    let p = camera.unproject_depth(&centre, depth);
    let width = ((u1 - u0).abs() / camera.fx * depth) as f32;
    let height = ((v1 - v0).abs() / camera.fy * depth) as f32;
    Some(Object3D {
        class: det.class,
        score: det.score,
        position: [p.x as f32, p.y as f32, p.z as f32],
        extent: [width, height],
        camera_mask: 1u8.checked_shl(u32::from(det.camera)).unwrap_or(0),
    })
}

/// Bird's-eye-view gate within which two same-class objects are one, metres, at zero range.
/// The gate grows by [`GATE_PER_METRE`] of the range because depth error grows with distance.
pub fn class_gate(class: ObjectClass) -> f32 {
    match class {
        ObjectClass::Car => 2.0,
        ObjectClass::Truck => 3.5,
        ObjectClass::Pedestrian => 0.8,
        ObjectClass::Cyclist => 1.2,
    }
}

/// Growth of the fusion and association gates with range (fraction of the distance).
pub const GATE_PER_METRE: f32 = 0.06;

fn bev_dist(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn range(p: &[f32; 3]) -> f32 {
    (p[0] * p[0] + p[1] * p[1]).sqrt()
}

/// Cross-camera suppression in the vehicle frame.
#[derive(Debug)]
pub struct Fusion {
    input: Vec<Object3D>,
    output: Vec<Object3D>,
    /// Objects dropped because the input exceeded [`MAX_OBJECTS`] (highest scores are kept).
    pub overflow: u64,
}

impl Default for Fusion {
    fn default() -> Self {
        Self::new()
    }
}

impl Fusion {
    /// Buffers for [`MAX_OBJECTS`] objects.
    pub fn new() -> Self {
        Fusion { input: Vec::with_capacity(MAX_OBJECTS), output: Vec::with_capacity(MAX_OBJECTS), overflow: 0 }
    }

    /// Starts a fused frame.
    pub fn clear(&mut self) {
        self.input.clear();
    }

    /// Adds one lifted object; beyond capacity the lowest-scoring object is replaced or the new one dropped.
    pub fn push(&mut self, obj: Object3D) {
        if self.input.len() < MAX_OBJECTS {
            self.input.push(obj);
            return;
        }
        self.overflow += 1;
        if let Some((i, worst)) =
            self.input.iter().enumerate().min_by(|a, b| a.1.score.total_cmp(&b.1.score))
            && worst.score < obj.score
        {
            self.input[i] = obj;
        }
    }

    /// Objects pushed since [`Fusion::clear`], before fusion.
    pub fn pending(&self) -> &[Object3D] {
        &self.input
    }

    /// Fuses the pushed objects: greedy by descending score, an object within the class gate of a
    /// kept same-class object is merged into it (score-weighted position, union of cameras).
    pub fn fuse(&mut self) -> &[Object3D] {
        // Deterministic order: score, then position, so ties do not depend on input order.
        self.input.sort_unstable_by(|a, b| {
            b.score.total_cmp(&a.score).then(a.position[0].total_cmp(&b.position[0])).then(a.position[1].total_cmp(&b.position[1]))
        });
        self.output.clear();
        let mut weights = [0f32; MAX_OBJECTS];
        for obj in &self.input {
            let gate = class_gate(obj.class) + GATE_PER_METRE * range(&obj.position);
            let hit = self
                .output
                .iter()
                .enumerate()
                .filter(|(_, k)| k.class == obj.class && bev_dist(&k.position, &obj.position) <= gate)
                .min_by(|a, b| bev_dist(&a.1.position, &obj.position).total_cmp(&bev_dist(&b.1.position, &obj.position)))
                .map(|(i, _)| i);
            match hit {
                Some(i) => {
                    let k = &mut self.output[i];
                    let (wk, wo) = (weights[i], obj.score.max(1e-6));
                    for (kp, op) in k.position.iter_mut().zip(obj.position) {
                        *kp = (*kp * wk + op * wo) / (wk + wo);
                    }
                    weights[i] = wk + wo;
                    k.camera_mask |= obj.camera_mask;
                }
                None => {
                    weights[self.output.len()] = obj.score.max(1e-6);
                    self.output.push(*obj);
                }
            }
        }
        &self.output
    }
}

/// One tracked object.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Track {
    /// Stable id, never reused within a run.
    pub id: u32,
    /// Class.
    pub class: ObjectClass,
    /// Smoothed confidence.
    pub score: f32,
    /// Estimated position in the vehicle frame at `updated_ns`, metres.
    pub position: [f32; 3],
    /// Estimated velocity in the vehicle frame, m/s.
    pub velocity: [f32; 3],
    /// Consecutive updates with a matching detection.
    pub hits: u32,
    /// Consecutive updates without one.
    pub misses: u32,
    /// Time of the last update, nanoseconds.
    pub updated_ns: u64,
}

impl Track {
    /// A track is reported once it has been seen in [`Tracker::CONFIRM_HITS`] updates.
    pub fn confirmed(&self) -> bool {
        self.hits >= Tracker::CONFIRM_HITS
    }
}

/// Constant-velocity alpha-beta multi-object tracker with greedy nearest-neighbour association.
#[derive(Debug)]
pub struct Tracker {
    tracks: Vec<Track>,
    claimed: Vec<bool>,
    next_id: u32,
    last_ns: Option<u64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracker {
    /// Updates with a match before a track is reported.
    pub const CONFIRM_HITS: u32 = 2;
    /// Updates without a match after which a track is dropped.
    pub const MAX_MISSES: u32 = 5;
    /// Position gain.
    pub const ALPHA: f32 = 0.5;
    /// Velocity gain.
    pub const BETA: f32 = 0.2;

    /// Room for [`MAX_OBJECTS`] tracks.
    pub fn new() -> Self {
        Tracker { tracks: Vec::with_capacity(MAX_OBJECTS), claimed: Vec::with_capacity(MAX_OBJECTS), next_id: 1, last_ns: None }
    }

    /// All live tracks (confirmed or not).
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Advances every track to `now_ns` and folds in the fused objects observed at that time.
    pub fn update(&mut self, objects: &[Object3D], now_ns: u64) {
        let dt = match self.last_ns {
            Some(t) if now_ns > t => (now_ns - t) as f32 * 1e-9,
            _ => 0.0,
        };
        self.last_ns = Some(now_ns.max(self.last_ns.unwrap_or(0)));
        for t in &mut self.tracks {
            for k in 0..3 {
                t.position[k] += t.velocity[k] * dt;
            }
        }
        self.claimed.clear();
        self.claimed.resize(self.tracks.len(), false);
        for obj in objects {
            let gate = class_gate(obj.class) + GATE_PER_METRE * range(&obj.position);
            let best = self
                .tracks
                .iter()
                .enumerate()
                .filter(|(i, t)| !self.claimed[*i] && t.class == obj.class && bev_dist(&t.position, &obj.position) <= gate)
                .min_by(|a, b| bev_dist(&a.1.position, &obj.position).total_cmp(&bev_dist(&b.1.position, &obj.position)))
                .map(|(i, _)| i);
            match best {
                Some(i) => {
                    self.claimed[i] = true;
                    let t = &mut self.tracks[i];
                    for k in 0..3 {
                        let r = obj.position[k] - t.position[k];
                        t.position[k] += Self::ALPHA * r;
                        if dt > 0.0 {
                            t.velocity[k] += Self::BETA * r / dt;
                        }
                    }
                    t.score = 0.7 * t.score + 0.3 * obj.score;
                    t.hits += 1;
                    t.misses = 0;
                    t.updated_ns = now_ns;
                }
                None if self.tracks.len() < MAX_OBJECTS => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        class: obj.class,
                        score: obj.score,
                        position: obj.position,
                        velocity: [0.0; 3],
                        hits: 1,
                        misses: 0,
                        updated_ns: now_ns,
                    });
                    self.claimed.push(true);
                    self.next_id = self.next_id.wrapping_add(1).max(1);
                }
                None => {}
            }
        }
        for (t, claimed) in self.tracks.iter_mut().zip(&self.claimed) {
            if !claimed {
                t.misses += 1;
                t.hits = if t.confirmed() { t.hits } else { 0 };
            }
        }
        self.tracks.retain(|t| t.misses <= Self::MAX_MISSES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig::Rig;

    fn det_at(camera: &Camera, cam_idx: u8, p: [f64; 3], class: ObjectClass, score: f32) -> Detection {
        let px = camera.project(&nalgebra::Point3::new(p[0], p[1], p[2])).expect("visible");
        let depth = camera.camera_to_vehicle.inverse_transform_point(&nalgebra::Point3::new(p[0], p[1], p[2])).z;
        Detection {
            camera: cam_idx,
            class,
            score,
            bbox: [(px.x - 10.0) as f32, (px.y - 8.0) as f32, (px.x + 10.0) as f32, (px.y + 8.0) as f32],
            depth: depth as f32,
        }
    }

    #[test]
    fn lift_inverts_projection_for_every_camera() {
        let rig = Rig::builtin();
        for (i, cam) in rig.cameras().iter().enumerate() {
            // A point 15 m along this camera's optical axis, slightly off-centre.
            let p = cam.camera_to_vehicle.transform_point(&nalgebra::Point3::new(0.8, 0.3, 15.0));
            let d = det_at(cam, i as u8, [p.x, p.y, p.z], ObjectClass::Car, 0.9);
            let o = lift(cam, &d).expect("finite");
            let err = ((o.position[0] as f64 - p.x).powi(2) + (o.position[1] as f64 - p.y).powi(2) + (o.position[2] as f64 - p.z).powi(2)).sqrt();
            assert!(err < 0.05, "camera {i}: lifted {:?} vs {p:?} (err {err} m)", o.position);
            assert_eq!(o.camera_mask, 1 << i);
        }
    }

    #[test]
    fn lift_rejects_bad_depth() {
        let rig = Rig::builtin();
        let cam = &rig.cameras()[0];
        let mut d = Detection { camera: 0, class: ObjectClass::Car, score: 0.5, bbox: [0.0, 0.0, 10.0, 10.0], depth: f32::NAN };
        assert!(lift(cam, &d).is_none());
        d.depth = -1.0;
        assert!(lift(cam, &d).is_none());
    }

    fn obj(class: ObjectClass, x: f32, y: f32, score: f32, cam: u8) -> Object3D {
        Object3D { class, score, position: [x, y, 0.8], extent: [1.8, 1.5], camera_mask: 1 << cam }
    }

    #[test]
    fn fusion_merges_same_object_from_two_cameras_only() {
        let mut f = Fusion::new();
        f.push(obj(ObjectClass::Car, 20.0, 3.0, 0.9, 0));
        f.push(obj(ObjectClass::Car, 20.6, 3.3, 0.6, 1)); // same car, other camera
        f.push(obj(ObjectClass::Pedestrian, 20.3, 3.1, 0.8, 1)); // other class: kept
        f.push(obj(ObjectClass::Car, 30.0, -3.0, 0.7, 0)); // other car: kept
        let out = f.fuse().to_vec();
        assert_eq!(out.len(), 3, "{out:?}");
        let car = out.iter().find(|o| o.class == ObjectClass::Car && o.position[0] < 25.0).expect("car");
        assert_eq!(car.camera_mask, 0b11);
        assert!(car.position[0] > 20.0 && car.position[0] < 20.6, "score-weighted mean: {:?}", car.position);
        assert!((car.score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn fusion_is_independent_of_input_order() {
        let objs = [
            obj(ObjectClass::Car, 20.0, 3.0, 0.9, 0),
            obj(ObjectClass::Car, 20.6, 3.3, 0.6, 1),
            obj(ObjectClass::Car, 21.5, 3.5, 0.6, 2),
            obj(ObjectClass::Cyclist, 8.0, -2.0, 0.5, 3),
        ];
        let mut a = Fusion::new();
        objs.iter().for_each(|o| a.push(*o));
        let fa = a.fuse().to_vec();
        let mut b = Fusion::new();
        objs.iter().rev().for_each(|o| b.push(*o));
        assert_eq!(fa, b.fuse().to_vec());
    }

    #[test]
    fn fusion_keeps_highest_scores_on_overflow() {
        let mut f = Fusion::new();
        for i in 0..(MAX_OBJECTS + 10) {
            f.push(obj(ObjectClass::Pedestrian, i as f32 * 5.0, 0.0, (i as f32 + 1.0) / 1000.0, 0));
        }
        assert_eq!(f.overflow, 10);
        let kept = f.pending();
        assert_eq!(kept.len(), MAX_OBJECTS);
        assert!(kept.iter().all(|o| o.score > 10.5 / 1000.0), "the ten lowest scores are the ones dropped");
    }

    #[test]
    fn tracker_keeps_ids_and_estimates_velocity() {
        let mut t = Tracker::new();
        // Car moving +10 m/s in x, pedestrian standing; 36 Hz updates.
        let dt = 1e9 / 36.0;
        for k in 0..40u64 {
            let time = k as f64 / 36.0;
            let objs = [obj(ObjectClass::Car, 20.0 + 10.0 * time as f32, 2.0, 0.9, 0), obj(ObjectClass::Pedestrian, 10.0, -4.0, 0.8, 0)];
            t.update(&objs, (k as f64 * dt) as u64);
        }
        assert_eq!(t.tracks().len(), 2);
        let car = t.tracks().iter().find(|x| x.class == ObjectClass::Car).expect("car");
        let ped = t.tracks().iter().find(|x| x.class == ObjectClass::Pedestrian).expect("ped");
        assert_eq!((car.id, ped.id), (1, 2), "ids are stable and assigned in order");
        assert!((car.velocity[0] - 10.0).abs() < 0.5, "car vx {}", car.velocity[0]);
        assert!(ped.velocity[0].abs() < 0.2 && ped.velocity[1].abs() < 0.2);
        assert!(car.confirmed() && ped.confirmed());
    }

    #[test]
    fn tracker_drops_lost_tracks_and_never_reuses_ids() {
        let mut t = Tracker::new();
        t.update(&[obj(ObjectClass::Car, 10.0, 0.0, 0.9, 0)], 0);
        for k in 1..=(Tracker::MAX_MISSES as u64 + 1) {
            t.update(&[], k * 27_000_000);
        }
        assert!(t.tracks().is_empty());
        t.update(&[obj(ObjectClass::Car, 10.0, 0.0, 0.9, 0)], 1_000_000_000);
        assert_eq!(t.tracks()[0].id, 2);
    }
}
