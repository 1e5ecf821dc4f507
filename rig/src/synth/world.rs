//! The world model: a gently curving road, the ego vehicle, traffic, pedestrians, cyclists,
//! parked cars and static clutter. Everything random comes from one ChaCha stream (actors)
//! or from a hash of the seed and a road segment index (clutter), so a seed fixes the world.

use std::f64::consts::{PI, TAU};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::noise::{hash3, unit};
use super::ObjectClass;

/// Width of one traffic lane, metres.
pub(crate) const LANE_W: f64 = 3.4;
/// Lateral offset of the road edge line (outer edge of the outer traffic lane).
pub(crate) const ROAD_EDGE: f64 = 2.0 * LANE_W;
/// Outer edge of the bike lane.
pub(crate) const BIKE_EDGE: f64 = ROAD_EDGE + 1.5;
/// Outer edge of the parking lane (the curb).
pub(crate) const CURB: f64 = BIKE_EDGE + 2.2;
/// Outer edge of the sidewalk.
pub(crate) const SIDEWALK_EDGE: f64 = CURB + 3.0;

/// Distance behind the ego (along the road) where actors leave the world.
const WINDOW_BACK: f64 = 70.0;
/// Distance ahead of the ego where actors enter the world.
const WINDOW_FRONT: f64 = 160.0;

/// The road centre line `y = amp * sin(k x + phase)` in the world frame; lateral offsets `l`
/// are measured along world y from it (a good approximation at the road's small slopes).
#[derive(Clone, Debug)]
pub(crate) struct Road {
    pub amp: f64,
    pub k: f64,
    pub phase: f64,
}

impl Road {
    pub fn centre_y(&self, x: f64) -> f64 {
        self.amp * (self.k * x + self.phase).sin()
    }
    pub fn heading(&self, x: f64) -> f64 {
        (self.amp * self.k * (self.k * x + self.phase).cos()).atan()
    }
    /// World position of road coordinates `(s, l)`.
    pub fn world(&self, s: f64, l: f64) -> (f64, f64) {
        (s, self.centre_y(s) + l)
    }
}

/// Shape variants; each maps to one [`ObjectClass`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sedan,
    Hatchback,
    Suv,
    Van,
    BoxTruck,
    Bus,
    Adult,
    Child,
    Cyclist,
}

impl Kind {
    pub fn class(self) -> ObjectClass {
        match self {
            Kind::Sedan | Kind::Hatchback | Kind::Suv | Kind::Van => ObjectClass::Car,
            Kind::BoxTruck | Kind::Bus => ObjectClass::Truck,
            Kind::Adult | Kind::Child => ObjectClass::Pedestrian,
            Kind::Cyclist => ObjectClass::Cyclist,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sedan => "sedan",
            Kind::Hatchback => "hatchback",
            Kind::Suv => "suv",
            Kind::Van => "van",
            Kind::BoxTruck => "box_truck",
            Kind::Bus => "bus",
            Kind::Adult => "adult",
            Kind::Child => "child",
            Kind::Cyclist => "cyclist",
        }
    }
    /// Nominal length, width, height, metres.
    pub fn nominal_size(self) -> [f64; 3] {
        match self {
            Kind::Sedan => [4.6, 1.82, 1.45],
            Kind::Hatchback => [4.0, 1.75, 1.5],
            Kind::Suv => [4.8, 1.95, 1.75],
            Kind::Van => [5.2, 2.0, 2.1],
            Kind::BoxTruck => [8.5, 2.5, 3.6],
            Kind::Bus => [12.0, 2.55, 3.2],
            Kind::Adult => [0.5, 0.6, 1.75],
            Kind::Child => [0.4, 0.45, 1.25],
            Kind::Cyclist => [1.75, 0.6, 1.8],
        }
    }
}

/// Where an actor lives; each stream is one lane-like band with its own spawn process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Traffic lane: 0, 1 forward (inner, outer), 2, 3 oncoming (inner, outer).
    Lane(u8),
    /// Bike lane on side 0 (right, forward traffic) or 1 (left, oncoming).
    Bike(u8),
    /// Parking lane on side 0 (right) or 1 (left).
    Parking(u8),
    /// Sidewalk on side 0 (right) or 1 (left).
    Sidewalk(u8),
}

