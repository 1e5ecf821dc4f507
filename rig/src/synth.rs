//! The deterministic synthetic world and its renderer.
//!
//! CONTRACT (other crates code against these signatures; keep them stable):
//! `SyntheticRig::new(rig, seed, fps)`, `SyntheticRig::next_frame(&mut self, images) -> FrameTruth`,
//! and the serde form of [`FrameTruth`] (it is the `vigil.GroundTruth` JSON schema in MCAP).
//!
//! # The world
//! A four-lane road (two lanes each way, right-hand traffic) with bike lanes, parking lanes,
//! curbs and sidewalks follows a gentle sine curve. The ego drives in one of its two forward
//! lanes, changes speed and sometimes lanes. Cars (sedan, hatchback, SUV, van), trucks
//! (box truck, bus), cyclists and pedestrians (adults, children; walking or standing) come
//! and go; parked cars line the road. Static clutter (street lights, signs, trees, bollards,
//! walls and buildings with window grids) is a pure function of the seed and the road
//! position. A sequence's seed also fixes the time of day (sun elevation and azimuth, warm
//! or neutral light, exposure gain), fog, asphalt tone and traffic density.
//!
//! # Rendering
//! Each pixel's ray (lens distortion included) is cast against the objects' boxes and the
//! ground plane; surfaces are shaded by a sun (Lambert) plus sky light, the ground receives
//! the objects' shadows, distance adds haze, and sensor noise is added before an 8-bit tone
//! curve. See `render.rs` for the culling and threading scheme.
//!
//! # Ground truth
//! Labels come from rendered pixel ownership: for each labelled object and camera the
//! renderer counts the pixels whose ray hits the object (amodal) and those it owns as the
//! nearest surface (visible). See [`GtBox`] for the derived fields.
//!
//! # Determinism
//! Actors come from a ChaCha8 stream seeded by the seed; textures and sensor noise are hashes
//! of the seed, position and frame. The same seed gives identical bytes and truth whatever
//! the number of threads.

mod noise;
mod render;
mod world;

use std::f64::consts::PI;

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::calib::{Camera, Rig};
use render::{CamRays, GroundMap, Material, Part, Scene, SceneLight, Stat, NO_LABEL};
use world::{Actor, Clutter, ClutterKind, Kind, World};

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
    /// Box of every pixel whose ray hits the object, occluded or not (amodal), clipped to the
    /// image: `[u0, v0, u1, v1]` in pixels, `u1`/`v1` exclusive (pixel edges).
    pub bbox: [f32; 4],
    /// Fraction of the object's whole projection that is seen:
    /// `(1 - occluded_fraction) * (1 - truncated_fraction)`.
    pub visible_fraction: f32,
    /// Distance along the camera's optical axis to the object centre, metres.
    pub depth: f32,
    /// Box of the pixels the object owns (not occluded), same convention as `bbox`.
    #[serde(default)]
    pub visible_bbox: [f32; 4],
    /// Number of pixels the object owns.
    #[serde(default)]
    pub visible_pixels: u32,
    /// Of the object's pixels inside the image, the fraction hidden by nearer surfaces.
    #[serde(default)]
    pub occluded_fraction: f32,
    /// Estimated fraction of the object's projection outside the image: one minus the share of
    /// the projected 3D box's bounding rectangle (edges sampled, distortion included) inside it.
    #[serde(default)]
    pub truncated_fraction: f32,
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
    /// Heading about the vehicle z axis, radians, in `(-pi, pi]` (0 = same direction as the ego).
    pub yaw: f64,
    /// Velocity over the ground, expressed in the vehicle frame's axes, m/s.
    pub velocity: [f64; 3],
    /// Euclidean distance from the vehicle origin, metres.
    pub distance: f64,
    /// Boxes in every camera that sees any part of the object.
    pub boxes: Vec<GtBox>,
    /// Velocity relative to the ego (`velocity` minus the ego's velocity), vehicle frame, m/s.
    #[serde(default)]
    pub relative_velocity: [f64; 3],
    /// Shape variant within the class (`sedan`, `suv`, `bus`, `adult`, `child`, ...).
    #[serde(default)]
    pub variant: String,
}

