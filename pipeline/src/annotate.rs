//! Replay output: what the pipeline saw and decided, as Foxglove messages.
//!
//! [`Recorder`] is the [`SnapshotSink`] of a deterministic replay. On the hot thread it only
//! copies each camera's detections and lifted objects and each published snapshot into
//! buffers reserved at start-up; the replay driver drains them between two
//! [`crate::runtime::Runtime::step`] calls and turns them into messages with the functions
//! of this module:
//!
//! | function | schema | what |
//! |---|---|---|
//! | [`image_annotations`] | `foxglove.ImageAnnotations` | one box (line loop) and one `class score` label per detection, on the image's timestamp |
//! | [`scene_update`] | `foxglove.SceneUpdate` | one cube per confirmed track in the `vehicle` frame, id `track/<id>` |
//! | [`snapshot_json`] | `vigil.Snapshot` (JSON) | the control snapshot as published |
//!
//! Every value comes from integer detector output and from the pipeline's own arithmetic;
//! no transcendental function of the platform's maths library is used here, so the encoded
//! bytes depend on nothing but the inputs.

use control::{FLAG_DEGRADED, FLAG_REVERTED, FLAG_STALE, Snapshot};
use foxglove::messages::{
    Color, CubePrimitive, ImageAnnotations, KeyValuePair, Point2, PointsAnnotation, Pose, Quaternion, SceneEntity,
    SceneEntityDeletion, SceneUpdate, TextAnnotation, TextPrimitive, Timestamp, Vector3,
};
use rig::ObjectClass;

use crate::perception::{Detection, MAX_OBJECTS, Object3D};
use crate::runtime::{CameraResult, SnapshotSink};

/// Name of the snapshot schema (`jsonschema` encoding, `json` messages).
pub const SNAPSHOT_SCHEMA_NAME: &str = "vigil.Snapshot";

/// JSON Schema of the messages written by [`snapshot_json`].
pub const SNAPSHOT_SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"vigil.Snapshot","description":"A control::Snapshot as published by the pipeline (docs/CONTROL.md), in JSON","type":"object","required":["sequence","capture_ns","publish_ns","model_version","degradation_level","flags","stale","degraded","reverted","cameras","objects"],"properties":{"sequence":{"type":"integer","description":"publication counter, 1 for the first snapshot"},"capture_ns":{"type":"integer","description":"capture time of the oldest contributing frame, ns on the replay clock"},"publish_ns":{"type":"integer","description":"publication time, ns on the replay clock"},"model_version":{"type":"integer"},"degradation_level":{"type":"integer","description":"degradation ladder level, 0 = nominal"},"flags":{"type":"integer","description":"FLAG_* bits: 1 stale, 2 degraded, 4 reverted"},"stale":{"type":"boolean"},"degraded":{"type":"boolean"},"reverted":{"type":"boolean"},"cameras":{"type":"array","items":{"type":"object","required":["last_capture_ns","frames","fps"],"properties":{"last_capture_ns":{"type":"integer","description":"capture time of the camera's newest processed frame, 0 = none yet"},"frames":{"type":"integer","description":"frames of the camera processed so far"},"fps":{"type":"number","description":"processed rate over the last second"}}}},"objects":{"type":"array","items":{"type":"object","required":["track_id","class","confidence","position","velocity"],"properties":{"track_id":{"type":"integer"},"class":{"type":"string","enum":["car","truck","pedestrian","cyclist","unknown"]},"confidence":{"type":"number"},"position":{"type":"array","items":{"type":"number"},"minItems":3,"maxItems":3,"description":"vehicle frame, m"},"velocity":{"type":"array","items":{"type":"number"},"minItems":3,"maxItems":3,"description":"vehicle frame, m/s"}}}}}}"#;

/// Frame id the scene entities are placed in (see `docs/FORMATS.md`).
pub const VEHICLE_FRAME: &str = crate::mcap_io::VEHICLE_FRAME;

