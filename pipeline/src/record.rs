//! Writing synthetic recordings to MCAP.
//!
//! [`record_synthetic`] renders the synthetic world through the rig and writes, per frame,
//! every selected camera's image and calibration, the ground truth and the ego pose (see
//! [`crate::mcap_io`] for the channel layout). Output is byte-identical for the same
//! arguments: fixed library string, no wall-clock time anywhere, single-threaded zstd and a
//! fixed chunk size. It is written to `FILE.partial` and renamed into place only once
//! complete, so an interrupted run never leaves a file that looks finished.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use foxglove::Encode;
use foxglove::schemas::{
    CameraCalibration, CompressedImage, FrameTransform, FrameTransforms, Pose, PoseInFrame, Quaternion, RawImage, Timestamp,
    Vector3,
};
use image::ImageEncoder;
use mcap::records::MessageHeader;
use rig::calib::{Camera, Rig};
use rig::synth::SyntheticRig;

use crate::mcap_io::{
    calibration_topic, camera_frame, image_topic, EGO_POSE_TOPIC, GROUND_TRUTH_SCHEMA, GROUND_TRUTH_SCHEMA_NAME, GROUND_TRUTH_TOPIC,
    RECORDING_METADATA, TF_TOPIC, VEHICLE_FRAME, WORLD_FRAME,
};

/// The library string in every recording's header (no build time, no host: reproducible).
pub const LIBRARY: &str = concat!("vigil ", env!("CARGO_PKG_VERSION"), " (mcap crate 0.26)");
/// Uncompressed chunk size, bytes (fixed, so chunk boundaries are reproducible).
pub const CHUNK_SIZE: u64 = 4 << 20;

/// How camera images are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageEncoding {
    /// `foxglove.CompressedImage`, format `png` (lossless; the default).
    Png,
    /// `foxglove.CompressedImage`, format `jpeg` (quality 90; smallest, lossy).
    Jpeg,
    /// `foxglove.RawImage`, encoding `rgb8` (largest; zstd chunks shrink it).
    Raw,
}

impl ImageEncoding {
    /// Name as used on the command line and in the recording metadata.
    pub fn name(self) -> &'static str {
        match self {
            ImageEncoding::Png => "png",
            ImageEncoding::Jpeg => "jpeg",
            ImageEncoding::Raw => "raw",
        }
    }
}

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Length of the recording, seconds.
    pub seconds: f64,
    /// World seed.
    pub seed: u64,
    /// Frames per second (every camera captures at the same instants).
    pub fps: f64,
    /// Cameras to record by name, in any order; empty: all of them.
    pub cameras: Vec<String>,
    /// Image storage.
    pub images: ImageEncoding,
}

/// What [`record_synthetic`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSummary {
    /// Rig frames recorded.
    pub frames: u64,
    /// Cameras recorded.
    pub cameras: usize,
    /// Messages written.
    pub messages: u64,
    /// File size, bytes.
    pub bytes: u64,
}

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
    /// A camera name is not on the rig.
    #[error("no camera `{name}` on the rig (cameras: {available})")]
    UnknownCamera {
        /// The name asked for.
        name: String,
        /// The rig's cameras, comma-separated.
        available: String,
    },
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// File being written.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The MCAP writer failed.
    #[error("{path}: MCAP writer: {source}")]
    Mcap {
        /// File being written.
        path: PathBuf,
        /// Cause.
        source: mcap::McapError,
    },
    /// An image or message could not be encoded.
    #[error("encoding {what}: {why}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// Cause.
        why: String,
    },
}

/// `FILE` -> `FILE.partial`.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

fn stamp(ns: u64) -> Option<Timestamp> {
    Some(Timestamp::new((ns / 1_000_000_000) as u32, (ns % 1_000_000_000) as u32))
}

