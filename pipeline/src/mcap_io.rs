//! The MCAP layout of vigil recordings, and a reader that checks every byte it relies on.
//!
//! Channels (see `docs/FORMATS.md` for the full description):
//!
//! | topic | schema (encoding) |
//! |---|---|
//! | `/camera/<name>/image` | `foxglove.CompressedImage` (png/jpeg) or `foxglove.RawImage` (rgb8) (protobuf) |
//! | `/camera/<name>/calibration` | `foxglove.CameraCalibration` (protobuf) |
//! | `/ground_truth` | `vigil.GroundTruth` (jsonschema / json) |
//! | `/ego_pose` | `foxglove.PoseInFrame` (protobuf) |
//! | `/tf` | `foxglove.FrameTransforms` (protobuf) |
//!
//! [`read_log`] walks the file record by record itself (using the `mcap` crate to parse
//! each record), so every problem is reported with the byte offset where it was found:
//! truncation, bad lengths, chunk CRC or decompression failures, data and summary section
//! CRCs, undecodable messages. It never panics on bad input. It decodes every image at
//! start-up into 128-byte aligned frame buffers, ready for [`crate::source::ReplaySource`].

use std::collections::BTreeMap;
use std::io::Read;

use foxglove::schemas::{CameraCalibration, CompressedImage, RawImage};
use mcap::records::{MessageHeader, Record};
use prost::Message as _;

use crate::pool::{FrameBuf, FrameFormat, FramePool};
use crate::source::{CameraInfo, ReplayCapture, ReplaySource};

/// Name of the ground-truth schema (`jsonschema` encoding, `json` messages).
pub const GROUND_TRUTH_SCHEMA_NAME: &str = "vigil.GroundTruth";
/// The JSON Schema of [`rig::synth::FrameTruth`]'s serde form, as stored in recordings.
pub const GROUND_TRUTH_SCHEMA: &str = include_str!("../schemas/vigil.GroundTruth.schema.json");
/// Ground-truth topic.
pub const GROUND_TRUTH_TOPIC: &str = "/ground_truth";
/// Ego pose topic (`foxglove.PoseInFrame`, pose of the vehicle frame in `world`).
pub const EGO_POSE_TOPIC: &str = "/ego_pose";
/// Transform tree topic (`foxglove.FrameTransforms`).
pub const TF_TOPIC: &str = "/tf";
/// Name of the metadata record describing how a recording was made.
pub const RECORDING_METADATA: &str = "vigil.recording";
/// Frame id of the world (odometry) frame.
pub const WORLD_FRAME: &str = "world";
/// Frame id of the vehicle frame (ISO 8855).
pub const VEHICLE_FRAME: &str = "vehicle";

/// Topic of a camera's images.
pub fn image_topic(camera: &str) -> String {
    format!("/camera/{camera}/image")
}

/// Topic of a camera's calibration.
pub fn calibration_topic(camera: &str) -> String {
    format!("/camera/{camera}/calibration")
}

/// Frame id of a camera's optical frame (OpenCV convention: x right, y down, z forward).
pub fn camera_frame(camera: &str) -> String {
    format!("camera_{camera}")
}

/// `/camera/<name>/<leaf>` -> `<name>`.
fn camera_of(topic: &str, leaf: &str) -> Option<String> {
    let name = topic.strip_prefix("/camera/")?.strip_suffix(leaf)?.strip_suffix('/')?;
    (!name.is_empty() && !name.contains('/')).then(|| name.to_string())
}

const MAGIC: &[u8] = mcap::MAGIC;
/// Opcode + u64 length.
const RECORD_PREFIX: usize = 9;
/// Largest chunk the reader will decompress (a corrupt size field must not exhaust memory).
const MAX_CHUNK_BYTES: u64 = 1 << 30;

/// A problem found at a byte offset of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset from the start of the file (of the record, or of the chunk holding it).
    pub offset: u64,
    /// What is wrong, in words.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte offset {}: {}", self.offset, self.what)
    }
}

/// Options of [`read_log`].
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Most bytes of decoded frames to hold (all cameras together).
    pub max_decoded_bytes: u64,
    /// Decode images into frame buffers (false: only check and count them).
    pub decode_images: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { max_decoded_bytes: 4 << 30, decode_images: true }
    }
}

