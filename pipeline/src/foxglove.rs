//! Live view in Foxglove over its WebSocket protocol (feature `live-view`).
//!
//! [`LiveView::start`] opens the `foxglove` crate's WebSocket server and a viewer thread at the
//! lowest scheduling priority. The thread drains the bounded rings a [`crate::live::ViewSink`]
//! fills on the hot thread, and publishes:
//!
//! | Topic | Schema | What |
//! |---|---|---|
//! | `/camera/<name>/image` | `foxglove.RawImage` (rgb8) | the frame the detector saw, downscaled, at a reduced rate |
//! | `/camera/<name>/annotations` | `foxglove.ImageAnnotations` | its detections (boxes and labels) in the downscaled image |
//! | `/objects` | `foxglove.SceneUpdate` | the tracked objects of the published snapshot, in the `vehicle` frame |
//! | `/status` | `vigil.Status` (JSON) | the run's status line as numbers, once a second |
//!
//! Pixels are read straight from the read-only camera pools by slot (no copy on the hot path).
//! Images are only encoded while a client subscribes to them. A slow or absent viewer never
//! slows the hot loop: the rings drop (and count) what the thread does not take in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use control::Snapshot;
use ::foxglove::schemas::{
    Color, CubePrimitive, ImageAnnotations, Point2, PointsAnnotation, Pose, Quaternion, RawImage, SceneEntity, SceneUpdate,
    TextAnnotation, Timestamp, Vector3,
};
use ::foxglove::{Channel, Context, PartialMetadata, RawChannel, Schema, WebSocketServerHandle};
use rig::{ObjectClass, Rig};

use crate::live::{NO_SLOT, ResultRecord, ViewReceivers};
use crate::mcap_io::{VEHICLE_FRAME, camera_frame};
use crate::pool::FramePool;

/// JSON schema of `/status`.
const STATUS_SCHEMA: &str = r#"{"type":"object","title":"vigil.Status","properties":{
"uptime_s":{"type":"number"},"fps_avg":{"type":"array","items":{"type":"number"}},
"latency_p50_ms":{"type":"number"},"latency_p99_ms":{"type":"number"},"power_w":{"type":"number"},
"temperature_c":{"type":"number"},"ladder_level":{"type":"integer"},"skipped":{"type":"integer"},
"capture_dropped":{"type":"integer"},"backend":{"type":"string"},"failovers":{"type":"integer"},
"view_dropped":{"type":"integer"}}}"#;

/// Options of [`LiveView::start`].
#[derive(Clone, Debug)]
pub struct LiveViewOptions {
    /// Address to listen on (`127.0.0.1:8765` by default; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Images are downscaled by this factor (1 = full size).
    pub image_scale: u32,
}

impl Default for LiveViewOptions {
    fn default() -> Self {
        LiveViewOptions { addr: SocketAddr::from(([127, 0, 0, 1], 8765)), image_scale: 2 }
    }
}

/// Why the live view cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LiveViewError {
    /// The server could not start (address in use, no permission).
    #[error("foxglove WebSocket server on {addr}: {message}")]
    Server {
        /// The address asked for.
        addr: SocketAddr,
        /// What failed.
        message: String,
    },
    /// The viewer thread could not be spawned.
    #[error("viewer thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Per-camera channels.
struct CameraChannels {
    frame_id: String,
    image: Channel<RawImage>,
    annotations: Channel<ImageAnnotations>,
}

/// A running live view: the WebSocket server and the viewer thread.
pub struct LiveView {
    handle: Option<WebSocketServerHandle>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _ctx: Arc<Context>,
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView").field("addr", &self.addr).finish()
    }
}

