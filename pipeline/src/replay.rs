//! The replay harness: a log in, camera sources driven from it, a report out.
//!
//! [`replay`] reads and checks a whole MCAP log ([`crate::mcap_io::read_log`]), decodes
//! every camera's images into preallocated frame pools, drives one
//! [`crate::source::ReplaySource`] per camera through [`crate::passthrough::drive`] (at the
//! recorded rate or as fast as possible), and reports per camera: frames, decoded,
//! staged, gaps (missing sequence numbers, timestamp jumps), out-of-order and corrupt
//! messages, plus every problem found with its byte offset.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use serde::Serialize;

use crate::mcap_io::{read_log, Problem, ReadOptions, RECORDING_METADATA};
use crate::passthrough::{drive, Pace};

/// Options of [`replay`].
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Clock to drive the sources on.
    pub pace: Pace,
    /// Most bytes of decoded frames to hold at once.
    pub max_decoded_bytes: u64,
}

/// One camera in a [`ReplayReport`].
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CameraReport {
    /// Camera name.
    pub name: String,
    /// Image topic.
    pub topic: String,
    /// Image schema.
    pub schema: String,
    /// Image width, pixels (0 when no image decoded).
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Whether the log carries a calibration for the camera.
    pub calibration: bool,
    /// Frames the recording metadata says were recorded (vigil recordings only).
    pub expected: Option<u64>,
    /// Image messages in the log.
    pub messages: u64,
    /// Images decoded into the frame pool.
    pub decoded: u64,
    /// Frames the source delivered into its ring.
    pub delivered: u64,
    /// Frames the stage received.
    pub staged: u64,
    /// Frames superseded in the ring before the stage looked (recorded rate only).
    pub superseded: u64,
    /// Captures dropped by the source (ring full or buffer still held).
    pub dropped: u64,
    /// Missing sequence numbers.
    pub missing_sequences: u64,
    /// Log-time steps over 1.5 nominal periods.
    pub timestamp_jumps: u64,
    /// Messages earlier than their predecessor.
    pub out_of_order: u64,
    /// Messages that did not decode.
    pub corrupt: u64,
    /// Nominal frame period, nanoseconds.
    pub period_ns: u64,
}

/// Another channel in a [`ReplayReport`].
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ChannelReport {
    /// Topic.
    pub topic: String,
    /// Schema name.
    pub schema: String,
    /// Messages.
    pub messages: u64,
    /// Messages earlier than their predecessor.
    pub out_of_order: u64,
    /// Messages that did not decode.
    pub corrupt: u64,
}

/// A frame as the pass-through stage saw it (what `--out` writes).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct StagedFrame {
    /// Camera index (report order).
    pub camera: u32,
    /// Sequence number from the log.
    pub sequence: u64,
    /// Capture (log) time, nanoseconds.
    pub capture_ns: u64,
    /// Sum of the frame's bytes modulo 2^32 (proves the stage read the right pixels).
    pub checksum: u32,
}

/// Everything a replay found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplayReport {
    /// File size, bytes.
    pub size: u64,
    /// Header library string.
    pub library: String,
    /// Footer and end magic reached.
    pub complete: bool,
    /// Chunks read.
    pub chunks: u64,
    /// Cameras, by image topic.
    pub cameras: Vec<CameraReport>,
    /// Other channels.
    pub channels: Vec<ChannelReport>,
    /// Problems (corruption, truncation) with byte offsets; empty for a sound file.
    pub problems: Vec<String>,
    /// Offset of the first problem.
    pub first_problem_offset: Option<u64>,
    /// Frames left undecoded because of the memory budget.
    pub budget_exceeded: bool,
    /// `recorded` or `max`.
    pub pace: String,
    /// Wall-clock seconds the drive took.
    pub wall_s: f64,
    /// Log seconds driven.
    pub span_s: f64,
    /// Every frame the stage saw, in stage order.
    #[serde(skip)]
    pub staged: Vec<StagedFrame>,
}

