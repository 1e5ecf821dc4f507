//! Per-pixel ray casting of a box scene over a flat ground plane.
//!
//! Every pixel's viewing ray (distortion included) is computed once per camera at start-up.
//! Per frame, objects are culled per camera and then per 16x16 tile with a bounding-cone
//! test (exact for the pixel centres, so no distortion approximation is involved), and each
//! pixel is tested only against its tile's candidates. Work items are (camera, 16-row band)
//! pairs run on rayon; each pixel depends only on the scene, so the bytes do not depend on
//! the number of threads, and the per-item ground-truth counters merge by integer sums and
//! min/max, which are order independent.

use std::f32::consts::PI;
use std::ops::Range;

use rayon::prelude::*;

use super::noise::{hash3, mix, unit, value_noise};
use super::world;

const LANE_W: f32 = world::LANE_W as f32;
const ROAD_EDGE: f32 = world::ROAD_EDGE as f32;
const BIKE_EDGE: f32 = world::BIKE_EDGE as f32;
const CURB: f32 = world::CURB as f32;
const SIDEWALK_EDGE: f32 = world::SIDEWALK_EDGE as f32;
use crate::calib::Camera;

/// Tile edge, pixels.
pub(crate) const TILE: usize = 16;
/// Label of an unlabelled object.
pub(crate) const NO_LABEL: u16 = u16::MAX;

type V3 = [f32; 3];

#[inline]
fn dot(a: V3, b: V3) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline]
fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn normalize(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

/// A cone of viewing directions from a camera centre.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cone {
    axis: V3,
    angle: f32,
    cos: f32,
    sin: f32,
}

impl Cone {
    fn covering(dirs: impl Iterator<Item = V3> + Clone) -> Cone {
        let mut sum = [0.0f64; 3];
        for d in dirs.clone() {
            for k in 0..3 {
                sum[k] += f64::from(d[k]);
            }
        }
        let axis = normalize([sum[0] as f32, sum[1] as f32, sum[2] as f32]);
        let min_cos = dirs.map(|d| dot(d, axis)).fold(1.0f32, f32::min).clamp(-1.0, 1.0);
        let angle = (min_cos.acos() + 2e-3).min(PI);
        Cone { axis, angle, cos: angle.cos(), sin: angle.sin() }
    }

    /// Whether a sphere (centre relative to the cone apex) intersects the cone.
    #[inline]
    fn hits_sphere(&self, v: V3, r: f32) -> bool {
        let d2 = dot(v, v);
        if d2 <= r * r {
            return true;
        }
        let d = d2.sqrt();
        let sin_a = r / d;
        let a = sin_a.asin();
        if self.angle + a >= PI {
            return true;
        }
        let cos_a = (1.0 - sin_a * sin_a).sqrt();
        dot(v, self.axis) >= d * (self.cos * cos_a - self.sin * sin_a)
    }
}

/// One camera's precomputed viewing rays.
#[derive(Debug)]
pub(crate) struct CamRays {
    pub width: usize,
    pub height: usize,
    pub origin: V3,
    pub dirs: Vec<V3>,
    tiles_x: usize,
    tiles: Vec<Cone>,
    cone: Cone,
}