/// Ground truth of one rig frame (all cameras share one capture instant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct FrameTruth {
    /// Frame counter from 0.
    pub frame: u64,
    /// Capture time, nanoseconds since the start of the recording.
    pub timestamp_ns: u64,
    /// Ego pose in the world frame: `[x, y, yaw]`, metres and radians (the vehicle origin).
    pub ego_pose: [f64; 3],
    /// Ego speed, m/s.
    pub ego_speed: f64,
    /// Labelled objects within the simulated window (static clutter is not labelled), whether
    /// or not a camera sees them.
    pub objects: Vec<GtObject>,
    /// Exposure gain of the sequence (time of day): below 1 is darker than a bright day.
    #[serde(default)]
    pub exposure_gain: f32,
    /// Sun elevation above the horizon, degrees.
    #[serde(default)]
    pub sun_elevation_deg: f32,
}

/// An object placed by hand for [`SyntheticRig::render_placed`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedObject {
    /// Class; the shape is the class's most common variant.
    pub class: ObjectClass,
    /// Ground point under the object's centre in the vehicle frame `[x, y]`, metres.
    pub ground: [f64; 2],
    /// Heading in the vehicle frame, radians.
    pub yaw: f64,
}

/// The synthetic world rendered through a rig.
pub struct SyntheticRig {
    rig: Rig,
    seed: u64,
    fps: f64,
    frame: u64,
    world: World,
    rays: Vec<CamRays>,
    lut: Vec<u8>,
    pool: Option<rayon::ThreadPool>,
    clutter: Vec<Clutter>,
    band_stats: Vec<Vec<Stat>>,
    stats: Vec<Vec<Stat>>,
}

impl std::fmt::Debug for SyntheticRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticRig")
            .field("seed", &self.seed)
            .field("fps", &self.fps)
            .field("frame", &self.frame)
            .field("threads", &self.pool.as_ref().map(rayon::ThreadPool::current_num_threads))
            .finish_non_exhaustive()
    }
}

/// One labelled object of a frame, before its boxes are known.
struct Label {
    id: u32,
    kind: Kind,
    /// Ground position and heading in the vehicle frame.
    pos: [f64; 3],
    yaw: f64,
    env_min: [f64; 3],
    env_max: [f64; 3],
    velocity: [f64; 3],
}

impl SyntheticRig {
    /// A world seeded by `seed`, stepped at `fps`. Renders on rayon's global pool (all cores);
    /// see [`SyntheticRig::with_threads`].
    pub fn new(rig: Rig, seed: u64, fps: f64) -> Self {
        let rays = {
            use rayon::prelude::*;
            rig.cameras().par_iter().map(CamRays::new).collect()
        };
        let fps = if fps.is_finite() && fps > 0.0 { fps } else { 36.0 };
        SyntheticRig {
            world: World::new(seed),
            rig,
            seed,
            fps,
            frame: 0,
            rays,
            lut: render::tone_lut(),
            pool: None,
            clutter: Vec::new(),
            band_stats: Vec::new(),
            stats: vec![Vec::new(); crate::calib::CAMERA_COUNT],
        }
    }

    /// Renders on a private pool of `threads` threads (0 = rayon's global pool). The output
    /// does not depend on the thread count. Fails only if the OS refuses to start threads.
    pub fn with_threads(mut self, threads: usize) -> Result<Self, rayon::ThreadPoolBuildError> {
        self.pool = if threads == 0 { None } else { Some(rayon::ThreadPoolBuilder::new().num_threads(threads).build()?) };
        Ok(self)
    }

    /// The rig the world renders through.
    pub fn rig(&self) -> &Rig {
        &self.rig
    }

    /// The seed of the world.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Frames per second the world is stepped at.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// Advances one frame and renders every camera as packed RGB8 into `images[cam]`
    /// (each resized to `width * height * 3` bytes), returning that frame's ground truth.
    /// Frame 0 is the initial state. Cameras without a buffer in `images` are not rendered and
    /// get no boxes.
    pub fn next_frame(&mut self, images: &mut [Vec<u8>]) -> FrameTruth {
        if self.frame > 0 {
            self.world.step(1.0 / self.fps);
        }
        let (mut scene, ego) = self.scene_base();
        let mut labels = Vec::new();
        let actors = std::mem::take(&mut self.world.actors);
        for a in &actors {
            if let Some(l) = self.add_actor(&mut scene, ego, a) {
                labels.push(l);
            }
        }
        self.world.actors = actors;
        let (s0, s1) = (self.world.ego_s - 90.0, self.world.ego_s + 260.0);
        world::clutter(self.seed, s0, s1, &mut self.clutter);
        for c in &self.clutter {
            add_clutter(&mut scene, ego, &self.world.road, c);
        }
        self.finish(scene, labels, images)
    }