/// Replays a log held in memory. Never panics on bad input: problems are in the report.
pub fn replay(bytes: &[u8], opts: &ReplayOptions) -> ReplayReport {
    let log = read_log(bytes, &ReadOptions { max_decoded_bytes: opts.max_decoded_bytes, decode_images: true });
    let expected: Option<u64> = log.metadata.get(RECORDING_METADATA).and_then(|m| m.get("frames")).and_then(|f| f.parse().ok());
    let recorded: Option<Vec<String>> = log
        .metadata
        .get(RECORDING_METADATA)
        .and_then(|m| m.get("recorded_cameras"))
        .map(|s| s.split(',').map(str::to_string).collect());
    let mut report = ReplayReport {
        size: log.size,
        library: log.library.clone(),
        complete: log.complete,
        chunks: log.chunks,
        first_problem_offset: log.problems.first().map(|p| p.offset),
        problems: log.problems.iter().map(Problem::to_string).collect(),
        budget_exceeded: log.budget_exceeded,
        pace: match opts.pace {
            Pace::Recorded => "recorded".into(),
            Pace::Max => "max".into(),
        },
        ..ReplayReport::default()
    };
    report.channels = log
        .channels
        .iter()
        .map(|(topic, (schema, s))| ChannelReport {
            topic: topic.clone(),
            schema: schema.clone(),
            messages: s.messages,
            out_of_order: s.out_of_order,
            corrupt: s.corrupt,
        })
        .collect();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for c in &log.cameras {
        by_name.insert(c.name.clone(), report.cameras.len());
        report.cameras.push(CameraReport {
            name: c.name.clone(),
            topic: c.topic.clone(),
            schema: c.schema.clone(),
            width: c.format.map_or(0, |f| f.width),
            height: c.format.map_or(0, |f| f.height),
            calibration: c.calibration.is_some(),
            expected: expected.filter(|_| recorded.as_ref().is_none_or(|r| r.contains(&c.name))),
            messages: c.stats.messages,
            decoded: c.frames.len() as u64,
            missing_sequences: c.stats.missing_sequences,
            timestamp_jumps: c.stats.timestamp_jumps,
            out_of_order: c.stats.out_of_order,
            corrupt: c.stats.corrupt,
            period_ns: c.stats.period_ns,
            ..CameraReport::default()
        });
    }
    let (mut sources, mut receivers): (Vec<_>, Vec<_>) = log.into_sources().into_iter().unzip();
    let total: usize = sources.iter().map(|s| s.len()).sum();
    // Preallocated: the stage below must not allocate.
    let mut staged = Vec::with_capacity(total);
    let index_of: Vec<u32> = sources.iter().map(|s| crate::source::CameraSource::info(s).index as u32).collect();
    let drive_report = drive(&mut sources, &mut receivers, opts.pace, |cam, frame| {
        if staged.len() < staged.capacity() {
            let checksum = frame.pixels.iter().fold(0u32, |a, &b| a.wrapping_add(u32::from(b)));
            staged.push(StagedFrame {
                camera: index_of.get(cam.index).copied().unwrap_or(u32::MAX),
                sequence: frame.handle.sequence,
                capture_ns: frame.handle.timestamp_ns,
                checksum,
            });
        }
    });
    for run in &drive_report.cameras {
        if let Some(&i) = by_name.get(&run.name) {
            let c = &mut report.cameras[i];
            c.delivered = run.delivered;
            c.staged = run.staged;
            c.superseded = run.superseded;
            c.dropped = run.dropped_ring_full + run.dropped_slot_busy;
        }
    }
    report.wall_s = drive_report.wall.as_secs_f64();
    report.span_s = drive_report.span_ns as f64 / 1e9;
    report.staged = staged;
    report
}