/// One camera result as the [`Recorder`] kept it: ranges into its detection and object buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultRecord {
    /// Camera index in the rig.
    pub camera: u8,
    /// Variant that ran.
    pub variant: u8,
    /// Capture time of the frame (= the image's timestamp), ns.
    pub capture_ns: u64,
    /// When the result was ready on the replay clock, ns.
    pub done_ns: u64,
    /// Range of [`Recorder::detections`].
    pub dets: (u32, u32),
    /// Range of [`Recorder::objects`].
    pub objects: (u32, u32),
}

/// The sink of a deterministic replay: keeps what the pipeline produced until the driver drains
/// it. Capacity for one step's output is reserved up front; as long as the driver drains after
/// every step, the hot thread never allocates.
#[derive(Debug)]
pub struct Recorder {
    /// Camera results since the last [`Recorder::clear`].
    pub results: Vec<ResultRecord>,
    /// Detections of those results.
    pub detections: Vec<Detection>,
    /// Lifted objects of those results.
    pub objects: Vec<Object3D>,
    /// Snapshots published since the last clear (sequence numbers set).
    pub snapshots: Vec<Snapshot>,
    published: u64,
    detections_seen: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder with room for a few steps' output.
    pub fn new() -> Self {
        Recorder {
            results: Vec::with_capacity(16),
            detections: Vec::with_capacity(16 * MAX_OBJECTS),
            objects: Vec::with_capacity(16 * MAX_OBJECTS),
            snapshots: Vec::with_capacity(16),
            published: 0,
            detections_seen: 0,
        }
    }

    /// Forgets the drained records (keeps the buffers).
    pub fn clear(&mut self) {
        self.results.clear();
        self.detections.clear();
        self.objects.clear();
        self.snapshots.clear();
    }

    /// Snapshots published so far.
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Detections seen so far (all cameras).
    pub fn detections_seen(&self) -> u64 {
        self.detections_seen
    }

    /// The detections of a result.
    pub fn detections_of(&self, r: &ResultRecord) -> &[Detection] {
        &self.detections[r.dets.0 as usize..r.dets.1 as usize]
    }

    /// The lifted objects of a result.
    pub fn objects_of(&self, r: &ResultRecord) -> &[Object3D] {
        &self.objects[r.objects.0 as usize..r.objects.1 as usize]
    }
}

impl SnapshotSink for Recorder {
    fn publish(&mut self, s: &mut Snapshot) {
        self.published += 1;
        s.sequence = self.published;
        s.checksum = control::checksum(s);
        self.snapshots.push(*s);
    }

    fn on_result(&mut self, r: &CameraResult<'_>) {
        let d0 = self.detections.len() as u32;
        self.detections.extend_from_slice(r.detections);
        let o0 = self.objects.len() as u32;
        self.objects.extend_from_slice(r.objects);
        self.detections_seen += r.detections.len() as u64;
        self.results.push(ResultRecord {
            camera: r.camera,
            variant: r.variant,
            capture_ns: r.capture_ns,
            done_ns: r.done_ns,
            dets: (d0, self.detections.len() as u32),
            objects: (o0, self.objects.len() as u32),
        });
    }
}

/// A Foxglove timestamp from nanoseconds.
pub fn timestamp(ns: u64) -> Timestamp {
    Timestamp::new((ns / 1_000_000_000) as u32, (ns % 1_000_000_000) as u32)
}

/// Lower-case class name (`unknown` outside the four classes).
pub fn class_name(class: u16) -> &'static str {
    match ObjectClass::ALL.get(usize::from(class)) {
        Some(ObjectClass::Car) => "car",
        Some(ObjectClass::Truck) => "truck",
        Some(ObjectClass::Pedestrian) => "pedestrian",
        Some(ObjectClass::Cyclist) => "cyclist",
        None => "unknown",
    }
}