impl LiveView {
    /// Starts the server on `opts.addr` and the viewer thread over `rx`. `pools[c]` holds camera
    /// `c`'s frames; `status` renders the status as a JSON object (called once a second on the
    /// viewer thread); `unix_offset_ns` is added to the runtime's clock to get Unix time.
    pub fn start(
        opts: &LiveViewOptions,
        rig: &Rig,
        pools: Vec<Option<Arc<FramePool>>>,
        rx: ViewReceivers,
        status: Box<dyn FnMut() -> String + Send>,
        unix_offset_ns: i128,
    ) -> Result<LiveView, LiveViewError> {
        let ctx = Context::new();
        let cameras: Vec<CameraChannels> = rig
            .cameras()
            .iter()
            .map(|c| CameraChannels {
                frame_id: camera_frame(&c.name),
                image: ctx.channel_builder(format!("/camera/{}/image", c.name)).build::<RawImage>(),
                annotations: ctx.channel_builder(format!("/camera/{}/annotations", c.name)).build::<ImageAnnotations>(),
            })
            .collect();
        let objects = ctx.channel_builder("/objects").build::<SceneUpdate>();
        let status_channel = ctx
            .channel_builder("/status")
            .message_encoding("json")
            .schema(Schema::new("vigil.Status", "jsonschema", STATUS_SCHEMA.as_bytes().to_vec()))
            .build_raw()
            .map_err(|e| LiveViewError::Server { addr: opts.addr, message: e.to_string() })?;
        let handle = ::foxglove::WebSocketServer::new()
            .name("vigil")
            .bind(opts.addr.ip().to_string(), opts.addr.port())
            .context(&ctx)
            .start_blocking()
            .map_err(|e| LiveViewError::Server { addr: opts.addr, message: e.to_string() })?;
        let addr = SocketAddr::new(opts.addr.ip(), handle.port());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            cameras,
            objects,
            status_channel,
            status,
            pools,
            rx,
            scale: opts.image_scale.max(1),
            offset: unix_offset_ns,
            scratch: Vec::new(),
        };
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new().name("foxglove-view".into()).spawn(move || {
                // Lowest normal priority (nice 19): the view yields to everything else.
                let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
                worker.run(&stop);
            })?
        };
        Ok(LiveView { handle: Some(handle), addr, stop, thread: Some(thread), _ctx: ctx })
    }

    /// The address the server listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.handle.as_ref().map_or(0, |h| h.client_count())
    }

    /// Stops the viewer thread and the server.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(h) = self.handle.take() {
            h.stop().wait_blocking();
        }
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    cameras: Vec<CameraChannels>,
    objects: Channel<SceneUpdate>,
    status_channel: Arc<RawChannel>,
    status: Box<dyn FnMut() -> String + Send>,
    pools: Vec<Option<Arc<FramePool>>>,
    rx: ViewReceivers,
    scale: u32,
    offset: i128,
    scratch: Vec<u8>,
}

fn class_name(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::Car => "car",
        ObjectClass::Truck => "truck",
        ObjectClass::Pedestrian => "pedestrian",
        ObjectClass::Cyclist => "cyclist",
    }
}

fn class_color(class_index: usize) -> Color {
    let (r, g, b) = match class_index {
        0 => (0.2, 0.6, 1.0),
        1 => (1.0, 0.6, 0.1),
        2 => (1.0, 0.2, 0.3),
        _ => (0.3, 1.0, 0.4),
    };
    Color { r, g, b, a: 1.0 }
}

impl Worker {
    fn run(mut self, stop: &AtomicBool) {
        let mut last_status = StdInstant::now() - StdDuration::from_secs(2);
        while !stop.load(Ordering::Relaxed) {
            let mut idle = true;
            while let Ok(rec) = self.rx.results.pop() {
                idle = false;
                self.camera_result(&rec);
            }
            while let Ok(s) = self.rx.snapshots.pop() {
                idle = false;
                self.snapshot(&s);
            }
            if last_status.elapsed() >= StdDuration::from_secs(1) {
                last_status = StdInstant::now();
                if self.status_channel.has_sinks() {
                    let json = (self.status)();
                    self.status_channel.log(json.as_bytes());
                }
            }
            if idle {
                std::thread::sleep(StdDuration::from_millis(10));
            }
        }
    }

    fn unix_ns(&self, t: u64) -> u64 {
        (i128::from(t) + self.offset).clamp(0, i128::from(u64::MAX)) as u64
    }

    fn stamp(&self, t: u64) -> Timestamp {
        let u = self.unix_ns(t);
        Timestamp::new((u / 1_000_000_000) as u32, (u % 1_000_000_000) as u32)
    }

    fn camera_result(&mut self, rec: &ResultRecord) {
        let Some(cam) = self.cameras.get(usize::from(rec.camera)) else { return };
        let (want_image, want_ann) = (cam.image.has_sinks(), cam.annotations.has_sinks());
        if !want_image && !want_ann {
            return;
        }
        let stamp = self.stamp(rec.capture_ns);
        let meta = PartialMetadata::with_log_time(self.unix_ns(rec.capture_ns));
        let s = self.scale as f32;
        if want_image
            && rec.slot != NO_SLOT
            && let Some(Some(pool)) = self.pools.get(usize::from(rec.camera))
            && let Some(px) = pool.slot(rec.slot)
        {
            let f = pool.format();
            let (w, h) = downscale(px, f.width, f.height, self.scale, &mut self.scratch);
            let img = RawImage {
                timestamp: Some(stamp),
                frame_id: cam.frame_id.clone(),
                width: w,
                height: h,
                encoding: "rgb8".into(),
                step: w * 3,
                data: prost::bytes::Bytes::copy_from_slice(&self.scratch),
            };
            cam.image.log_with_meta(&img, meta);
        }
        if want_ann {
            let mut ann = ImageAnnotations { timestamp: Some(stamp), ..Default::default() };
            for d in rec.detections() {
                let [u0, v0, u1, v1] = d.bbox.map(|x| f64::from(x / s));
                let color = class_color(d.class as usize);
                ann.points.push(PointsAnnotation {
                    timestamp: Some(stamp),
                    r#type: ::foxglove::schemas::points_annotation::Type::LineLoop as i32,
                    points: vec![Point2 { x: u0, y: v0 }, Point2 { x: u1, y: v0 }, Point2 { x: u1, y: v1 }, Point2 { x: u0, y: v1 }],
                    outline_color: Some(color),
                    thickness: 2.0,
                    ..Default::default()
                });
                ann.texts.push(TextAnnotation {
                    timestamp: Some(stamp),
                    position: Some(Point2 { x: u0, y: (v0 - 2.0).max(0.0) }),
                    text: format!("{} {:.2} {:.1} m", class_name(d.class), d.score, d.depth),
                    font_size: 12.0,
                    text_color: Some(color),
                    background_color: Some(Color { r: 0.0, g: 0.0, b: 0.0, a: 0.6 }),
                    ..Default::default()
                });
            }
            cam.annotations.log_with_meta(&ann, meta);
        }
    }