    /// Renders the current ego pose with only `objects` (no traffic, no clutter) and returns
    /// their ground truth (ids are 1-based positions in `objects`). Does not advance the world.
    pub fn render_placed(&mut self, objects: &[PlacedObject], images: &mut [Vec<u8>]) -> FrameTruth {
        let (mut scene, _) = self.scene_base();
        let mut labels = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            let kind = match o.class {
                ObjectClass::Car => Kind::Sedan,
                ObjectClass::Truck => Kind::BoxTruck,
                ObjectClass::Pedestrian => Kind::Adult,
                ObjectClass::Cyclist => Kind::Cyclist,
            };
            let colours = [[0.5, 0.1, 0.1], [0.2, 0.2, 0.6], [0.6, 0.45, 0.35]];
            let parts = actor_parts(kind, kind.nominal_size(), &colours);
            let label = scene.labels as u16;
            scene.labels += 1;
            let pos = [o.ground[0] as f32, o.ground[1] as f32, 0.0];
            let (mn, mx) = scene.add(pos, o.yaw as f32, &parts, label, i as u32);
            labels.push(Label {
                id: i as u32 + 1,
                kind,
                pos: [o.ground[0], o.ground[1], 0.0],
                yaw: o.yaw,
                env_min: mn.map(f64::from),
                env_max: mx.map(f64::from),
                velocity: [0.0; 3],
            });
        }
        let frame = self.frame;
        let truth = self.finish(scene, labels, images);
        self.frame = frame;
        truth
    }

    /// Lighting and ground mapping of the current frame; returns the ego pose too.
    fn scene_base(&self) -> (Scene, [f64; 3]) {
        let w = &self.world;
        let ego = w.ego_pose();
        let lt = &w.light;
        let az = lt.sun_azimuth - ego[2];
        let (ce, se) = (lt.sun_elevation.cos(), lt.sun_elevation.sin());
        let sun = [(ce * az.cos()) as f32, (ce * az.sin()) as f32, se as f32];
        let shadow_len = 1.0 / lt.sun_elevation.tan();
        let light = SceneLight {
            sun,
            sun_colour: lt.sun_colour,
            ambient: lt.ambient,
            sky_top: lt.sky_top,
            sky_horizon: lt.sky_horizon,
            gain: lt.gain,
            fog: lt.fog,
            asphalt: lt.asphalt,
            shadow_dir: [(-az.cos() * shadow_len) as f32, (-az.sin() * shadow_len) as f32],
        };
        // Keep ground coordinates small: a world origin on a 192 m grid (a multiple of every
        // texture period) near the ego.
        let origin = (ego[0] / 192.0).floor() * 192.0;
        let road = &w.road;
        let ground = GroundMap {
            ego_x: (ego[0] - origin) as f32,
            ego_y: ego[1] as f32,
            cos: ego[2].cos() as f32,
            sin: ego[2].sin() as f32,
            origin_cells: (origin / 0.5) as i32,
            amp: road.amp as f32,
            k: road.k as f32,
            phase: ((road.k * origin + road.phase) % (2.0 * PI)) as f32,
            seed: (self.seed ^ (self.seed >> 32)) as u32,
        };
        let noise_seed = noise::hash3(ground.seed, self.frame as u32, (self.frame >> 32) as u32);
        (Scene::new(light, ground, noise_seed), ego)
    }

    fn add_actor(&self, scene: &mut Scene, ego: [f64; 3], a: &Actor) -> Option<Label> {
        let road = &self.world.road;
        let (x, y) = road.world(a.s, a.l);
        let pos = to_vehicle(ego, x, y);
        if pos[0] * pos[0] + pos[1] * pos[1] > 300.0 * 300.0 {
            return None;
        }
        let heading = a.heading(road);
        let yaw = wrap(heading - ego[2]);
        let parts = actor_parts(a.kind, a.size, &a.colours);
        let label = scene.labels as u16;
        scene.labels += 1;
        let (mn, mx) = scene.add([pos[0] as f32, pos[1] as f32, 0.0], yaw as f32, &parts, label, a.tex);
        // Velocity along the road direction (sign of v), pedestrians along their heading.
        let road_h = road.heading(a.s);
        let (vx, vy) = (a.v * road_h.cos(), a.v * road_h.sin());
        let (c, s) = (ego[2].cos(), ego[2].sin());
        Some(Label {
            id: a.id,
            kind: a.kind,
            pos: [pos[0], pos[1], 0.0],
            yaw,
            env_min: mn.map(f64::from),
            env_max: mx.map(f64::from),
            velocity: [c * vx + s * vy, -s * vx + c * vy, 0.0],
        })
    }

    fn finish(&mut self, scene: Scene, labels: Vec<Label>, images: &mut [Vec<u8>]) -> FrameTruth {
        let (rays, lut, band_stats, stats) = (&self.rays, &self.lut, &mut self.band_stats, &mut self.stats);
        match &self.pool {
            Some(pool) => pool.install(|| render::render(rays, &scene, lut, images, band_stats, stats)),
            None => render::render(rays, &scene, lut, images, band_stats, stats),
        }
        let ego_speed = self.world.ego_v;
        let objects = labels
            .iter()
            .enumerate()
            .map(|(li, l)| self.truth_of(li, l, ego_speed))
            .collect();
        let truth = FrameTruth {
            frame: self.frame,
            timestamp_ns: (self.frame as f64 * 1e9 / self.fps).round() as u64,
            ego_pose: self.world.ego_pose(),
            ego_speed,
            objects,
            exposure_gain: self.world.light.gain,
            sun_elevation_deg: self.world.light.sun_elevation.to_degrees() as f32,
        };
        self.frame += 1;
        truth
    }

    fn truth_of(&self, li: usize, l: &Label, ego_speed: f64) -> GtObject {
        let (c, s) = (l.yaw.cos(), l.yaw.sin());
        let mid = [(l.env_min[0] + l.env_max[0]) * 0.5, (l.env_min[1] + l.env_max[1]) * 0.5, (l.env_min[2] + l.env_max[2]) * 0.5];
        let centre = [l.pos[0] + c * mid[0] - s * mid[1], l.pos[1] + s * mid[0] + c * mid[1], mid[2]];
        let size = [l.env_max[0] - l.env_min[0], l.env_max[1] - l.env_min[1], l.env_max[2] - l.env_min[2]];
        let mut boxes = Vec::new();
        for (ci, cam) in self.rig.cameras().iter().enumerate() {
            let Some(st) = self.stats.get(ci).and_then(|v| v.get(li)) else { continue };
            if st.visible == 0 {
                continue;
            }
            let occluded = 1.0 - st.visible as f32 / st.amodal.max(1) as f32;
            let truncated = truncation(cam, l);
            let depth = cam.camera_to_vehicle.inverse_transform_point(&Point3::from(centre)).z;
            let bx = |b: [u16; 4]| [f32::from(b[0]), f32::from(b[1]), f32::from(b[2]) + 1.0, f32::from(b[3]) + 1.0];
            boxes.push(GtBox {
                camera: ci as u8,
                bbox: bx(st.a_box),
                visible_fraction: (1.0 - occluded) * (1.0 - truncated),
                depth: depth as f32,
                visible_bbox: bx(st.v_box),
                visible_pixels: st.visible,
                occluded_fraction: occluded,
                truncated_fraction: truncated,
            });
        }
        GtObject {
            id: l.id,
            class: l.kind.class(),
            position: centre,
            size,
            yaw: l.yaw,
            velocity: l.velocity,
            distance: (centre[0] * centre[0] + centre[1] * centre[1] + centre[2] * centre[2]).sqrt(),
            boxes,
            relative_velocity: [l.velocity[0] - ego_speed, l.velocity[1], l.velocity[2]],
            variant: l.kind.name().to_string(),
        }
    }
}