/// Display colour of a class (opaque).
pub fn class_color(class: u16) -> Color {
    let (r, g, b) = match class {
        0 => (0.1, 0.6, 1.0),
        1 => (1.0, 0.55, 0.0),
        2 => (1.0, 0.15, 0.35),
        3 => (0.2, 0.9, 0.3),
        _ => (0.8, 0.8, 0.8),
    };
    Color { r, g, b, a: 1.0 }
}

/// Typical size (length, width, height, metres) drawn for a tracked object of a class: the
/// snapshot carries no extent.
pub fn class_size(class: u16) -> [f64; 3] {
    match class {
        0 => [4.5, 1.8, 1.5],
        1 => [9.0, 2.5, 3.2],
        2 => [0.6, 0.6, 1.75],
        3 => [1.8, 0.6, 1.7],
        _ => [1.0, 1.0, 1.0],
    }
}

/// Score as a two-decimal string without float formatting (`0.87`).
fn score_text(score: f32) -> String {
    let hundredths = (f64::from(score.clamp(0.0, 1.0)) * 100.0).round() as u32;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

fn kv(key: &str, value: impl ToString) -> KeyValuePair {
    KeyValuePair { key: key.into(), value: value.to_string() }
}

/// The detections of one camera frame as `foxglove.ImageAnnotations` on the image's timestamp
/// `capture_ns`: one closed box outline and one `class score` label per detection.
pub fn image_annotations(capture_ns: u64, variant: u8, done_ns: u64, dets: &[Detection]) -> ImageAnnotations {
    let t = Some(timestamp(capture_ns));
    let mut points = Vec::with_capacity(dets.len());
    let mut texts = Vec::with_capacity(dets.len());
    for d in dets {
        let [u0, v0, u1, v1] = d.bbox.map(f64::from);
        let class = d.class as u16;
        let color = class_color(class);
        points.push(PointsAnnotation {
            timestamp: t,
            r#type: foxglove::messages::points_annotation::Type::LineLoop as i32,
            points: vec![Point2 { x: u0, y: v0 }, Point2 { x: u1, y: v0 }, Point2 { x: u1, y: v1 }, Point2 { x: u0, y: v1 }],
            outline_color: Some(color),
            outline_colors: Vec::new(),
            fill_color: None,
            thickness: 2.0,
            metadata: vec![kv("class", class_name(class)), kv("score", score_text(d.score))],
        });
        texts.push(TextAnnotation {
            timestamp: t,
            position: Some(Point2 { x: u0, y: v0 }),
            text: format!("{} {}", class_name(class), score_text(d.score)),
            font_size: 12.0,
            text_color: Some(Color { r: 1.0, g: 1.0, b: 1.0, a: 1.0 }),
            background_color: Some(Color { a: 0.7, ..color }),
            metadata: Vec::new(),
        });
    }
    ImageAnnotations {
        timestamp: t,
        circles: Vec::new(),
        points,
        texts,
        metadata: vec![kv("variant", variant), kv("done_ns", done_ns), kv("detections", dets.len())],
    }
}

/// Heading of a velocity as a quaternion about z (identity below 0.5 m/s). Uses only `sqrt`,
/// which IEEE 754 rounds exactly, so the result is the same on every platform.
fn heading(v: [f32; 3]) -> Quaternion {
    let (vx, vy) = (f64::from(v[0]), f64::from(v[1]));
    let speed = (vx * vx + vy * vy).sqrt();
    if speed.is_nan() || speed < 0.5 {
        return Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 1.0 };
    }
    let (c, s) = (vx / speed, vy / speed);
    let w = ((1.0 + c) * 0.5).max(0.0).sqrt();
    let z = ((1.0 - c) * 0.5).max(0.0).sqrt();
    Quaternion { x: 0.0, y: 0.0, z: if s < 0.0 { -z } else { z }, w }
}