impl CamRays {
    pub fn new(cam: &Camera) -> CamRays {
        let (w, h) = (cam.width as usize, cam.height as usize);
        let rot = cam.camera_to_vehicle.rotation;
        let mut dirs = Vec::with_capacity(w * h);
        for v in 0..h {
            for u in 0..w {
                let (xd, yd) = ((u as f64 + 0.5 - cam.cx) / cam.fx, (v as f64 + 0.5 - cam.cy) / cam.fy);
                // Validation guarantees the whole image undistorts; the pinhole ray is a fallback only.
                let (x, y) = cam.undistort(xd, yd).unwrap_or((xd, yd));
                let d = (rot * nalgebra::Vector3::new(x, y, 1.0)).normalize();
                dirs.push([d.x as f32, d.y as f32, d.z as f32]);
            }
        }
        let tiles_x = w.div_ceil(TILE);
        let tiles_y = h.div_ceil(TILE);
        let mut tiles = Vec::with_capacity(tiles_x * tiles_y);
        for ty in 0..tiles_y {
            for tx in 0..tiles_x {
                let (u0, u1) = (tx * TILE, ((tx + 1) * TILE).min(w));
                let (v0, v1) = (ty * TILE, ((ty + 1) * TILE).min(h));
                let dirs = &dirs;
                tiles.push(Cone::covering((v0..v1).flat_map(move |v| (u0..u1).map(move |u| dirs[v * w + u]))));
            }
        }
        let cone = Cone::covering(dirs.iter().copied());
        let t = cam.camera_to_vehicle.translation.vector;
        CamRays { width: w, height: h, origin: [t.x as f32, t.y as f32, t.z as f32], dirs, tiles_x, tiles, cone }
    }
}

/// Surface kinds; each has its own procedural texture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Material {
    /// Car body: lights and number plates on the front and rear faces.
    Paint,
    /// Car cabin: glass sides with body-coloured roof and pillars.
    Cabin,
    /// Bus body: window band along the sides and a windscreen.
    BusBody,
    /// Truck cab: windscreen on the front face.
    TruckCab,
    Tyre,
    Cloth,
    Skin,
    /// Building: window grid on the walls.
    Facade,
    Concrete,
    Metal,
    Foliage,
    /// Sign plate: coloured on the faces across the road, grey elsewhere.
    Plate,
    /// Street lamp: bright.
    Lamp,
}

/// An axis-aligned box in its object's frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Part {
    pub min: V3,
    pub max: V3,
    pub colour: V3,
    pub material: Material,
}

/// One object placed in the vehicle frame.
#[derive(Clone, Debug)]
pub(crate) struct Obj {
    /// Object origin (ground centre) in the vehicle frame.
    pub pos: V3,
    pub cos: f32,
    pub sin: f32,
    pub parts: Range<u32>,
    pub label: u16,
    /// Envelope of the parts in the object frame.
    pub env_min: V3,
    pub env_max: V3,
    pub tex: u32,
    bound_c: V3,
    bound_r: f32,
    shadow_c: V3,
    shadow_r: f32,
    /// Shadow displacement per metre of height, object frame.
    shadow_local: [f32; 2],
}

/// Lighting of one frame, vehicle frame.
#[derive(Clone, Debug)]
pub(crate) struct SceneLight {
    /// Unit vector towards the sun.
    pub sun: V3,
    pub sun_colour: V3,
    pub ambient: V3,
    pub sky_top: V3,
    pub sky_horizon: V3,
    pub gain: f32,
    pub fog: f32,
    pub asphalt: f32,
    /// Ground displacement of a shadow per metre of caster height, vehicle frame.
    pub shadow_dir: [f32; 2],
}

/// How to turn a vehicle-frame ground point into road coordinates.
#[derive(Clone, Debug)]
pub(crate) struct GroundMap {
    /// Ego position relative to the world origin `origin_x` (a multiple of 192 m).
    pub ego_x: f32,
    pub ego_y: f32,
    pub cos: f32,
    pub sin: f32,
    /// `origin_x / 0.5` as a lattice offset for the 0.5 m noise (and multiples).
    pub origin_cells: i32,
    pub amp: f32,
    pub k: f32,
    /// Road phase with `k * origin_x` folded in.
    pub phase: f32,
    pub seed: u32,
}

/// A frame's scene.
#[derive(Clone, Debug)]
pub(crate) struct Scene {
    pub objs: Vec<Obj>,
    pub parts: Vec<Part>,
    pub light: SceneLight,
    pub ground: GroundMap,
    pub labels: usize,
    /// Seed of this frame's sensor noise.
    pub noise_seed: u32,
}