fn wrap(a: f64) -> f64 {
    let mut a = a % (2.0 * PI);
    if a <= -PI {
        a += 2.0 * PI;
    } else if a > PI {
        a -= 2.0 * PI;
    }
    a
}

fn to_vehicle(ego: [f64; 3], x: f64, y: f64) -> [f64; 2] {
    let (dx, dy) = (x - ego[0], y - ego[1]);
    let (c, s) = (ego[2].cos(), ego[2].sin());
    [c * dx + s * dy, -s * dx + c * dy]
}

/// Fraction of the projected 3D box outside the image, from the bounding rectangle of its
/// sampled edges. Points behind the camera are clipped at a near plane and points beyond the
/// lens model are pulled onto its rim; both land far outside the image, as they should.
fn truncation(cam: &Camera, l: &Label) -> f32 {
    let (c, s) = (l.yaw.cos(), l.yaw.sin());
    let corner = |i: usize| {
        let x = if i & 1 == 0 { l.env_min[0] } else { l.env_max[0] };
        let y = if i & 2 == 0 { l.env_min[1] } else { l.env_max[1] };
        let z = if i & 4 == 0 { l.env_min[2] } else { l.env_max[2] };
        let v = Point3::new(l.pos[0] + c * x - s * y, l.pos[1] + s * x + c * y, z);
        cam.camera_to_vehicle.inverse_transform_point(&v)
    };
    let corners: Vec<Point3<f64>> = (0..8).map(corner).collect();
    let limit = cam.max_radius2();
    let near = 0.05;
    let (mut u0, mut v0, mut u1, mut v1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut add = |p: Point3<f64>| {
        let (mut x, mut y) = (p.x / p.z, p.y / p.z);
        let r2 = x * x + y * y;
        if r2 > limit {
            let k = (limit / r2).sqrt();
            x *= k;
            y *= k;
        }
        let (xd, yd) = cam.distort(x, y);
        let (u, v) = (cam.fx * xd + cam.cx, cam.fy * yd + cam.cy);
        u0 = u0.min(u);
        v0 = v0.min(v);
        u1 = u1.max(u);
        v1 = v1.max(v);
    };
    for i in 0..8 {
        for bit in [1, 2, 4] {
            let j = i ^ bit;
            if j < i {
                continue;
            }
            let (a, b) = (corners[i], corners[j]);
            for k in 0..=8 {
                let t = f64::from(k) / 8.0;
                let p = a + (b - a) * t;
                if p.z >= near {
                    add(p);
                }
            }
            if (a.z - near) * (b.z - near) < 0.0 {
                let t = (near - a.z) / (b.z - a.z);
                add(a + (b - a) * t);
            }
        }
    }
    if u0 > u1 {
        return 1.0;
    }
    let (w, h) = (f64::from(cam.width), f64::from(cam.height));
    let area = (u1 - u0).max(1e-9) * (v1 - v0).max(1e-9);
    let inside = (u1.min(w) - u0.max(0.0)).max(0.0) * (v1.min(h) - v0.max(0.0)).max(0.0);
    (1.0 - inside / area).clamp(0.0, 1.0) as f32
}

fn part(min: [f64; 3], max: [f64; 3], colour: [f32; 3], material: Material) -> Part {
    Part { min: min.map(|x| x as f32), max: max.map(|x| x as f32), colour, material }
}

/// The boxes of an actor in its own frame (x forward, y left, z up, origin on the ground).
fn actor_parts(kind: Kind, size: [f64; 3], colours: &[[f32; 3]; 3]) -> Vec<Part> {
    let [l, w, h] = size;
    let (hl, hw) = (l * 0.5, w * 0.5);
    let [c0, c1, c2] = *colours;
    let tyre = [0.03, 0.03, 0.03];
    match kind {
        Kind::Sedan | Kind::Hatchback | Kind::Suv | Kind::Van => {
            let (belt, cab0, cab1) = match kind {
                Kind::Sedan => (0.64, -0.3, 0.18),
                Kind::Hatchback => (0.62, -0.46, 0.14),
                Kind::Suv => (0.6, -0.45, 0.2),
                _ => (0.52, -0.49, 0.3),
            };
            let top = h * belt;
            let wheel = 0.33 * (h / 1.5).clamp(0.9, 1.2);
            let axle = hl * 0.64;
            vec![
                part([-hl, -hw + 0.04, 0.28], [hl, hw - 0.04, top], c0, Material::Paint),
                part([l * cab0, -hw + 0.12, top], [l * cab1, hw - 0.12, h], c0, Material::Cabin),
                part([axle - wheel, -hw, 0.0], [axle + wheel, hw, 2.0 * wheel], tyre, Material::Tyre),
                part([-axle - wheel, -hw, 0.0], [-axle + wheel, hw, 2.0 * wheel], tyre, Material::Tyre),
            ]
        }
        Kind::BoxTruck => vec![
            part([hl - 2.2, -hw + 0.08, 0.45], [hl, hw - 0.08, 2.9_f64.min(h)], c0, Material::TruckCab),
            part([-hl, -hw, 0.95], [hl - 2.35, hw, h], [0.55 + 0.4 * c1[0], 0.55 + 0.4 * c1[1], 0.55 + 0.4 * c1[2]], Material::Paint),
            part([-hl + 0.3, -hw + 0.3, 0.45], [hl - 2.2, hw - 0.3, 0.95], [0.08, 0.08, 0.08], Material::Metal),
            part([hl - 1.9, -hw + 0.05, 0.0], [hl - 0.9, hw - 0.05, 1.0], tyre, Material::Tyre),
            part([-hl + 0.8, -hw + 0.05, 0.0], [-hl + 2.6, hw - 0.05, 1.0], tyre, Material::Tyre),
        ],
        Kind::Bus => vec![
            part([-hl, -hw, 0.35], [hl, hw, h], c0, Material::BusBody),
            part([hl - 3.2, -hw + 0.05, 0.0], [hl - 2.2, hw - 0.05, 1.0], tyre, Material::Tyre),
            part([-hl + 2.2, -hw + 0.05, 0.0], [-hl + 3.4, hw - 0.05, 1.0], tyre, Material::Tyre),
        ],
        Kind::Adult | Kind::Child => vec![
            part([-0.12, -0.16 * w / 0.6, 0.0], [0.12, 0.16 * w / 0.6, 0.47 * h], c1, Material::Cloth),
            part([-0.14, -hw, 0.47 * h], [0.14, hw, 0.83 * h], c0, Material::Cloth),
            part([-0.1, -0.09, 0.84 * h], [0.11, 0.09, h], c2, Material::Skin),
        ],
        Kind::Cyclist => vec![
            part([-hl, -0.05, 0.0], [hl, 0.05, 0.72], [0.06 + 0.2 * c1[0], 0.06 + 0.2 * c1[1], 0.06 + 0.2 * c1[2]], Material::Metal),
            part([-0.2, -0.17, 0.5], [0.25, 0.17, 0.98], c1, Material::Cloth),
            part([-0.3, -0.21, 0.98], [0.12, 0.21, 0.78 * h], c0, Material::Cloth),
            part([-0.12, -0.1, 0.78 * h], [0.1, 0.1, h], c2, Material::Skin),
            part([hl - 0.45, -hw, 0.92], [hl - 0.38, hw, 0.98], [0.1, 0.1, 0.1], Material::Metal),
        ],
    }
}

fn add_clutter(scene: &mut Scene, ego: [f64; 3], road: &world::Road, c: &Clutter) {
    let (x, y) = road.world(c.s, c.l);
    let pos = to_vehicle(ego, x, y);
    if pos[0] * pos[0] + pos[1] * pos[1] > 320.0 * 320.0 {
        return;
    }
    let yaw = wrap(road.heading(c.s) - ego[2]) as f32;
    let [l, d, h] = c.size;
    let inward = -c.side; // towards the road centre, in the object's y
    let parts: Vec<Part> = match c.kind {
        ClutterKind::StreetLight => {
            let (a0, a1) = if inward > 0.0 { (0.0, 1.9) } else { (-1.9, 0.0) };
            let tip = inward * 1.8;
            vec![
                part([-l * 0.5, -d * 0.5, 0.0], [l * 0.5, d * 0.5, h], c.colour, Material::Metal),
                part([-0.06, a0, h - 0.16], [0.06, a1, h - 0.04], c.colour, Material::Metal),
                part([-0.16, tip - 0.25, h - 0.3], [0.16, tip + 0.25, h - 0.14], c.colour, Material::Lamp),
            ]
        }
        ClutterKind::Sign => vec![
            part([-0.04, -0.04, 0.0], [0.04, 0.04, h - 0.7], [0.4, 0.4, 0.42], Material::Metal),
            part([-l * 0.5, -d * 0.5, h - 0.8], [l * 0.5, d * 0.5, h], c.colour, Material::Plate),
        ],
        ClutterKind::Tree => vec![
            part([-0.15, -0.15, 0.0], [0.15, 0.15, 2.6], [0.16, 0.1, 0.06], Material::Concrete),
            part([-l * 0.5, -d * 0.5, 2.4], [l * 0.5, d * 0.5, h], c.colour, Material::Foliage),
        ],
        ClutterKind::Bollard => vec![part([-l * 0.5, -d * 0.5, 0.0], [l * 0.5, d * 0.5, h], c.colour, Material::Metal)],
        ClutterKind::Building => vec![part([-l * 0.5, -d * 0.5, 0.0], [l * 0.5, d * 0.5, h], c.colour, Material::Facade)],
        ClutterKind::Wall => vec![part([-l * 0.5, -d * 0.5, 0.0], [l * 0.5, d * 0.5, h], c.colour, Material::Concrete)],
    };
    scene.add([pos[0] as f32, pos[1] as f32, 0.0], yaw, &parts, NO_LABEL, c.tex);
}