/// Counters of one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Messages on the channel.
    pub messages: u64,
    /// Messages that could not be decoded.
    pub corrupt: u64,
    /// Messages whose log time is earlier than the one before on the same channel.
    pub out_of_order: u64,
    /// Sequence numbers missing between consecutive messages (writers that number messages).
    pub missing_sequences: u64,
    /// Times the gap between consecutive log times exceeded 1.5 nominal frame periods.
    pub timestamp_jumps: u64,
    /// Nominal frame period (median log-time step), nanoseconds; 0 with fewer than 2 messages.
    pub period_ns: u64,
    /// First and last log time, nanoseconds.
    pub first_ns: u64,
    /// Last log time, nanoseconds.
    pub last_ns: u64,
}

/// One camera of a log: its images decoded into frames, in log order.
#[derive(Debug, Default)]
pub struct CameraStream {
    /// Camera name (from the topic `/camera/<name>/image`, or the topic itself).
    pub name: String,
    /// Image topic.
    pub topic: String,
    /// Schema of the image channel.
    pub schema: String,
    /// Pixel layout (of the first decodable image).
    pub format: Option<FrameFormat>,
    /// The first calibration message of the camera, if the log has one.
    pub calibration: Option<CameraCalibration>,
    /// Decoded frames (packed RGB8, aligned), one per capture.
    pub frames: Vec<FrameBuf>,
    /// Captures in log order, pointing into `frames`.
    pub captures: Vec<ReplayCapture>,
    /// Counters.
    pub stats: StreamStats,
    last_sequence: Option<u32>,
}

/// Everything [`read_log`] learnt from a file.
#[derive(Debug, Default)]
pub struct LogContents {
    /// File size, bytes.
    pub size: u64,
    /// `library` field of the header.
    pub library: String,
    /// `profile` field of the header.
    pub profile: String,
    /// Cameras, ordered by image topic.
    pub cameras: Vec<CameraStream>,
    /// Other channels: topic -> (schema name, counters).
    pub channels: BTreeMap<String, (String, StreamStats)>,
    /// Metadata records by name.
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    /// Chunks read.
    pub chunks: u64,
    /// Every problem found, in file order. Empty for a sound file.
    pub problems: Vec<Problem>,
    /// True when the footer and end magic were reached.
    pub complete: bool,
    /// True when frames were left undecoded because of [`ReadOptions::max_decoded_bytes`].
    pub budget_exceeded: bool,
    /// Ground-truth messages (`/ground_truth`, `vigil.GroundTruth`) by capture time, for
    /// evaluation and calibration; empty for logs of real drives.
    pub truth: BTreeMap<u64, rig::synth::FrameTruth>,
}

impl LogContents {
    /// One [`ReplaySource`] per camera that has decoded frames, with its receiver.
    pub fn into_sources(self) -> Vec<(ReplaySource, crate::pool::FrameReceiver)> {
        self.cameras
            .into_iter()
            .filter_map(|c| c.format.map(|f| (c, f)))
            .enumerate()
            .map(|(index, (c, format))| {
                let info = CameraInfo { index, name: c.name, format };
                ReplaySource::new(info, FramePool::from_slots(format, c.frames), c.captures)
            })
            .collect()
    }
}

struct Channel {
    topic: String,
    schema: String,
    schema_encoding: String,
    message_encoding: String,
}

struct Reader<'a> {
    bytes: &'a [u8],
    opts: ReadOptions,
    schemas: BTreeMap<u16, (String, String)>,
    channels: BTreeMap<u16, Channel>,
    cameras: BTreeMap<String, CameraStream>,
    calibrations: BTreeMap<String, CameraCalibration>,
    out: LogContents,
    decoded_bytes: u64,
    other_last: BTreeMap<String, (Option<u32>, u64, Vec<u64>)>,
}

/// Reads a whole MCAP file held in memory. Never fails: everything wrong with the file is in
/// [`LogContents::problems`] (with byte offsets) and [`LogContents::complete`].
pub fn read_log(bytes: &[u8], opts: &ReadOptions) -> LogContents {
    let mut r = Reader {
        bytes,
        opts: opts.clone(),
        schemas: BTreeMap::new(),
        channels: BTreeMap::new(),
        cameras: BTreeMap::new(),
        calibrations: BTreeMap::new(),
        out: LogContents { size: bytes.len() as u64, ..LogContents::default() },
        decoded_bytes: 0,
        other_last: BTreeMap::new(),
    };
    r.walk();
    r.finish()
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn opcode_name(op: u8) -> &'static str {
    match op {
        0x01 => "header",
        0x02 => "footer",
        0x03 => "schema",
        0x04 => "channel",
        0x05 => "message",
        0x06 => "chunk",
        0x07 => "message index",
        0x08 => "chunk index",
        0x09 => "attachment",
        0x0A => "attachment index",
        0x0B => "statistics",
        0x0C => "metadata",
        0x0D => "metadata index",
        0x0E => "summary offset",
        0x0F => "data end",
        _ => "unknown",
    }
}