impl Scene {
    pub fn new(light: SceneLight, ground: GroundMap, noise_seed: u32) -> Scene {
        Scene { objs: Vec::new(), parts: Vec::new(), light, ground, labels: 0, noise_seed }
    }

    /// Adds an object made of `parts` (object frame: x forward, y left, z up, origin on the
    /// ground) at `pos` with heading `yaw` (vehicle frame). Returns its envelope.
    pub fn add(&mut self, pos: V3, yaw: f32, parts: &[Part], label: u16, tex: u32) -> (V3, V3) {
        let start = self.parts.len() as u32;
        let mut env_min = [f32::INFINITY; 3];
        let mut env_max = [f32::NEG_INFINITY; 3];
        for p in parts {
            for k in 0..3 {
                env_min[k] = env_min[k].min(p.min[k]);
                env_max[k] = env_max[k].max(p.max[k]);
            }
        }
        self.parts.extend_from_slice(parts);
        let (cos, sin) = (yaw.cos(), yaw.sin());
        let rot = |x: f32, y: f32| [cos * x - sin * y, sin * x + cos * y];
        let c = [(env_min[0] + env_max[0]) * 0.5, (env_min[1] + env_max[1]) * 0.5, (env_min[2] + env_max[2]) * 0.5];
        let cr = rot(c[0], c[1]);
        let half = [(env_max[0] - env_min[0]) * 0.5, (env_max[1] - env_min[1]) * 0.5, (env_max[2] - env_min[2]) * 0.5];
        let bound_r = dot(half, half).sqrt() + 1e-3;
        let bound_c = [pos[0] + cr[0], pos[1] + cr[1], pos[2] + c[2]];
        let sd = self.light.shadow_dir;
        let height = env_max[2];
        let shadow_c = [bound_c[0] + 0.5 * height * sd[0], bound_c[1] + 0.5 * height * sd[1], 0.0];
        let shadow_r = (half[0] * half[0] + half[1] * half[1]).sqrt() + 0.5 * height * (sd[0] * sd[0] + sd[1] * sd[1]).sqrt() + 1e-2;
        let shadow_local = [cos * sd[0] + sin * sd[1], -sin * sd[0] + cos * sd[1]];
        self.objs.push(Obj {
            pos,
            cos,
            sin,
            parts: start..self.parts.len() as u32,
            label,
            env_min,
            env_max,
            tex,
            bound_c,
            bound_r,
            shadow_c,
            shadow_r,
            shadow_local,
        });
        (env_min, env_max)
    }
}

/// Per-object pixel counters of one camera (or one band of it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    /// Pixels whose ray hits the object, occluded or not.
    pub amodal: u32,
    /// Pixels the object owns (nearest surface).
    pub visible: u32,
    /// Inclusive pixel box of the amodal pixels `[u0, v0, u1, v1]`.
    pub a_box: [u16; 4],
    /// Inclusive pixel box of the visible pixels.
    pub v_box: [u16; 4],
}

impl Default for Stat {
    fn default() -> Stat {
        Stat { amodal: 0, visible: 0, a_box: [u16::MAX, u16::MAX, 0, 0], v_box: [u16::MAX, u16::MAX, 0, 0] }
    }
}

impl Stat {
    #[inline]
    fn grow(b: &mut [u16; 4], u: u16, v: u16) {
        b[0] = b[0].min(u);
        b[1] = b[1].min(v);
        b[2] = b[2].max(u);
        b[3] = b[3].max(v);
    }
    pub fn merge(&mut self, o: &Stat) {
        self.amodal += o.amodal;
        self.visible += o.visible;
        for (b, ob) in [(&mut self.a_box, &o.a_box), (&mut self.v_box, &o.v_box)] {
            b[0] = b[0].min(ob[0]);
            b[1] = b[1].min(ob[1]);
            b[2] = b[2].max(ob[2]);
            b[3] = b[3].max(ob[3]);
        }
    }
}