pub(crate) const STREAMS: [Stream; 10] = [
    Stream::Lane(0),
    Stream::Lane(1),
    Stream::Lane(2),
    Stream::Lane(3),
    Stream::Bike(0),
    Stream::Bike(1),
    Stream::Parking(0),
    Stream::Parking(1),
    Stream::Sidewalk(0),
    Stream::Sidewalk(1),
];

fn side_sign(side: u8) -> f64 {
    if side == 0 { -1.0 } else { 1.0 }
}

impl Stream {
    /// Lateral centre of the stream (sidewalks return their middle).
    fn centre(self) -> f64 {
        match self {
            Stream::Lane(i) => match i {
                0 => -0.5 * LANE_W,
                1 => -1.5 * LANE_W,
                2 => 0.5 * LANE_W,
                _ => 1.5 * LANE_W,
            },
            Stream::Bike(s) => side_sign(s) * (ROAD_EDGE + BIKE_EDGE) * 0.5,
            Stream::Parking(s) => side_sign(s) * (BIKE_EDGE + CURB) * 0.5,
            Stream::Sidewalk(s) => side_sign(s) * (CURB + SIDEWALK_EDGE) * 0.5,
        }
    }
    /// Direction of travel along s: +1 with the ego, -1 oncoming.
    fn direction(self) -> f64 {
        match self {
            Stream::Lane(i) => {
                if i < 2 {
                    1.0
                } else {
                    -1.0
                }
            }
            Stream::Bike(s) | Stream::Parking(s) | Stream::Sidewalk(s) => -side_sign(s),
        }
    }
}

/// A labelled moving (or parked) thing.
#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub id: u32,
    pub kind: Kind,
    pub stream: Stream,
    /// Longitudinal road coordinate (world x), metres.
    pub s: f64,
    /// Lateral road coordinate, metres.
    pub l: f64,
    /// Signed speed along s, m/s.
    pub v: f64,
    /// Desired speed magnitude, m/s.
    pub v_desired: f64,
    /// Heading offset from the road direction of travel (pedestrians turn), radians.
    pub yaw_offset: f64,
    /// Length, width, height, metres.
    pub size: [f64; 3],
    /// Colours: primary (body / shirt), secondary (trousers / trim), tertiary (skin / detail).
    pub colours: [[f32; 3]; 3],
    /// Per-object texture seed.
    pub tex: u32,
}

impl Actor {
    /// World heading, radians.
    pub fn heading(&self, road: &Road) -> f64 {
        let base = road.heading(self.s);
        let dir = if self.v < 0.0 || (self.v == 0.0 && self.stream.direction() < 0.0) { PI } else { 0.0 };
        base + dir + self.yaw_offset
    }
}

/// Sun, sky and exposure for one sequence.
#[derive(Clone, Debug)]
pub(crate) struct Lighting {
    /// Sun elevation above the horizon, radians.
    pub sun_elevation: f64,
    /// Sun azimuth in the world frame (from world +x, counter-clockwise), radians.
    pub sun_azimuth: f64,
    /// Linear colour of direct sunlight.
    pub sun_colour: [f32; 3],
    /// Linear ambient (sky) light.
    pub ambient: [f32; 3],
    pub sky_top: [f32; 3],
    pub sky_horizon: [f32; 3],
    /// Exposure gain applied before the tone curve (time of day).
    pub gain: f32,
    /// Fog extinction per metre.
    pub fog: f32,
    /// Base asphalt brightness.
    pub asphalt: f32,
}

/// The whole world state.
#[derive(Clone, Debug)]
pub(crate) struct World {
    pub rng: ChaCha8Rng,
    pub road: Road,
    pub light: Lighting,
    /// Ego rear-axle position along the road and lateral offset.
    pub ego_s: f64,
    pub ego_l: f64,
    pub ego_v: f64,
    ego_v_target: f64,
    ego_lane: u8,
    ego_retarget_in: f64,
    pub actors: Vec<Actor>,
    next_id: u32,
    /// Mean gap between spawns per stream, metres (traffic density of this sequence).
    density: [f64; STREAMS.len()],
    pub time: f64,
}

/// Ego vehicle length and the offset of its centre ahead of the rear axle, metres.
pub(crate) const EGO_LENGTH: f64 = 4.9;
pub(crate) const EGO_CENTRE_AHEAD: f64 = 1.45;