/// The tracked objects of a snapshot as a `foxglove.SceneUpdate` in the `vehicle` frame:
/// every earlier entity is deleted, then one entity `track/<id>` per object with a cube of the
/// class's typical size, oriented along the velocity, a label, and metadata (track id,
/// class, confidence, velocity).
pub fn scene_update(s: &Snapshot) -> SceneUpdate {
    let t = Some(timestamp(s.publish_ns));
    let entities = s
        .objects()
        .iter()
        .map(|o| {
            let [x, y, z] = o.position.map(f64::from);
            let [l, w, h] = class_size(o.class);
            let orientation = heading(o.velocity);
            let name = class_name(o.class);
            SceneEntity {
                timestamp: t,
                frame_id: VEHICLE_FRAME.into(),
                id: format!("track/{}", o.track_id),
                lifetime: None,
                frame_locked: false,
                metadata: vec![
                    kv("track_id", o.track_id),
                    kv("class", name),
                    kv("confidence", score_text(o.confidence)),
                    kv("velocity", format!("{} {} {}", o.velocity[0], o.velocity[1], o.velocity[2])),
                ],
                cubes: vec![CubePrimitive {
                    pose: Some(Pose { position: Some(Vector3 { x, y, z }), orientation: Some(orientation) }),
                    size: Some(Vector3 { x: l, y: w, z: h }),
                    color: Some(Color { a: 0.5, ..class_color(o.class) }),
                }],
                texts: vec![TextPrimitive {
                    pose: Some(Pose {
                        position: Some(Vector3 { x, y, z: z + 0.5 * h + 0.3 }),
                        orientation: Some(Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }),
                    }),
                    billboard: true,
                    font_size: 14.0,
                    scale_invariant: true,
                    color: Some(Color { r: 1.0, g: 1.0, b: 1.0, a: 1.0 }),
                    text: format!("{name} #{}", o.track_id),
                }],
                ..SceneEntity::default()
            }
        })
        .collect();
    SceneUpdate {
        deletions: vec![SceneEntityDeletion {
            timestamp: t,
            r#type: foxglove::messages::scene_entity_deletion::Type::All as i32,
            id: String::new(),
        }],
        entities,
    }
}