/// The tone curve: linear light in `[0, 2)` (1024 steps) to 8-bit display values.
pub(crate) fn tone_lut() -> Vec<u8> {
    (0..1024)
        .map(|i| {
            let x = (i as f32 + 0.5) / 512.0;
            let y = (x * 1.2 / (1.0 + 0.2 * x)).min(1.0).powf(1.0 / 2.2);
            (y * 255.0 + 0.5) as u8
        })
        .collect()
}

/// Objects one camera can see, with the camera centre in each object's frame.
struct CamPrep {
    objs: Vec<(u32, V3)>,
    shadows: Vec<u32>,
}

fn prepare(cam: &CamRays, scene: &Scene) -> CamPrep {
    let o = cam.origin;
    let mut objs = Vec::new();
    let mut shadows = Vec::new();
    for (i, ob) in scene.objs.iter().enumerate() {
        if cam.cone.hits_sphere(sub(ob.bound_c, o), ob.bound_r) {
            let r = sub(o, ob.pos);
            let local = [ob.cos * r[0] + ob.sin * r[1], -ob.sin * r[0] + ob.cos * r[1], r[2]];
            objs.push((i as u32, local));
        }
        if scene.light.sun[2] > 0.0 && cam.cone.hits_sphere(sub(ob.shadow_c, o), ob.shadow_r) {
            shadows.push(i as u32);
        }
    }
    CamPrep { objs, shadows }
}

/// One (camera, band) work item.
struct Item<'a> {
    cam: usize,
    band: usize,
    out: &'a mut [u8],
    stats: &'a mut [Stat],
}

/// Renders `scene` through every camera that has an image buffer; `stats[cam]` receives the
/// per-label pixel counters (length `scene.labels`).
pub(crate) fn render(
    cams: &[CamRays],
    scene: &Scene,
    lut: &[u8],
    images: &mut [Vec<u8>],
    band_stats: &mut Vec<Vec<Stat>>,
    stats: &mut [Vec<Stat>],
) {
    let preps: Vec<CamPrep> = cams.iter().map(|c| prepare(c, scene)).collect();
    let bands_per_cam: Vec<usize> = cams.iter().map(|c| c.height.div_ceil(TILE)).collect();
    let total_bands: usize = bands_per_cam.iter().sum();
    band_stats.resize_with(total_bands, Vec::new);
    for b in band_stats.iter_mut() {
        b.clear();
        b.resize(scene.labels, Stat::default());
    }
    let mut items = Vec::with_capacity(total_bands);
    let mut stats_iter = band_stats.iter_mut();
    for (ci, (cam, img)) in cams.iter().zip(images.iter_mut()).enumerate() {
        img.resize(cam.width * cam.height * 3, 0);
        for (band, out) in img.chunks_mut(cam.width * 3 * TILE).enumerate() {
            if let Some(stats) = stats_iter.next() {
                items.push(Item { cam: ci, band, out, stats });
            }
        }
    }
    items.par_iter_mut().for_each(|it| render_band(&cams[it.cam], &preps[it.cam], scene, lut, it));
    drop(items);
    // Merge bands per camera.
    let mut k = 0;
    for (ci, n) in bands_per_cam.iter().enumerate() {
        let s = &mut stats[ci];
        s.clear();
        s.resize(scene.labels, Stat::default());
        if ci < images.len() {
            for b in &band_stats[k..k + n] {
                for (acc, x) in s.iter_mut().zip(b) {
                    acc.merge(x);
                }
            }
        }
        k += n;
    }
}

/// Result of a ray against the object candidates.
struct Hit {
    t: f32,
    obj: u32,
    part: u32,
    /// Hit face: axis (0..3) and the sign of its outward normal.
    axis: usize,
    sign: f32,
    /// Ray direction in the object frame.
    dl: V3,
    /// Camera centre in the object frame.
    ol: V3,
}