fn palette_car(r: &mut ChaCha8Rng) -> [f32; 3] {
    const P: [[f32; 3]; 10] = [
        [0.85, 0.85, 0.86], // white
        [0.03, 0.03, 0.035], // black
        [0.45, 0.46, 0.48], // silver
        [0.18, 0.19, 0.2],  // dark grey
        [0.55, 0.05, 0.04], // red
        [0.04, 0.12, 0.45], // blue
        [0.05, 0.25, 0.12], // green
        [0.7, 0.55, 0.1],   // yellow
        [0.35, 0.22, 0.12], // brown
        [0.6, 0.3, 0.05],   // orange
    ];
    let mut c = P[r.random_range(0..P.len())];
    let j: f32 = r.random_range(0.8..1.2);
    for x in &mut c {
        *x = (*x * j).min(1.0);
    }
    c
}

fn palette_cloth(r: &mut ChaCha8Rng) -> [f32; 3] {
    [r.random_range(0.02..0.7), r.random_range(0.02..0.6), r.random_range(0.02..0.6)]
}

fn skin(r: &mut ChaCha8Rng) -> [f32; 3] {
    let t: f32 = r.random_range(0.0..1.0);
    let dark = [0.12, 0.07, 0.045];
    let light = [0.75, 0.55, 0.42];
    [dark[0] + t * (light[0] - dark[0]), dark[1] + t * (light[1] - dark[1]), dark[2] + t * (light[2] - dark[2])]
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let road = Road {
            amp: rng.random_range(0.0..25.0),
            k: TAU / rng.random_range(500.0..1400.0),
            phase: rng.random_range(0.0..TAU),
        };
        // Time of day: from low dusk sun (warm, dim, long shadows) to high noon.
        let elev_deg: f64 = rng.random_range(6.0..65.0);
        let day = ((elev_deg - 6.0) / 59.0) as f32;
        let warm = 1.0 - day;
        let light = Lighting {
            sun_elevation: elev_deg.to_radians(),
            sun_azimuth: rng.random_range(0.0..TAU),
            sun_colour: [1.0, 0.9 - 0.2 * warm, 0.8 - 0.35 * warm],
            ambient: [0.32 + 0.05 * warm, 0.36, 0.42 - 0.1 * warm],
            sky_top: [0.25 + 0.1 * warm, 0.42 - 0.05 * warm, 0.75 - 0.25 * warm],
            sky_horizon: [0.75 + 0.15 * warm, 0.78 - 0.05 * warm, 0.82 - 0.3 * warm],
            gain: rng.random_range(0.45..1.15) * (0.7 + 0.3 * day),
            fog: rng.random_range(0.0005..0.006),
            asphalt: rng.random_range(0.16..0.3),
        };
        let busy: f64 = rng.random_range(0.6..1.6);
        let mut density = [0.0; STREAMS.len()];
        for (d, s) in density.iter_mut().zip(STREAMS) {
            *d = busy
                * match s {
                    Stream::Lane(_) => 38.0,
                    Stream::Bike(_) => 90.0,
                    Stream::Parking(_) => 16.0,
                    Stream::Sidewalk(_) => 14.0,
                };
        }
        let ego_lane = rng.random_range(0..2u8);
        let ego_v = rng.random_range(6.0..20.0);
        let mut w = World {
            rng,
            road,
            light,
            ego_s: 0.0,
            ego_l: Stream::Lane(ego_lane).centre(),
            ego_v,
            ego_v_target: ego_v,
            ego_lane,
            ego_retarget_in: 5.0,
            actors: Vec::new(),
            next_id: 1,
            density,
            time: 0.0,
        };
        // Fill every stream over the window, back to front.
        for (si, stream) in STREAMS.into_iter().enumerate() {
            let mut s = -WINDOW_BACK + w.rng.random_range(0.0..w.density[si]);
            while s < WINDOW_FRONT {
                w.spawn(stream, s);
                s += w.gap(si);
            }
        }
        w
    }

    fn gap(&mut self, stream_index: usize) -> f64 {
        let m = self.density[stream_index];
        // Minimum spacing plus an exponential tail: clusters and empty stretches both occur.
        let u: f64 = self.rng.random_range(1e-6..1.0);
        (0.35 * m + -u.ln() * 0.65 * m).min(4.0 * m)
    }

    fn spawn(&mut self, stream: Stream, s: f64) {
        // Keep the ego's own lane clear around the ego.
        if stream == Stream::Lane(self.ego_lane) && (s - self.ego_s).abs() < 25.0 {
            return;
        }
        let r = &mut self.rng;
        let kind = match stream {
            Stream::Lane(_) => match r.random_range(0..100) {
                0..=34 => Kind::Sedan,
                35..=54 => Kind::Hatchback,
                55..=74 => Kind::Suv,
                75..=84 => Kind::Van,
                85..=93 => Kind::BoxTruck,
                _ => Kind::Bus,
            },
            Stream::Parking(_) => {
                if r.random_range(0..100) < 25 {
                    return;
                }
                match r.random_range(0..100) {
                    0..=39 => Kind::Sedan,
                    40..=69 => Kind::Hatchback,
                    70..=89 => Kind::Suv,
                    _ => Kind::Van,
                }
            }
            Stream::Bike(_) => Kind::Cyclist,
            Stream::Sidewalk(_) => {
                if r.random_range(0..100) < 15 {
                    Kind::Child
                } else {
                    Kind::Adult
                }
            }
        };
        let nominal = kind.nominal_size();
        let scale: f64 = r.random_range(0.92..1.08);
        let hscale: f64 = r.random_range(0.9..1.1);
        let size = [nominal[0] * scale, nominal[1] * scale.sqrt(), nominal[2] * hscale];
        let dir = stream.direction();
        let (v_desired, yaw_offset, l) = match stream {
            Stream::Lane(_) => (r.random_range(7.0..24.0), 0.0, stream.centre() + r.random_range(-0.3..0.3)),
            Stream::Bike(_) => (r.random_range(3.0..7.5), 0.0, stream.centre() + r.random_range(-0.2..0.2)),
            Stream::Parking(_) => (0.0, r.random_range(-0.06..0.06), stream.centre() + r.random_range(-0.25..0.25)),
            Stream::Sidewalk(_) => {
                let standing = r.random_range(0..100) < 25;
                let v = if standing { 0.0 } else { r.random_range(0.7..1.9) };
                let yaw = if standing { r.random_range(-PI..PI) } else { r.random_range(-0.25..0.25) };
                (v, yaw, stream.centre() + r.random_range(-0.9..0.9))
            }
        };
        // Half the pedestrians walk against the side's default direction.
        let dir = if matches!(stream, Stream::Sidewalk(_)) && r.random_range(0..2) == 0 { -dir } else { dir };
        let colours = match kind.class() {
            ObjectClass::Car | ObjectClass::Truck => [palette_car(r), palette_car(r), [0.08, 0.08, 0.09]],
            _ => [palette_cloth(r), palette_cloth(r), skin(r)],
        };
        let tex = r.random();
        self.actors.push(Actor {
            id: self.next_id,
            kind,
            stream,
            s,
            l,
            v: dir * v_desired,
            v_desired,
            yaw_offset,
            size,
            colours,
            tex,
        });
        self.next_id += 1;
    }

    /// Advances the world by `dt` seconds.
    pub fn step(&mut self, dt: f64) {
        self.time += dt;
        // Ego speed target changes every few seconds; occasional lane changes.
        self.ego_retarget_in -= dt;
        if self.ego_retarget_in <= 0.0 {
            self.ego_retarget_in = self.rng.random_range(4.0..12.0);
            self.ego_v_target = self.rng.random_range(5.0..22.0);
            if self.rng.random_range(0..3) == 0 {
                let target = 1 - self.ego_lane;
                let free = !self.actors.iter().any(|a| a.stream == Stream::Lane(target) && (a.s - self.ego_s).abs() < 18.0);
                if free {
                    self.ego_lane = target;
                }
            }
        }
        let lane_l = Stream::Lane(self.ego_lane).centre();
        let dl = lane_l - self.ego_l;
        self.ego_l += dl.clamp(-0.9 * dt, 0.9 * dt);

        // Car following, per stream: the leader is the next actor in the direction of travel.
        let ego_centre = self.ego_s + EGO_CENTRE_AHEAD;
        let n = self.actors.len();
        let mut v_new = Vec::with_capacity(n);
        for i in 0..n {
            let a = &self.actors[i];
            let dir = if a.v != 0.0 { a.v.signum() } else { a.stream.direction() };
            let mut target = a.v_desired;
            if matches!(a.stream, Stream::Lane(_) | Stream::Bike(_)) {
                let mut lead: Option<(f64, f64)> = None; // (gap, leader speed magnitude)
                let mut consider = |s: f64, len: f64, v: f64| {
                    let gap = (s - a.s) * dir - 0.5 * (len + a.size[0]);
                    if (s - a.s) * dir > 0.0 && lead.is_none_or(|(g, _)| gap < g) {
                        lead = Some((gap, v.abs()));
                    }
                };
                for (j, b) in self.actors.iter().enumerate() {
                    if j != i && b.stream == a.stream {
                        consider(b.s, b.size[0], b.v);
                    }
                }
                if a.stream == Stream::Lane(self.ego_lane) || (a.stream == Stream::Lane(1 - self.ego_lane) && dl.abs() > 0.1) {
                    consider(ego_centre, EGO_LENGTH, self.ego_v);
                }
                if let Some((gap, lv)) = lead {
                    let safe = 5.0 + 1.3 * a.v.abs();
                    if gap < safe {
                        target = target.min(lv * (gap / safe).max(0.0));
                    }
                }
            }
            let cur = a.v.abs();
            let dv = (target - cur).clamp(-7.0 * dt, 2.5 * dt);
            v_new.push(dir * (cur + dv).max(0.0));
        }
        for (a, v) in self.actors.iter_mut().zip(v_new) {
            a.v = v;
            a.s += a.v * dt;
        }

        // Ego follows its lane leader.
        let mut target = self.ego_v_target;
        let lead = self
            .actors
            .iter()
            .filter(|a| {
                a.stream == Stream::Lane(self.ego_lane) || (dl.abs() > 0.1 && a.stream == Stream::Lane(1 - self.ego_lane))
            })
            .filter(|a| a.s > ego_centre)
            .map(|a| (a.s - ego_centre - 0.5 * (a.size[0] + EGO_LENGTH), a.v.abs()))
            .min_by(|x, y| x.0.total_cmp(&y.0));
        if let Some((gap, lv)) = lead {
            let safe = 6.0 + 1.4 * self.ego_v;
            if gap < safe {
                target = target.min(lv * (gap / safe).max(0.0));
            }
        }
        let dv = (target - self.ego_v).clamp(-7.0 * dt, 2.5 * dt);
        self.ego_v = (self.ego_v + dv).max(0.0);
        self.ego_s += self.ego_v * dt;

        // Recycle: drop actors outside the window, spawn at its edges.
        let (back, front) = (self.ego_s - WINDOW_BACK, self.ego_s + WINDOW_FRONT);
        self.actors.retain(|a| a.s > back - 5.0 && a.s < front + 5.0);
        for (si, stream) in STREAMS.into_iter().enumerate() {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for a in self.actors.iter().filter(|a| a.stream == stream) {
                lo = lo.min(a.s);
                hi = hi.max(a.s);
            }
            if hi == f64::NEG_INFINITY {
                lo = front;
                hi = back;
            }
            // A fresh gap draw each frame would bias towards short gaps; compare against the
            // mean spacing with a per-frame spawn probability instead (a Poisson process in s).
            let moved = (self.ego_v * dt).max(0.5);
            let p = (moved / self.density[si]).min(1.0);
            if front - hi > 0.35 * self.density[si] && self.rng.random_range(0.0..1.0) < p {
                let s = front - self.rng.random_range(0.0..2.0);
                self.spawn(stream, s);
            }
            if lo - back > 0.35 * self.density[si] && self.rng.random_range(0.0..1.0) < p {
                let s = back + self.rng.random_range(0.0..2.0);
                self.spawn(stream, s);
            }
        }
    }

    /// Ego pose in the world: rear-axle `[x, y, yaw]`.
    pub fn ego_pose(&self) -> [f64; 3] {
        let (x, y) = self.road.world(self.ego_s, self.ego_l);
        // Heading follows the road plus the lateral drift of a lane change.
        let lateral_rate = if self.ego_v > 0.1 {
            let dl = Stream::Lane(self.ego_lane).centre() - self.ego_l;
            if dl.abs() > 0.05 { (0.9 * dl.signum()) / self.ego_v } else { 0.0 }
        } else {
            0.0
        };
        [x, y, self.road.heading(self.ego_s) + lateral_rate.atan()]
    }
}