/// The snapshot as a `vigil.Snapshot` JSON message (see [`SNAPSHOT_SCHEMA`]); only the first
/// `camera_count` cameras and `object_count` objects are written.
pub fn snapshot_json(s: &Snapshot) -> serde_json::Value {
    let cams = usize::from(s.camera_count).min(s.cameras.len());
    serde_json::json!({
        "sequence": s.sequence,
        "capture_ns": s.capture_ns,
        "publish_ns": s.publish_ns,
        "model_version": s.model_version,
        "degradation_level": s.degradation_level,
        "flags": s.flags,
        "stale": s.flags & FLAG_STALE != 0,
        "degraded": s.flags & FLAG_DEGRADED != 0,
        "reverted": s.flags & FLAG_REVERTED != 0,
        "cameras": s.cameras[..cams].iter().map(|c| serde_json::json!({
            "last_capture_ns": c.last_capture_ns,
            "frames": c.frames,
            "fps": f64::from(c.fps_milli) / 1000.0,
        })).collect::<Vec<_>>(),
        "objects": s.objects().iter().map(|o| serde_json::json!({
            "track_id": o.track_id,
            "class": class_name(o.class),
            "confidence": o.confidence,
            "position": o.position,
            "velocity": o.velocity,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: ObjectClass, score: f32, bbox: [f32; 4]) -> Detection {
        Detection { camera: 1, class, score, bbox, depth: 10.0 }
    }

    #[test]
    fn one_box_and_one_label_per_detection_on_the_image_timestamp() {
        let dets = [det(ObjectClass::Car, 0.874, [10.0, 20.0, 50.0, 60.0]), det(ObjectClass::Cyclist, 0.3, [0.0, 0.0, 4.0, 8.0])];
        let a = image_annotations(1_500_000_123, 1, 1_510_000_000, &dets);
        assert_eq!(a.timestamp, Some(Timestamp::new(1, 500_000_123)));
        assert_eq!((a.points.len(), a.texts.len()), (2, 2));
        assert_eq!(a.points[0].points.len(), 4);
        assert_eq!(a.points[0].points[2], Point2 { x: 50.0, y: 60.0 });
        assert_eq!(a.texts[0].text, "car 0.87");
        assert_eq!(a.texts[1].text, "cyclist 0.30");
        assert!(a.metadata.contains(&kv("detections", 2)));
        assert!(image_annotations(0, 0, 0, &[]).points.is_empty());
    }

    #[test]
    fn headings_follow_the_velocity() {
        let q = heading([0.0, 5.0, 0.0]);
        let half = std::f64::consts::FRAC_1_SQRT_2;
        assert!((q.z - half).abs() < 1e-12 && (q.w - half).abs() < 1e-12, "{q:?}");
        let q = heading([-3.0, 0.0, 0.0]);
        assert!((q.z - 1.0).abs() < 1e-12 && q.w.abs() < 1e-12, "{q:?}");
        let q = heading([0.0, -2.0, 0.0]);
        assert!((q.z + half).abs() < 1e-12, "{q:?}");
        assert_eq!(heading([0.1, 0.1, 0.0]).w, 1.0);
    }

    #[test]
    fn a_scene_update_replaces_every_entity_with_the_snapshots_tracks() {
        let mut s = Snapshot { publish_ns: 2_000_000_000, ..Snapshot::default() };
        let objs = [
            control::Object { track_id: 3, class: 0, flags: 0, confidence: 0.9, position: [12.0, -1.0, 0.7], velocity: [5.0, 0.0, 0.0] },
            control::Object { track_id: 8, class: 2, flags: 0, confidence: 0.6, position: [6.0, 3.0, 0.9], velocity: [0.0, 0.0, 0.0] },
        ];
        s.set_objects(&objs);
        let u = scene_update(&s);
        assert_eq!(u.deletions.len(), 1);
        assert_eq!(u.deletions[0].r#type, foxglove::messages::scene_entity_deletion::Type::All as i32);
        assert_eq!(u.entities.len(), 2);
        let e = &u.entities[1];
        assert_eq!((e.id.as_str(), e.frame_id.as_str()), ("track/8", "vehicle"));
        assert_eq!(e.cubes[0].size, Some(Vector3 { x: 0.6, y: 0.6, z: 1.75 }));
        assert!(e.metadata.contains(&kv("class", "pedestrian")));
        let j = snapshot_json(&s);
        assert_eq!(j["objects"][0]["track_id"], 3);
        assert_eq!(j["objects"][1]["class"], "pedestrian");
        assert_eq!(j["publish_ns"], 2_000_000_000u64);
    }

    #[test]
    fn the_recorder_numbers_snapshots_and_keeps_each_results_detections() {
        let mut r = Recorder::new();
        let dets = [det(ObjectClass::Truck, 0.5, [1.0, 2.0, 3.0, 4.0])];
        r.on_result(&CameraResult { camera: 2, variant: 1, capture_ns: 10, done_ns: 20, detections: &dets, objects: &[] });
        r.on_result(&CameraResult { camera: 3, variant: 0, capture_ns: 11, done_ns: 21, detections: &[], objects: &[] });
        let mut s = Snapshot::default();
        r.publish(&mut s);
        r.publish(&mut s);
        assert_eq!(r.results.len(), 2);
        assert_eq!(r.detections_of(&r.results[0]), &dets);
        assert!(r.detections_of(&r.results[1]).is_empty());
        assert_eq!(r.snapshots.iter().map(|s| s.sequence).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(r.snapshots[1].checksum, control::checksum(&r.snapshots[1]));
        r.clear();
        assert!(r.results.is_empty() && r.snapshots.is_empty());
        assert_eq!((r.published(), r.detections_seen()), (2, 1));
    }
}