fn render_band(cam: &CamRays, prep: &CamPrep, scene: &Scene, lut: &[u8], it: &mut Item<'_>) {
    let w = cam.width;
    let v_start = it.band * TILE;
    let v_end = (v_start + TILE).min(cam.height);
    let o = cam.origin;
    let light = &scene.light;
    let mut cands: Vec<(u32, V3)> = Vec::with_capacity(64);
    let mut shadow_cands: Vec<u32> = Vec::with_capacity(32);
    let cam_salt = mix(scene.noise_seed ^ (it.cam as u32).wrapping_mul(0x9e37_79b9));
    let noise_amp = 0.012 / light.gain.max(0.2);
    for tx in 0..cam.tiles_x {
        let cone = &cam.tiles[it.band * cam.tiles_x + tx];
        cands.clear();
        for &(i, local) in &prep.objs {
            let ob = &scene.objs[i as usize];
            if cone.hits_sphere(sub(ob.bound_c, o), ob.bound_r) {
                cands.push((i, local));
            }
        }
        shadow_cands.clear();
        for &i in &prep.shadows {
            let ob = &scene.objs[i as usize];
            if cone.hits_sphere(sub(ob.shadow_c, o), ob.shadow_r) {
                shadow_cands.push(i);
            }
        }
        let u_end = ((tx + 1) * TILE).min(w);
        for v in v_start..v_end {
            for u in tx * TILE..u_end {
                let idx = v * w + u;
                let d = cam.dirs[idx];
                let mut best: Option<Hit> = None;
                for &(oi, ol) in &cands {
                    let ob = &scene.objs[oi as usize];
                    let dl = [ob.cos * d[0] + ob.sin * d[1], -ob.sin * d[0] + ob.cos * d[1], d[2]];
                    let inv = [1.0 / dl[0], 1.0 / dl[1], 1.0 / dl[2]];
                    let mut any = false;
                    for pi in ob.parts.clone() {
                        let p = &scene.parts[pi as usize];
                        let mut tn = f32::NEG_INFINITY;
                        let mut tf = f32::INFINITY;
                        let mut axis = 0;
                        for k in 0..3 {
                            let t1 = (p.min[k] - ol[k]) * inv[k];
                            let t2 = (p.max[k] - ol[k]) * inv[k];
                            let (a, b) = if t1 < t2 { (t1, t2) } else { (t2, t1) };
                            if a > tn {
                                tn = a;
                                axis = k;
                            }
                            tf = tf.min(b);
                        }
                        if tn <= tf && tn > 1e-3 {
                            any = true;
                            if best.as_ref().is_none_or(|b| tn < b.t) {
                                let sign = if dl[axis] > 0.0 { -1.0 } else { 1.0 };
                                best = Some(Hit { t: tn, obj: oi, part: pi, axis, sign, dl, ol });
                            }
                        }
                    }
                    if any && ob.label != NO_LABEL {
                        let s = &mut it.stats[ob.label as usize];
                        s.amodal += 1;
                        Stat::grow(&mut s.a_box, u as u16, v as u16);
                    }
                }
                let t_ground = if d[2] < -1e-6 { -o[2] / d[2] } else { f32::INFINITY };
                let (mut c, t) = match best {
                    Some(h) if h.t < t_ground => {
                        let ob = &scene.objs[h.obj as usize];
                        if ob.label != NO_LABEL {
                            let s = &mut it.stats[ob.label as usize];
                            s.visible += 1;
                            Stat::grow(&mut s.v_box, u as u16, v as u16);
                        }
                        (shade_object(scene, &h), h.t)
                    }
                    _ if t_ground.is_finite() => {
                        let p = [o[0] + t_ground * d[0], o[1] + t_ground * d[1], 0.0];
                        (shade_ground(scene, &shadow_cands, p, t_ground), t_ground)
                    }
                    _ => (sky(light, d), f32::INFINITY),
                };
                if t.is_finite() {
                    let f = (-light.fog * t).exp();
                    for k in 0..3 {
                        c[k] = c[k] * f + light.sky_horizon[k] * (1.0 - f);
                    }
                }
                let h = hash3(cam_salt, idx as u32, 0x5bd1_e995);
                let px = &mut it.out[((v - v_start) * w + u) * 3..][..3];
                for k in 0..3 {
                    let n = (((h >> (8 * k)) & 0xff) as f32 * (1.0 / 127.5) - 1.0) * noise_amp;
                    let x = (c[k] * light.gain + n).max(0.0);
                    px[k] = lut[((x * 512.0) as usize).min(1023)];
                }
            }
        }
    }
}