/// Where a record sits: top level, or inside the chunk at a file offset.
#[derive(Clone, Copy)]
enum At {
    File(u64),
    Chunk { chunk: u64, inner: u64 },
}

impl At {
    fn offset(self) -> u64 {
        match self {
            At::File(o) => o,
            At::Chunk { chunk, .. } => chunk,
        }
    }

    fn describe(self, what: impl std::fmt::Display) -> String {
        match self {
            At::File(_) => what.to_string(),
            At::Chunk { inner, .. } => format!("in the chunk starting here, record at +{inner} of its decompressed data: {what}"),
        }
    }
}

impl Reader<'_> {
    fn problem(&mut self, at: At, what: impl std::fmt::Display) {
        let what = at.describe(what);
        self.out.problems.push(Problem { offset: at.offset(), what });
    }

    fn walk(&mut self) {
        let b = self.bytes;
        if b.len() < MAGIC.len() || &b[..MAGIC.len()] != MAGIC {
            self.problem(At::File(0), "not an MCAP file (the magic bytes are missing)");
            return;
        }
        let mut pos = MAGIC.len();
        let mut in_summary = false;
        loop {
            if pos == b.len() {
                self.problem(At::File(pos as u64), "file ends here without a footer: truncated");
                return;
            }
            let remaining = b.len() - pos;
            if remaining < RECORD_PREFIX {
                self.problem(At::File(pos as u64), format!("record header needs 9 bytes, only {remaining} remain: truncated"));
                return;
            }
            let op = b[pos];
            let Some(len) = u64_at(b, pos + 1) else { return };
            let avail = (remaining - RECORD_PREFIX) as u64;
            if len > avail {
                self.problem(
                    At::File(pos as u64),
                    format!(
                        "{} record (opcode {op:#04x}) claims {len} bytes but only {avail} remain: file truncated or length corrupt",
                        opcode_name(op)
                    ),
                );
                return;
            }
            let body = &b[pos + RECORD_PREFIX..pos + RECORD_PREFIX + len as usize];
            let at = At::File(pos as u64);
            let record = match mcap::read::parse_record(op, body) {
                Ok(r) => r,
                Err(e) => {
                    self.problem(at, format!("bad {} record (opcode {op:#04x}): {e}", opcode_name(op)));
                    pos += RECORD_PREFIX + len as usize;
                    continue;
                }
            };
            match record {
                Record::Header(h) => {
                    self.out.library = h.library;
                    self.out.profile = h.profile;
                }
                Record::Footer(f) => {
                    self.check_footer(pos, &f);
                    let end = pos + RECORD_PREFIX + len as usize;
                    match b.get(end..) {
                        Some(tail) if tail == MAGIC => self.out.complete = true,
                        Some(tail) if tail.len() < MAGIC.len() && MAGIC.starts_with(tail) => {
                            self.problem(At::File(end as u64), "end magic cut short: truncated")
                        }
                        _ => self.problem(At::File(end as u64), "bytes after the footer are not the end magic"),
                    }
                    return;
                }
                Record::Chunk { header, data } if !in_summary => self.chunk(pos as u64, &header, &data),
                Record::DataEnd(d) => {
                    in_summary = true;
                    if d.data_section_crc != 0 {
                        let calc = crc32fast::hash(&b[..pos]);
                        if calc != d.data_section_crc {
                            self.problem(
                                at,
                                format!("data section CRC mismatch (stored {:08x}, computed {calc:08x}): data corrupt", d.data_section_crc),
                            );
                        }
                    }
                }
                Record::Metadata(m) => {
                    self.out.metadata.insert(m.name, m.metadata);
                }
                other if !in_summary => self.record(at, other),
                _ => {}
            }
            pos += RECORD_PREFIX + len as usize;
        }
    }

    fn check_footer(&mut self, pos: usize, f: &mcap::records::Footer) {
        if f.summary_crc == 0 || f.summary_start == 0 {
            return;
        }
        let start = f.summary_start as usize;
        let end = pos + RECORD_PREFIX + 16;
        if start > pos {
            self.problem(At::File(pos as u64), format!("footer points at a summary start {start} past the footer"));
            return;
        }
        let calc = crc32fast::hash(&self.bytes[start..end]);
        if calc != f.summary_crc {
            self.problem(
                At::File(start as u64),
                format!("summary section CRC mismatch (stored {:08x}, computed {calc:08x}): summary corrupt", f.summary_crc),
            );
        }
    }

    fn chunk(&mut self, offset: u64, header: &mcap::records::ChunkHeader, data: &[u8]) {
        self.out.chunks += 1;
        let at = At::File(offset);
        if header.uncompressed_size > MAX_CHUNK_BYTES {
            self.problem(at, format!("chunk claims {} bytes uncompressed, more than the 1 GiB limit: corrupt", header.uncompressed_size));
            return;
        }
        let size = header.uncompressed_size as usize;
        let decompressed: std::borrow::Cow<'_, [u8]> = match header.compression.as_str() {
            "" => data.into(),
            "zstd" => match zstd::bulk::decompress(data, size) {
                Ok(v) => v.into(),
                Err(e) => return self.problem(at, format!("zstd chunk does not decompress ({e}): corrupt")),
            },
            "lz4" => {
                let mut v = Vec::with_capacity(size);
                let res = lz4::Decoder::new(data).and_then(|d| d.take(size as u64 + 1).read_to_end(&mut v));
                match res {
                    Ok(_) => v.into(),
                    Err(e) => return self.problem(at, format!("lz4 chunk does not decompress ({e}): corrupt")),
                }
            }
            other => return self.problem(at, format!("chunk compression `{other}` is not supported (zstd, lz4 or none)")),
        };
        if decompressed.len() != size {
            return self.problem(at, format!("chunk decompresses to {} bytes, header says {size}: corrupt", decompressed.len()));
        }
        if header.uncompressed_crc != 0 {
            let calc = crc32fast::hash(&decompressed);
            if calc != header.uncompressed_crc {
                return self.problem(
                    at,
                    format!("chunk CRC mismatch (stored {:08x}, computed {calc:08x}): chunk corrupt", header.uncompressed_crc),
                );
            }
        }
        let d = &decompressed[..];
        let mut p = 0usize;
        while p < d.len() {
            let inner = At::Chunk { chunk: offset, inner: p as u64 };
            if d.len() - p < RECORD_PREFIX {
                return self.problem(inner, "record header cut short at the end of the chunk");
            }
            let op = d[p];
            let Some(len) = u64_at(d, p + 1) else { return };
            if len > (d.len() - p - RECORD_PREFIX) as u64 {
                return self.problem(inner, format!("{} record claims {len} bytes, past the end of the chunk", opcode_name(op)));
            }
            let body = &d[p + RECORD_PREFIX..p + RECORD_PREFIX + len as usize];
            match mcap::read::parse_record(op, body) {
                Ok(rec) => self.record(inner, rec),
                Err(e) => self.problem(inner, format!("bad {} record: {e}", opcode_name(op))),
            }
            p += RECORD_PREFIX + len as usize;
        }
    }

    fn record(&mut self, at: At, record: Record<'_>) {
        match record {
            Record::Schema { header, .. } => {
                if header.id == 0 {
                    return self.problem(at, "schema with id 0 (reserved)");
                }
                self.schemas.insert(header.id, (header.name, header.encoding));
            }
            Record::Channel(c) => {
                let (schema, schema_encoding) = match c.schema_id {
                    0 => (String::new(), String::new()),
                    id => match self.schemas.get(&id) {
                        Some(s) => s.clone(),
                        None => return self.problem(at, format!("channel `{}` names schema {id}, which was not defined before it", c.topic)),
                    },
                };
                self.channels.insert(
                    c.id,
                    Channel { topic: c.topic, schema, schema_encoding, message_encoding: c.message_encoding },
                );
            }
            Record::Message { header, data } => self.message(at, header, &data),
            _ => {}
        }
    }

    fn message(&mut self, at: At, h: MessageHeader, data: &[u8]) {
        let Some(ch) = self.channels.get(&h.channel_id) else {
            return self.problem(at, format!("message (sequence {}) on channel {} that was not defined before it", h.sequence, h.channel_id));
        };
        let protobuf = ch.schema_encoding == "protobuf" && ch.message_encoding == "protobuf";
        let topic = ch.topic.clone();
        match ch.schema.as_str() {
            "foxglove.RawImage" | "foxglove.CompressedImage" if protobuf => {
                let schema = ch.schema.clone();
                self.image(at, h, data, topic, schema);
            }
            "foxglove.CameraCalibration" if protobuf => {
                let stats = self.other(&topic, "foxglove.CameraCalibration", &h);
                match CameraCalibration::decode(data) {
                    Ok(c) => {
                        let name = camera_of(&topic, "calibration").unwrap_or_else(|| c.frame_id.clone());
                        self.calibrations.entry(name).or_insert(c);
                    }
                    Err(e) => {
                        stats.corrupt += 1;
                        self.problem(at, format!("{topic}: calibration message {} does not decode: {e}", h.sequence));
                    }
                }
            }
            GROUND_TRUTH_SCHEMA_NAME => {
                let stats = self.other(&topic, GROUND_TRUTH_SCHEMA_NAME, &h);
                match serde_json::from_slice::<rig::synth::FrameTruth>(data) {
                    Ok(t) => {
                        self.out.truth.insert(t.timestamp_ns, t);
                    }
                    Err(e) => {
                        stats.corrupt += 1;
                        self.problem(at, format!("{topic}: ground-truth message {} is not a vigil.GroundTruth: {e}", h.sequence));
                    }
                }
            }
            _ => {
                let schema = ch.schema.clone();
                self.other(&topic, &schema, &h);
            }
        }
    }

    /// Counts a message on a channel that is not a camera's images.
    fn other(&mut self, topic: &str, schema: &str, h: &MessageHeader) -> &mut StreamStats {
        let track = self.other_last.entry(topic.to_string()).or_default();
        let entry = self.out.channels.entry(topic.to_string()).or_insert_with(|| (schema.to_string(), StreamStats::default()));
        count_message(&mut entry.1, &mut track.0, &mut track.2, h);
        &mut entry.1
    }

    fn image(&mut self, at: At, h: MessageHeader, data: &[u8], topic: String, schema: String) {
        let name = camera_of(&topic, "image").unwrap_or_else(|| topic.trim_matches('/').replace('/', "_"));
        let cam = self.cameras.entry(topic.clone()).or_insert_with(|| CameraStream {
            name,
            topic: topic.clone(),
            schema: schema.clone(),
            ..CameraStream::default()
        });
        let mut times = Vec::new();
        count_message(&mut cam.stats, &mut cam.last_sequence, &mut times, &h);
        let decoded = match schema.as_str() {
            "foxglove.RawImage" => RawImage::decode(data).map_err(|e| e.to_string()).and_then(|m| raw_to_rgb8(&m)),
            _ => CompressedImage::decode(data).map_err(|e| e.to_string()).and_then(|m| compressed_to_rgb8(&m)),
        };
        let (format, pixels) = match decoded {
            Ok(d) => d,
            Err(e) => {
                cam.stats.corrupt += 1;
                return self.problem(at, format!("{topic}: image message {} does not decode: {e}", h.sequence));
            }
        };
        match cam.format {
            None => cam.format = Some(format),
            Some(f) if f != format => {
                cam.stats.corrupt += 1;
                let what = format!(
                    "{topic}: image message {} is {}x{}, earlier images are {}x{}",
                    h.sequence, format.width, format.height, f.width, f.height
                );
                return self.problem(at, what);
            }
            Some(_) => {}
        }
        if !self.opts.decode_images {
            cam.captures.push(ReplayCapture { slot: 0, sequence: u64::from(h.sequence), timestamp_ns: h.log_time });
            return;
        }
        if self.decoded_bytes + pixels.len() as u64 > self.opts.max_decoded_bytes {
            self.out.budget_exceeded = true;
            return;
        }
        self.decoded_bytes += pixels.len() as u64;
        let mut buf = FrameBuf::zeroed(pixels.len());
        buf.as_mut_bytes().copy_from_slice(&pixels);
        let slot = cam.frames.len() as u32;
        cam.frames.push(buf);
        cam.captures.push(ReplayCapture { slot, sequence: u64::from(h.sequence), timestamp_ns: h.log_time });
    }

    fn finish(mut self) -> LogContents {
        for (topic, (_, stats)) in self.out.channels.iter_mut() {
            if let Some((_, _, times)) = self.other_last.get(topic) {
                finish_timing(stats, times);
            }
        }
        for (_, mut cam) in std::mem::take(&mut self.cameras) {
            let times: Vec<u64> = cam.captures.iter().map(|c| c.timestamp_ns).collect();
            finish_timing(&mut cam.stats, &times);
            cam.calibration = self.calibrations.remove(&cam.name);
            self.out.cameras.push(cam);
        }
        self.out
    }
}