    fn snapshot(&mut self, s: &Snapshot) {
        if !self.objects.has_sinks() {
            return;
        }
        let stamp = self.stamp(s.publish_ns);
        let lifetime = ::foxglove::schemas::Duration::new(0, 300_000_000);
        let entities = s
            .objects()
            .iter()
            .map(|o| {
                let size = match o.class {
                    0 => [4.5, 1.9, 1.6],
                    1 => [9.0, 2.5, 3.2],
                    2 => [0.6, 0.6, 1.8],
                    _ => [1.8, 0.6, 1.7],
                };
                SceneEntity {
                    timestamp: Some(stamp),
                    frame_id: VEHICLE_FRAME.into(),
                    id: format!("track-{}", o.track_id),
                    lifetime: Some(lifetime),
                    cubes: vec![CubePrimitive {
                        pose: Some(Pose {
                            position: Some(Vector3 {
                                x: f64::from(o.position[0]),
                                y: f64::from(o.position[1]),
                                z: f64::from(o.position[2]),
                            }),
                            orientation: Some(Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }),
                        }),
                        size: Some(Vector3 { x: size[0], y: size[1], z: size[2] }),
                        color: Some(Color { a: 0.5, ..class_color(usize::from(o.class)) }),
                    }],
                    ..Default::default()
                }
            })
            .collect();
        let update = SceneUpdate { deletions: Vec::new(), entities };
        self.objects.log_with_meta(&update, PartialMetadata::with_log_time(self.unix_ns(s.publish_ns)));
    }
}

/// Box-filters packed RGB8 `px` (`w x h`) down by `scale` into `out`; returns the new size.
pub fn downscale(px: &[u8], w: u32, h: u32, scale: u32, out: &mut Vec<u8>) -> (u32, u32) {
    let s = scale.max(1) as usize;
    let (w, h) = (w as usize, h as usize);
    let (ow, oh) = (w / s, h / s);
    out.clear();
    out.resize(ow * oh * 3, 0);
    if px.len() < w * h * 3 {
        return (ow as u32, oh as u32);
    }
    let n = (s * s) as u32;
    for y in 0..oh {
        for x in 0..ow {
            let mut acc = [0u32; 3];
            for dy in 0..s {
                let row = ((y * s + dy) * w + x * s) * 3;
                for p in px[row..row + s * 3].chunks_exact(3) {
                    acc[0] += u32::from(p[0]);
                    acc[1] += u32::from(p[1]);
                    acc[2] += u32::from(p[2]);
                }
            }
            let o = (y * ow + x) * 3;
            for k in 0..3 {
                out[o + k] = ((acc[k] + n / 2) / n) as u8;
            }
        }
    }
    (ow as u32, oh as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_averages_blocks() {
        // 4x2 image, scale 2 -> 2x1: each output pixel averages a 2x2 block.
        let px: Vec<u8> = (0..4 * 2).flat_map(|i| [i as u8 * 10, 100, 255 - i as u8]).collect();
        let mut out = Vec::new();
        assert_eq!(downscale(&px, 4, 2, 2, &mut out), (2, 1));
        // Block 0: pixels 0, 1, 4, 5 -> red (0+10+40+50)/4 = 25, blue (255+254+251+250)/4 = 252.5 -> 253.
        // Block 1: pixels 2, 3, 6, 7 -> red 45, blue (253+252+249+248)/4 = 250.5 -> 251.
        assert_eq!(&out[..3], &[25, 100, 253]);
        assert_eq!(&out[3..], &[45, 100, 251]);
        assert_eq!(downscale(&px, 4, 2, 1, &mut out), (4, 2));
        assert_eq!(out, px);
    }
}