fn sky(light: &SceneLight, d: V3) -> V3 {
    let up = (d[2] * 3.0).clamp(0.0, 1.0);
    let mut s = dot(d, light.sun).max(0.0);
    for _ in 0..6 {
        s *= s;
    }
    let mut c = [0.0; 3];
    for k in 0..3 {
        c[k] = light.sky_horizon[k] + (light.sky_top[k] - light.sky_horizon[k]) * up + 1.5 * s * light.sun_colour[k];
    }
    c
}

fn lit(light: &SceneLight, albedo: V3, n: V3, shadowed: bool) -> V3 {
    let diffuse = if shadowed { 0.0 } else { dot(n, light.sun).max(0.0) };
    let amb = 0.8 + 0.2 * n[2];
    [
        albedo[0] * (light.ambient[0] * amb + light.sun_colour[0] * diffuse),
        albedo[1] * (light.ambient[1] * amb + light.sun_colour[1] * diffuse),
        albedo[2] * (light.ambient[2] * amb + light.sun_colour[2] * diffuse),
    ]
}

fn scale(c: V3, s: f32) -> V3 {
    [c[0] * s, c[1] * s, c[2] * s]
}

fn shade_object(scene: &Scene, h: &Hit) -> V3 {
    let ob = &scene.objs[h.obj as usize];
    let part = &scene.parts[h.part as usize];
    let p = [h.ol[0] + h.t * h.dl[0], h.ol[1] + h.t * h.dl[1], h.ol[2] + h.t * h.dl[2]];
    let mut nl = [0.0f32; 3];
    nl[h.axis] = h.sign;
    let n = [ob.cos * nl[0] - ob.sin * nl[1], ob.sin * nl[0] + ob.cos * nl[1], nl[2]];
    // Position inside the part, 0..1 per axis.
    let rel = |k: usize| (p[k] - part.min[k]) / (part.max[k] - part.min[k]).max(1e-6);
    let glass = |n: V3| -> V3 {
        let sky = scene.light.sky_horizon;
        let r = 0.06 + 0.1 * n[2].max(0.0);
        [0.03 + r * sky[0], 0.035 + r * sky[1], 0.045 + r * sky[2]]
    };
    let c = part.colour;
    let albedo = match part.material {
        Material::Paint => {
            let (ry, rz) = (rel(1), rel(2));
            let edge = !(0.18..=0.82).contains(&ry);
            if h.axis == 0 && h.sign < 0.0 && edge && (0.55..0.8).contains(&rz) {
                return [0.9, 0.05, 0.04];
            } else if h.axis == 0 && h.sign > 0.0 && edge && (0.5..0.75).contains(&rz) {
                return [1.1, 1.05, 0.9];
            } else if h.axis == 0 && (0.38..0.62).contains(&ry) && (0.2..0.38).contains(&rz) {
                [0.8, 0.8, 0.75]
            } else if h.axis == 2 {
                scale(c, 1.1)
            } else {
                c
            }
        }
        Material::Cabin => {
            let rx = rel(0);
            if h.axis == 2 || (h.axis == 1 && !(0.07..=0.93).contains(&rx)) {
                c
            } else {
                glass(n)
            }
        }
        Material::BusBody => {
            let rz = rel(2);
            if (h.axis == 1 && (0.45..0.82).contains(&rz)) || (h.axis == 0 && h.sign > 0.0 && rz > 0.4) {
                glass(n)
            } else if h.axis == 0 && h.sign < 0.0 && (0.25..0.35).contains(&rz) && !(0.15..=0.85).contains(&rel(1)) {
                return [0.9, 0.05, 0.04];
            } else {
                c
            }
        }
        Material::TruckCab => {
            if h.axis == 0 && h.sign > 0.0 && rel(2) > 0.5 {
                glass(n)
            } else {
                c
            }
        }
        Material::Tyre => [0.025, 0.025, 0.028],
        Material::Cloth => {
            let g = value_noise(ob.tex, p[0] * 12.0 + p[2] * 3.0, p[1] * 12.0 + p[2] * 9.0, 0, 0);
            scale(c, 0.8 + 0.4 * g)
        }
        Material::Skin | Material::Metal => c,
        Material::Facade => {
            let along = if h.axis == 1 { p[0] } else { p[1] };
            let (col, floor) = ((along / 3.0).floor(), (p[2] / 3.2).floor());
            let (fu, fz) = (along / 3.0 - col, p[2] / 3.2 - floor);
            let window = h.axis != 2 && (0.2..0.8).contains(&fu) && (0.3..0.78).contains(&fz) && p[2] > 1.0 && p[2] < part.max[2] - 0.6;
            if window {
                let r = unit(hash3(ob.tex, col as i32 as u32, floor as i32 as u32));
                if r < 0.08 {
                    return [0.9, 0.8, 0.5];
                }
                scale(glass(n), 0.7 + 0.8 * r)
            } else {
                let g = value_noise(ob.tex, along * 4.0, p[2] * 8.0, 0, 0);
                scale(c, 0.85 + 0.3 * g)
            }
        }
        Material::Concrete => {
            let g = value_noise(ob.tex, (p[0] + p[1]) * 3.0, p[2] * 3.0, 0, 0);
            scale(c, 0.8 + 0.4 * g)
        }
        Material::Foliage => {
            let g = value_noise(ob.tex, (p[0] + p[2]) * 2.5, (p[1] - p[2]) * 2.5, 0, 0);
            scale(c, 0.5 + 0.9 * g)
        }
        Material::Plate => {
            if h.axis == 0 {
                c
            } else {
                [0.4, 0.4, 0.42]
            }
        }
        Material::Lamp => return [1.6, 1.5, 1.2],
    };
    lit(&scene.light, albedo, n, false)
}