fn count_message(stats: &mut StreamStats, last_seq: &mut Option<u32>, times: &mut Vec<u64>, h: &MessageHeader) {
    if stats.messages == 0 {
        stats.first_ns = h.log_time;
    } else if h.log_time < stats.last_ns {
        stats.out_of_order += 1;
    }
    stats.messages += 1;
    stats.last_ns = stats.last_ns.max(h.log_time);
    // Writers that do not number messages leave every sequence at 0: no gap is ever seen.
    if let Some(prev) = *last_seq
        && h.sequence > prev.saturating_add(1)
    {
        stats.missing_sequences += u64::from(h.sequence - prev - 1);
    }
    *last_seq = Some(h.sequence);
    times.push(h.log_time);
}

/// Median step between consecutive (sorted) times, and steps over 1.5 of it.
fn finish_timing(stats: &mut StreamStats, times: &[u64]) {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut steps: Vec<u64> = sorted.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return;
    }
    let mut by_size = steps.clone();
    by_size.sort_unstable();
    let period = by_size[by_size.len() / 2];
    stats.period_ns = period;
    steps.retain(|&s| period > 0 && s * 2 > period * 3);
    stats.timestamp_jumps = steps.len() as u64;
}

fn raw_to_rgb8(m: &RawImage) -> Result<(FrameFormat, Vec<u8>), String> {
    let (w, h, step) = (m.width as usize, m.height as usize, m.step as usize);
    let bpp = match m.encoding.as_str() {
        "rgb8" | "bgr8" | "8UC3" => 3,
        "rgba8" | "bgra8" => 4,
        "mono8" | "8UC1" => 1,
        other => return Err(format!("raw image encoding `{other}` is not supported (rgb8, bgr8, rgba8, bgra8, mono8)")),
    };
    if w == 0 || h == 0 {
        return Err(format!("empty image {w}x{h}"));
    }
    if step < w * bpp {
        return Err(format!("step {step} is less than width {w} x {bpp} bytes"));
    }
    let need = step.checked_mul(h - 1).and_then(|v| v.checked_add(w * bpp)).ok_or("image size overflows")?;
    if m.data.len() < need {
        return Err(format!("{w}x{h} {} needs {need} bytes of data, message has {}", m.encoding, m.data.len()));
    }
    let mut out = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let line = &m.data[row * step..row * step + w * bpp];
        match m.encoding.as_str() {
            "rgb8" => out.extend_from_slice(line),
            "bgr8" | "8UC3" => line.chunks_exact(3).for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]])),
            "rgba8" => line.chunks_exact(4).for_each(|p| out.extend_from_slice(&p[..3])),
            "bgra8" => line.chunks_exact(4).for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]])),
            _ => line.iter().for_each(|&v| out.extend_from_slice(&[v, v, v])),
        }
    }
    Ok((FrameFormat { width: m.width, height: m.height }, out))
}