fn yaw_quaternion(yaw: f64) -> Quaternion {
    Quaternion { x: 0.0, y: 0.0, z: (yaw / 2.0).sin(), w: (yaw / 2.0).cos() }
}

/// The camera's calibration as a `foxglove.CameraCalibration` (plumb_bob = Brown–Conrady k1 k2 p1 p2 k3).
pub fn calibration_message(cam: &Camera, timestamp_ns: u64) -> CameraCalibration {
    CameraCalibration {
        timestamp: stamp(timestamp_ns),
        frame_id: camera_frame(&cam.name),
        width: cam.width,
        height: cam.height,
        distortion_model: "plumb_bob".into(),
        d: cam.distortion.to_vec(),
        k: vec![cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0],
        r: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: vec![cam.fx, 0.0, cam.cx, 0.0, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    }
}

fn camera_transform(cam: &Camera, timestamp_ns: u64) -> FrameTransform {
    let t = cam.camera_to_vehicle.translation.vector;
    let q = cam.camera_to_vehicle.rotation.quaternion().coords; // [i, j, k, w]
    FrameTransform {
        timestamp: stamp(timestamp_ns),
        parent_frame_id: VEHICLE_FRAME.into(),
        child_frame_id: camera_frame(&cam.name),
        translation: Some(Vector3 { x: t.x, y: t.y, z: t.z }),
        rotation: Some(Quaternion { x: q[0], y: q[1], z: q[2], w: q[3] }),
    }
}

struct Out {
    writer: mcap::Writer<BufWriter<File>>,
    path: PathBuf,
    messages: u64,
}

impl Out {
    fn mcap<T>(&self, r: Result<T, mcap::McapError>) -> Result<T, RecordError> {
        r.map_err(|source| RecordError::Mcap { path: self.path.clone(), source })
    }

    fn schema<T: Encode>(&mut self) -> Result<u16, RecordError> {
        let s = T::get_schema().ok_or_else(|| RecordError::Encode { what: "schema".into(), why: "foxglove type without schema".into() })?;
        let r = self.writer.add_schema(&s.name, &s.encoding, &s.data);
        self.mcap(r)
    }

    fn channel(&mut self, schema: u16, topic: &str, encoding: &str) -> Result<u16, RecordError> {
        let r = self.writer.add_channel(schema, topic, encoding, &BTreeMap::new());
        self.mcap(r)
    }

    fn write(&mut self, channel_id: u16, sequence: u32, time: u64, data: &[u8]) -> Result<(), RecordError> {
        let header = MessageHeader { channel_id, sequence, log_time: time, publish_time: time };
        let r = self.writer.write_to_known_channel(&header, data);
        self.messages += 1;
        self.mcap(r)
    }

    fn proto<T: Encode>(&mut self, channel_id: u16, sequence: u32, time: u64, msg: &T, buf: &mut Vec<u8>) -> Result<(), RecordError> {
        buf.clear();
        msg.encode(buf).map_err(|e| RecordError::Encode { what: "protobuf message".into(), why: e.to_string() })?;
        let data = std::mem::take(buf);
        let r = self.write(channel_id, sequence, time, &data);
        *buf = data;
        r
    }
}

fn encode_image(cam: &Camera, rgb: &[u8], enc: ImageEncoding, time: u64, out: &mut Vec<u8>) -> Result<Vec<u8>, RecordError> {
    let err = |e: image::ImageError| RecordError::Encode { what: format!("{} image of camera `{}`", enc.name(), cam.name), why: e.to_string() };
    let msg_bytes = match enc {
        ImageEncoding::Raw => {
            let m = RawImage {
                timestamp: stamp(time),
                frame_id: camera_frame(&cam.name),
                width: cam.width,
                height: cam.height,
                encoding: "rgb8".into(),
                step: cam.width * 3,
                data: rgb.to_vec().into(),
            };
            out.clear();
            m.encode(out).map_err(|e| RecordError::Encode { what: "raw image".into(), why: e.to_string() })?;
            return Ok(std::mem::take(out));
        }
        ImageEncoding::Png => {
            out.clear();
            image::codecs::png::PngEncoder::new_with_quality(
                &mut *out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            )
            .write_image(rgb, cam.width, cam.height, image::ExtendedColorType::Rgb8)
            .map_err(err)?;
            ("png", std::mem::take(out))
        }
        ImageEncoding::Jpeg => {
            out.clear();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut *out, 90)
                .encode(rgb, cam.width, cam.height, image::ExtendedColorType::Rgb8)
                .map_err(err)?;
            ("jpeg", std::mem::take(out))
        }
    };
    let (format, data) = msg_bytes;
    let m = CompressedImage { timestamp: stamp(time), frame_id: camera_frame(&cam.name), data: data.into(), format: format.into() };
    let mut buf = Vec::with_capacity(m.encoded_len().unwrap_or(0));
    m.encode(&mut buf).map_err(|e| RecordError::Encode { what: "compressed image".into(), why: e.to_string() })?;
    Ok(buf)
}