impl ReplayReport {
    /// The summary table printed by `vigil replay`.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<16} {:>9} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>7} {:>7} {:>6}",
            "camera", "size", "expect", "msgs", "decod", "staged", "supers", "dropped", "gaps", "jumps", "out-ord", "corrupt", "fps"
        );
        for c in &self.cameras {
            let fps = if c.period_ns > 0 { format!("{:.1}", 1e9 / c.period_ns as f64) } else { "-".into() };
            let _ = writeln!(
                s,
                "{:<16} {:>9} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>7} {:>7} {:>6}",
                c.name,
                format!("{}x{}", c.width, c.height),
                c.expected.map_or("-".to_string(), |e| e.to_string()),
                c.messages,
                c.decoded,
                c.staged,
                c.superseded,
                c.dropped,
                c.missing_sequences,
                c.timestamp_jumps,
                c.out_of_order,
                c.corrupt,
                fps
            );
        }
        let _ = writeln!(s, "\n{:<28} {:<28} {:>6} {:>7} {:>7}", "channel", "schema", "msgs", "out-ord", "corrupt");
        for c in &self.channels {
            let _ = writeln!(s, "{:<28} {:<28} {:>6} {:>7} {:>7}", c.topic, c.schema, c.messages, c.out_of_order, c.corrupt);
        }
        let _ = writeln!(
            s,
            "\n{} cameras, {} chunks, {:.1} MiB, {:.2} s of log replayed in {:.2} s ({} pace){}",
            self.cameras.len(),
            self.chunks,
            self.size as f64 / (1 << 20) as f64,
            self.span_s,
            self.wall_s,
            self.pace,
            if self.complete { "" } else { ", INCOMPLETE FILE" }
        );
        for p in &self.problems {
            let _ = writeln!(s, "problem: {p}");
        }
        s
    }

    /// True when the log is complete and nothing in it was corrupt.
    pub fn is_sound(&self) -> bool {
        self.complete && self.problems.is_empty() && !self.budget_exceeded
    }

    /// Writes what the stage saw as an MCAP file: channel `/replay/frames` (`vigil.ReplayFrame`,
    /// JSON) and a `vigil.replay` metadata record with the per-camera counts.
    pub fn write_mcap(&self, path: &Path) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let partial = crate::record::partial_path(path);
        let file = std::fs::File::create(&partial).map_err(|e| err(&e))?;
        let mut w = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .compression_threads(0)
            .chunk_size(Some(crate::record::CHUNK_SIZE))
            .library(crate::record::LIBRARY)
            .create(BufWriter::new(file))
            .map_err(|e| err(&e))?;
        let schema = w.add_schema("vigil.ReplayFrame", "jsonschema", REPLAY_FRAME_SCHEMA.as_bytes()).map_err(|e| err(&e))?;
        let ch = w.add_channel(schema, "/replay/frames", "json", &BTreeMap::new()).map_err(|e| err(&e))?;
        let mut seq = 0u32;
        for f in &self.staged {
            let data = serde_json::to_vec(f).map_err(|e| err(&e))?;
            let h = mcap::records::MessageHeader { channel_id: ch, sequence: seq, log_time: f.capture_ns, publish_time: f.capture_ns };
            w.write_to_known_channel(&h, &data).map_err(|e| err(&e))?;
            seq = seq.wrapping_add(1);
        }
        let mut meta = BTreeMap::new();
        meta.insert("pace".to_string(), self.pace.clone());
        for (i, c) in self.cameras.iter().enumerate() {
            meta.insert(format!("camera.{i}"), format!("{} messages={} staged={}", c.name, c.messages, c.staged));
        }
        w.write_metadata(&mcap::records::Metadata { name: "vigil.replay".into(), metadata: meta }).map_err(|e| err(&e))?;
        w.finish().map_err(|e| err(&e))?;
        let mut inner = w.into_inner();
        inner.flush().map_err(|e| err(&e))?;
        drop(inner);
        std::fs::rename(&partial, path).map_err(|e| err(&e))
    }
}

/// JSON Schema of the `vigil.ReplayFrame` messages written by [`ReplayReport::write_mcap`].
pub const REPLAY_FRAME_SCHEMA: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"vigil.ReplayFrame","type":"object","additionalProperties":false,"required":["camera","sequence","capture_ns","checksum"],"properties":{"camera":{"type":"integer","description":"camera index in the replay report"},"sequence":{"type":"integer","description":"sequence number of the image message in the replayed log"},"capture_ns":{"type":"integer","description":"log time of the image, ns"},"checksum":{"type":"integer","description":"sum of the RGB8 bytes modulo 2^32"}}}"#;