fn in_shadow(scene: &Scene, cands: &[u32], p: V3) -> bool {
    for &i in cands {
        let ob = &scene.objs[i as usize];
        let r = [p[0] - ob.pos[0], p[1] - ob.pos[1]];
        let q = [ob.cos * r[0] + ob.sin * r[1], -ob.sin * r[0] + ob.cos * r[1]];
        // Is there t in [0, height] with q - t * shadow_local inside the footprint?
        let (mut t0, mut t1) = (0.0f32, ob.env_max[2]);
        for k in 0..2 {
            let dk = -ob.shadow_local[k];
            if dk.abs() < 1e-9 {
                if q[k] < ob.env_min[k] || q[k] > ob.env_max[k] {
                    t0 = 1.0;
                    t1 = 0.0;
                }
            } else {
                let a = (ob.env_min[k] - q[k]) / dk;
                let b = (ob.env_max[k] - q[k]) / dk;
                t0 = t0.max(a.min(b));
                t1 = t1.min(a.max(b));
            }
        }
        if t0 <= t1 {
            return true;
        }
    }
    false
}

fn shade_ground(scene: &Scene, shadow_cands: &[u32], p: V3, t: f32) -> V3 {
    let g = &scene.ground;
    let light = &scene.light;
    // World coordinates relative to the world origin used for this frame.
    let xw = g.ego_x + g.cos * p[0] - g.sin * p[1];
    let yw = g.ego_y + g.sin * p[0] + g.cos * p[1];
    let l = yw - g.amp * (g.k * xw + g.phase).sin();
    let al = l.abs();
    // Texture detail fades with distance (a cheap stand-in for mip-mapping).
    let detail = (1.0 - t / 45.0).clamp(0.0, 1.0);
    let coarse = value_noise(g.seed, xw * 2.0, l * 2.0, g.origin_cells, 0);
    let fine = if detail > 0.0 { value_noise(g.seed ^ 0x55, xw * 9.0, l * 9.0, g.origin_cells * 9 / 2, 0) } else { 0.5 };
    let asphalt = light.asphalt * (0.8 + 0.3 * coarse + 0.25 * detail * (fine - 0.5));
    let dash_index = (xw / 12.0).floor() as i32 + g.origin_cells / 24;
    let dash_phase = xw / 12.0 - (xw / 12.0).floor();
    let worn = 0.55 + 0.45 * coarse;
    let marking = |c: V3| -> V3 { [asphalt + (c[0] - asphalt) * worn, asphalt + (c[1] - asphalt) * worn, asphalt + (c[2] - asphalt) * worn] };
    let albedo = if al < ROAD_EDGE + 0.1 {
        if (0.07..0.19).contains(&al) {
            marking([0.75, 0.58, 0.1])
        } else if (al - LANE_W).abs() < 0.075 && dash_phase < 0.3 && unit(hash3(g.seed, dash_index as u32, 77)) > 0.08 {
            marking([0.8, 0.8, 0.78])
        } else if (al - ROAD_EDGE).abs() < 0.1 {
            marking([0.78, 0.78, 0.76])
        } else {
            // Darker wheel tracks in each lane.
            let lane_pos = (al % LANE_W) - 0.5 * LANE_W;
            let track = if (lane_pos.abs() - 0.85).abs() < 0.3 { 0.9 } else { 1.0 };
            [asphalt * track, asphalt * track, asphalt * track * 1.02]
        }
    } else if al < BIKE_EDGE {
        if (al - BIKE_EDGE).abs() < 0.06 { marking([0.78, 0.78, 0.76]) } else { [asphalt * 1.05, asphalt * 0.95, asphalt * 0.92] }
    } else if al < CURB {
        let stall = xw / 6.0 - (xw / 6.0).floor();
        if stall < 0.02 && al > CURB - 1.6 { marking([0.78, 0.78, 0.76]) } else { [asphalt * 1.08; 3] }
    } else if al < CURB + 0.2 {
        [0.5, 0.5, 0.48]
    } else if al < SIDEWALK_EDGE {
        let (a, b) = (xw / 1.5 - (xw / 1.5).floor(), (al - CURB) / 1.5 - ((al - CURB) / 1.5).floor());
        let joint = a < 0.03 || b < 0.03;
        let base = 0.36 + 0.1 * coarse;
        if joint { [base * 0.7; 3] } else { [base, base * 0.98, base * 0.94] }
    } else {
        let grass = value_noise(g.seed ^ 0xa1, xw * 0.5, l * 0.5, g.origin_cells / 4, 0);
        let m = (grass * 1.6 - 0.3).clamp(0.0, 1.0);
        let v = 0.8 + 0.4 * fine * detail + 0.2 * coarse;
        [(0.09 + 0.12 * (1.0 - m)) * v, (0.16 + 0.04 * (1.0 - m)) * v, (0.05 + 0.06 * (1.0 - m)) * v]
    };
    let shadowed = light.sun[2] > 0.0 && in_shadow(scene, shadow_cands, p);
    lit(light, albedo, [0.0, 0.0, 1.0], shadowed)
}