/// Records `opts.seconds` of the synthetic world seen through `rig` into `out` (an MCAP file).
/// `progress(done, total)` is called after every frame.
pub fn record_synthetic(rig: &Rig, opts: &RecordOptions, out: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<RecordSummary, RecordError> {
    if !(opts.fps.is_finite() && opts.fps > 0.0 && opts.fps <= 1000.0) {
        return Err(RecordError::Option(format!("--fps must be in (0, 1000], got {}", opts.fps)));
    }
    if !(opts.seconds.is_finite() && opts.seconds > 0.0 && opts.seconds <= 86_400.0) {
        return Err(RecordError::Option(format!("--seconds must be in (0, 86400], got {}", opts.seconds)));
    }
    let frames = ((opts.seconds * opts.fps).round() as u64).max(1);
    let cams = rig.cameras();
    let selected: Vec<usize> = if opts.cameras.is_empty() {
        (0..cams.len()).collect()
    } else {
        let mut idx = Vec::new();
        for name in &opts.cameras {
            match cams.iter().position(|c| &c.name == name) {
                Some(i) if !idx.contains(&i) => idx.push(i),
                Some(_) => {}
                None => {
                    let available = cams.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
                    return Err(RecordError::UnknownCamera { name: name.clone(), available });
                }
            }
        }
        idx.sort_unstable();
        idx
    };

    let partial = partial_path(out);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordError::Io { path, source }
    };
    let file = File::create(&partial).map_err(io(&partial))?;
    let result = write_all(rig, opts, frames, &selected, file, &partial, progress);
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(io(out))?;
    let bytes = std::fs::metadata(out).map_err(io(out))?.len();
    Ok(RecordSummary { bytes, ..summary })
}