/// A static, unlabelled thing by the road.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ClutterKind {
    StreetLight,
    Sign,
    Tree,
    Bollard,
    Building,
    Wall,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Clutter {
    pub kind: ClutterKind,
    pub s: f64,
    pub l: f64,
    /// Length (along the road), depth (across), height.
    pub size: [f64; 3],
    pub colour: [f32; 3],
    /// +1 on the left of the road, -1 on the right.
    pub side: f64,
    pub tex: u32,
}

const SMALL_SEG: f64 = 6.0;
const BLOCK: f64 = 22.0;

/// Static clutter with `s` in `[s0, s1)`, a pure function of the seed.
pub(crate) fn clutter(seed: u64, s0: f64, s1: f64, out: &mut Vec<Clutter>) {
    out.clear();
    let seed32 = (seed ^ (seed >> 32)) as u32;
    for side_i in 0..2u32 {
        let side = if side_i == 0 { -1.0 } else { 1.0 };
        let k0 = (s0 / SMALL_SEG).floor() as i64;
        let k1 = (s1 / SMALL_SEG).ceil() as i64;
        for k in k0..k1 {
            let h = hash3(seed32, side_i * 7 + 1, k as u32);
            let r = unit(h);
            let jitter = unit(hash3(h, 2, 3)) as f64;
            let s = k as f64 * SMALL_SEG + jitter * SMALL_SEG;
            let tex = hash3(h, 5, 9);
            let c = |kind, l: f64, size, colour| Clutter { kind, s, l: side * l, size, colour, side, tex };
            let item = if r < 0.18 {
                Some(c(ClutterKind::StreetLight, CURB + 0.4, [0.22, 0.22, 7.5], [0.32, 0.33, 0.34]))
            } else if r < 0.28 {
                let colours = [[0.7, 0.05, 0.04], [0.05, 0.15, 0.6], [0.85, 0.85, 0.85], [0.8, 0.65, 0.05], [0.05, 0.45, 0.15]];
                let colour = colours[(tex % 5) as usize];
                Some(c(ClutterKind::Sign, CURB + 0.5, [0.08, 0.8, 2.9], colour))
            } else if r < 0.40 {
                let g = unit(hash3(tex, 1, 1));
                Some(c(ClutterKind::Tree, SIDEWALK_EDGE - 0.3, [2.8, 2.8, 5.0 + 2.0 * g as f64], [0.08 + 0.1 * g, 0.22 + 0.1 * g, 0.06]))
            } else if r < 0.46 {
                Some(c(ClutterKind::Bollard, CURB + 0.3, [0.3, 0.3, 1.0], [0.5, 0.45, 0.1]))
            } else {
                None
            };
            out.extend(item);
        }
        let b0 = (s0 / BLOCK).floor() as i64;
        let b1 = (s1 / BLOCK).ceil() as i64;
        for b in b0..b1 {
            let h = hash3(seed32, side_i * 7 + 3, b as u32);
            let r = unit(h);
            let u = |i: u32| unit(hash3(h, i, 17)) as f64;
            let s = (b as f64 + 0.5) * BLOCK;
            let tex = hash3(h, 11, 13);
            if r < 0.72 {
                let colours = [[0.55, 0.27, 0.18], [0.62, 0.6, 0.56], [0.45, 0.47, 0.5], [0.75, 0.7, 0.6], [0.3, 0.33, 0.38], [0.8, 0.78, 0.72]];
                let colour = colours[(tex % 6) as usize];
                let depth = 8.0 + 14.0 * u(2);
                let setback = 1.5 + 5.0 * u(3);
                out.push(Clutter {
                    kind: ClutterKind::Building,
                    s,
                    l: side * (SIDEWALK_EDGE + setback + 0.5 * depth),
                    size: [BLOCK - 1.0 - 5.0 * u(4), depth, 4.0 + 22.0 * u(5) * u(6)],
                    colour,
                    side,
                    tex,
                });
            } else if r < 0.88 {
                out.push(Clutter {
                    kind: ClutterKind::Wall,
                    s,
                    l: side * (SIDEWALK_EDGE + 0.6),
                    size: [BLOCK - 0.5, 0.3, 1.2 + 1.5 * u(7)],
                    colour: [0.5 + 0.2 * u(8) as f32, 0.48 + 0.15 * u(9) as f32, 0.45],
                    side,
                    tex,
                });
            }
        }
    }
}