fn compressed_to_rgb8(m: &CompressedImage) -> Result<(FrameFormat, Vec<u8>), String> {
    let format = match m.format.as_str() {
        "png" => image::ImageFormat::Png,
        "jpeg" | "jpg" => image::ImageFormat::Jpeg,
        other => return Err(format!("compressed image format `{other}` is not supported (png, jpeg)")),
    };
    let img = image::load_from_memory_with_format(&m.data, format).map_err(|e| format!("{} data: {e}", m.format))?.to_rgb8();
    Ok((FrameFormat { width: img.width(), height: img.height() }, img.into_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_names_come_from_topics() {
        assert_eq!(camera_of("/camera/front_wide/image", "image").as_deref(), Some("front_wide"));
        assert_eq!(camera_of("/camera/front_wide/calibration", "calibration").as_deref(), Some("front_wide"));
        assert_eq!(camera_of("/camera//image", "image"), None);
        assert_eq!(camera_of("/cam/x/image", "image"), None);
        assert_eq!(camera_of("/camera/a/b/image", "image"), None);
    }

    #[test]
    fn not_mcap_and_empty_files_are_problems_not_panics() {
        for bytes in [&b""[..], b"hello world", &MAGIC[..4]] {
            let log = read_log(bytes, &ReadOptions::default());
            assert!(!log.complete);
            assert_eq!(log.problems.len(), 1);
            assert_eq!(log.problems[0].offset, 0);
        }
        let log = read_log(MAGIC, &ReadOptions::default());
        assert_eq!(log.problems[0].offset, 8);
        assert!(log.problems[0].what.contains("truncated"));
    }

    #[test]
    fn raw_images_convert_to_rgb8() {
        let m = RawImage {
            width: 2,
            height: 1,
            encoding: "bgra8".into(),
            step: 9,
            data: vec![1, 2, 3, 4, 5, 6, 7, 8, 0].into(),
            ..Default::default()
        };
        assert_eq!(raw_to_rgb8(&m).unwrap().1, [3, 2, 1, 7, 6, 5]);
        let short = RawImage { data: vec![0; 7].into(), ..m.clone() };
        assert!(raw_to_rgb8(&short).unwrap_err().contains("needs 8 bytes"));
        let bad = RawImage { encoding: "yuv9".into(), ..m };
        assert!(raw_to_rgb8(&bad).unwrap_err().contains("yuv9"));
    }

    #[test]
    fn timing_finds_jumps_and_the_nominal_period() {
        let mut s = StreamStats::default();
        finish_timing(&mut s, &[0, 10, 20, 30, 60, 70]);
        assert_eq!((s.period_ns, s.timestamp_jumps), (10, 1));
        let mut seq = None;
        let mut times = Vec::new();
        let mut st = StreamStats::default();
        for (sequence, log_time) in [(1u32, 0u64), (2, 10), (5, 40), (4, 30)] {
            count_message(&mut st, &mut seq, &mut times, &MessageHeader { channel_id: 1, sequence, log_time, publish_time: log_time });
        }
        assert_eq!((st.messages, st.missing_sequences, st.out_of_order), (4, 2, 1));
    }

    /// Checks `v` against the subset of JSON Schema the ground-truth schema uses.
    fn conforms(v: &serde_json::Value, schema: &serde_json::Value, path: &str) -> Result<(), String> {
        use serde_json::Value;
        let ty = schema["type"].as_str().unwrap_or("");
        let ok = match (ty, v) {
            ("object", Value::Object(_)) | ("array", Value::Array(_)) | ("string", Value::String(_)) => true,
            ("number", Value::Number(_)) => true,
            ("integer", Value::Number(n)) => n.is_u64() || n.is_i64(),
            _ => false,
        };
        if !ok {
            return Err(format!("{path}: {v} is not of type {ty}"));
        }
        if let Some(e) = schema["enum"].as_array()
            && !e.contains(v)
        {
            return Err(format!("{path}: {v} not in {e:?}"));
        }
        match v {
            Value::Object(map) => {
                let props = schema["properties"].as_object().ok_or(format!("{path}: schema has no properties"))?;
                for req in schema["required"].as_array().into_iter().flatten() {
                    let k = req.as_str().unwrap_or("");
                    if !map.contains_key(k) {
                        return Err(format!("{path}: required `{k}` missing"));
                    }
                }
                for (k, val) in map {
                    let sub = props.get(k).ok_or(format!("{path}: `{k}` is not in the schema"))?;
                    conforms(val, sub, &format!("{path}.{k}"))?;
                }
                // Every property of the schema is required: the serde form always writes all.
                if props.len() != schema["required"].as_array().map_or(0, Vec::len) {
                    return Err(format!("{path}: schema properties and required differ"));
                }
            }
            Value::Array(items) => {
                let n = items.len() as u64;
                if schema["minItems"].as_u64().is_some_and(|m| n < m) || schema["maxItems"].as_u64().is_some_and(|m| n > m) {
                    return Err(format!("{path}: {n} items out of the schema's bounds"));
                }
                for (i, it) in items.iter().enumerate() {
                    conforms(it, &schema["items"], &format!("{path}[{i}]"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    #[test]
    fn ground_truth_schema_matches_the_rust_type() {
        use rig::synth::{FrameTruth, GtBox, GtObject, ObjectClass};
        let schema: serde_json::Value = serde_json::from_str(GROUND_TRUTH_SCHEMA).expect("schema is JSON");
        assert_eq!(schema["title"], GROUND_TRUTH_SCHEMA_NAME);
        let objects = ObjectClass::ALL
            .iter()
            .enumerate()
            .map(|(i, &class)| GtObject {
                id: i as u32,
                class,
                position: [10.0, -2.0, 0.8],
                size: [4.5, 1.8, 1.5],
                yaw: 0.1,
                velocity: [3.0, 0.0, 0.0],
                distance: 10.2,
                boxes: vec![GtBox {
                    camera: 2,
                    bbox: [1.0, 2.0, 30.0, 40.0],
                    visible_fraction: 0.5,
                    depth: 9.9,
                    visible_bbox: [1.0, 2.0, 20.0, 40.0],
                    visible_pixels: 420,
                    occluded_fraction: 0.4,
                    truncated_fraction: 0.1,
                }],
                relative_velocity: [-9.0, 0.0, 0.0],
                variant: "sedan".into(),
            })
            .collect();
        let truth = FrameTruth {
            frame: 3,
            timestamp_ns: 83_333_333,
            ego_pose: [1.0, 2.0, 0.3],
            ego_speed: 12.0,
            objects,
            exposure_gain: 0.8,
            sun_elevation_deg: 35.0,
        };
        let v = serde_json::to_value(&truth).unwrap();
        conforms(&v, &schema, "$").unwrap();
        // The checker itself rejects what it should.
        let mut bad = v.clone();
        bad["objects"][0]["class"] = "tram".into();
        assert!(conforms(&bad, &schema, "$").is_err());
        let mut bad = v.clone();
        bad["objects"][0]["boxes"][0]["bbox"] = serde_json::json!([1, 2, 3]);
        assert!(conforms(&bad, &schema, "$").is_err());
        let mut bad = v;
        bad["extra"] = 1.into();
        assert!(conforms(&bad, &schema, "$").is_err());
    }
}

/// One camera image of a log with its ground truth, for calibration and evaluation.
#[derive(Clone, Debug)]
pub struct LabelledFrame {
    /// Index of the camera in the rig.
    pub camera: usize,
    /// Capture time, ns.
    pub timestamp_ns: u64,
    /// Image size `(w, h)`.
    pub size: (u32, u32),
    /// Packed RGB8.
    pub rgb: Vec<u8>,
    /// The ground truth of the capture (all objects; each carries per-camera boxes), when the
    /// log has a `/ground_truth` message at this capture time.
    pub truth: Option<rig::synth::FrameTruth>,
}

/// Every decoded camera image of `bytes`, interleaved across cameras in capture order (so a
/// prefix covers every camera), each matched to its camera in `rig` by name and to the
/// ground truth at its capture time. A log with problems, a camera the rig does not know or a
/// log without camera images is an error naming `path` (and the byte offset of a problem).
pub fn labelled_frames(rig: &rig::Rig, path: &std::path::Path, bytes: &[u8], max_decoded_bytes: u64) -> Result<Vec<LabelledFrame>, String> {
    let contents = read_log(bytes, &ReadOptions { max_decoded_bytes, ..ReadOptions::default() });
    if let Some(p) = contents.problems.first() {
        return Err(format!("{}: {p}", path.display()));
    }
    if contents.cameras.iter().all(|c| c.captures.is_empty()) {
        return Err(format!("{}: the log holds no camera images (topics /camera/<name>/image)", path.display()));
    }
    let mut per_camera = Vec::new();
    for cam in &contents.cameras {
        let index = rig
            .cameras()
            .iter()
            .position(|c| c.name == cam.name)
            .ok_or_else(|| format!("{}: camera {:?} ({}) is not a camera of the rig", path.display(), cam.name, cam.topic))?;
        per_camera.push((index, cam));
    }
    let longest = per_camera.iter().map(|(_, c)| c.captures.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for k in 0..longest {
        for (index, cam) in &per_camera {
            let Some(cap) = cam.captures.get(k) else { continue };
            let (Some(format), Some(frame)) = (cam.format, cam.frames.get(cap.slot as usize)) else { continue };
            out.push(LabelledFrame {
                camera: *index,
                timestamp_ns: cap.timestamp_ns,
                size: (format.width, format.height),
                rgb: frame.as_bytes()[..format.rgb8_len()].to_vec(),
                truth: contents.truth.get(&cap.timestamp_ns).cloned(),
            });
        }
    }
    Ok(out)
}