fn write_all(
    rig: &Rig,
    opts: &RecordOptions,
    frames: u64,
    selected: &[usize],
    file: File,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RecordSummary, RecordError> {
    let writer = mcap::WriteOptions::new()
        .compression(Some(mcap::Compression::Zstd))
        .compression_level(3)
        .compression_threads(0)
        .chunk_size(Some(CHUNK_SIZE))
        .profile("")
        .library(LIBRARY)
        .create(BufWriter::with_capacity(1 << 20, file));
    let mut out = Out {
        writer: writer.map_err(|source| RecordError::Mcap { path: path.to_path_buf(), source })?,
        path: path.to_path_buf(),
        messages: 0,
    };
    let cams = rig.cameras();
    let image_schema = match opts.images {
        ImageEncoding::Raw => out.schema::<RawImage>()?,
        _ => out.schema::<CompressedImage>()?,
    };
    let calib_schema = out.schema::<CameraCalibration>()?;
    let gt_schema = {
        let r = out.writer.add_schema(GROUND_TRUTH_SCHEMA_NAME, "jsonschema", GROUND_TRUTH_SCHEMA.as_bytes());
        out.mcap(r)?
    };
    let pose_schema = out.schema::<PoseInFrame>()?;
    let tf_schema = out.schema::<FrameTransforms>()?;
    let mut image_ch = Vec::new();
    let mut calib_ch = Vec::new();
    for &i in selected {
        image_ch.push(out.channel(image_schema, &image_topic(&cams[i].name), "protobuf")?);
        calib_ch.push(out.channel(calib_schema, &calibration_topic(&cams[i].name), "protobuf")?);
    }
    let gt_ch = out.channel(gt_schema, GROUND_TRUTH_TOPIC, "json")?;
    let pose_ch = out.channel(pose_schema, EGO_POSE_TOPIC, "protobuf")?;
    let tf_ch = out.channel(tf_schema, TF_TOPIC, "protobuf")?;

    let meta: BTreeMap<String, String> = [
        ("generator", "synthetic".to_string()),
        ("seed", opts.seed.to_string()),
        ("fps", opts.fps.to_string()),
        ("seconds", opts.seconds.to_string()),
        ("frames", frames.to_string()),
        ("images", opts.images.name().to_string()),
        ("rig_cameras", cams.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",")),
        ("recorded_cameras", selected.iter().map(|&i| cams[i].name.as_str()).collect::<Vec<_>>().join(",")),
        ("vigil_version", env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let r = out.writer.write_metadata(&mcap::records::Metadata { name: RECORDING_METADATA.into(), metadata: meta });
    out.mcap(r)?;

    let mut world = SyntheticRig::new(rig.clone(), opts.seed, opts.fps);
    let mut images: Vec<Vec<u8>> = vec![Vec::new(); cams.len()];
    let mut scratch = Vec::new();
    let mut buf = Vec::new();
    for f in 0..frames {
        let truth = world.next_frame(&mut images);
        let t = truth.timestamp_ns;
        let seq = f as u32;
        for (k, &i) in selected.iter().enumerate() {
            let cam = &cams[i];
            let data = encode_image(cam, &images[i], opts.images, t, &mut scratch)?;
            out.write(image_ch[k], seq, t, &data)?;
            scratch = data;
            out.proto(calib_ch[k], seq, t, &calibration_message(cam, t), &mut buf)?;
        }
        let gt = serde_json::to_vec(&truth).map_err(|e| RecordError::Encode { what: "ground truth".into(), why: e.to_string() })?;
        out.write(gt_ch, seq, t, &gt)?;
        let [x, y, yaw] = truth.ego_pose;
        let pose = PoseInFrame {
            timestamp: stamp(t),
            frame_id: WORLD_FRAME.into(),
            pose: Some(Pose { position: Some(Vector3 { x, y, z: 0.0 }), orientation: Some(yaw_quaternion(yaw)) }),
        };
        out.proto(pose_ch, seq, t, &pose, &mut buf)?;
        let mut transforms = vec![FrameTransform {
            timestamp: stamp(t),
            parent_frame_id: WORLD_FRAME.into(),
            child_frame_id: VEHICLE_FRAME.into(),
            translation: Some(Vector3 { x, y, z: 0.0 }),
            rotation: Some(yaw_quaternion(yaw)),
        }];
        transforms.extend(selected.iter().map(|&i| camera_transform(&cams[i], t)));
        out.proto(tf_ch, seq, t, &FrameTransforms { transforms }, &mut buf)?;
        progress(f + 1, frames);
    }
    let r = out.writer.finish();
    out.mcap(r)?;
    let messages = out.messages;
    let mut inner = out.writer.into_inner();
    inner.flush().map_err(|source| RecordError::Io { path: path.to_path_buf(), source })?;
    inner.get_ref().sync_all().map_err(|source| RecordError::Io { path: path.to_path_buf(), source })?;
    Ok(RecordSummary { frames, cameras: selected.len(), messages, bytes: 0 })
}
