//! Per-window metrics folded from events by the aggregator thread, and the fixed
//! measurement layout a window is released as.
//!
//! Locally a window keeps a DDSketch of frame latency (relative-error quantiles,
//! mergeable across windows and vehicles) for `vigil analytics status`. What leaves the
//! vehicle is the [`Layout`] vector: counters and fixed-bucket histograms, all sums, so
//! the fleet's aggregate is just the element-wise sum of every vehicle's vector.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use crate::event::{Event, EventKind};

/// Counters at the head of the measurement vector, in order.
pub const COUNTERS: [&str; 9] = [
    "frames",
    "deadline_misses",
    "frame_skips",
    "variant_switches",
    "failovers",
    "throttle_events",
    "tap_drops",
    "shadow_frames",
    "shadow_disagreements",
];

/// Upper edges (exclusive, microseconds) of the latency histogram buckets; the last bucket
/// takes everything above the last edge.
pub const LATENCY_EDGES_US: [u32; 11] = [2_000, 4_000, 8_000, 12_000, 16_000, 20_000, 25_000, 33_000, 50_000, 100_000, 250_000];
/// Latency histogram buckets.
pub const LATENCY_BUCKETS: usize = LATENCY_EDGES_US.len() + 1;
/// Confidence histogram buckets (deciles of `[0, 1]`).
pub const CONFIDENCE_BUCKETS: usize = 10;
/// Input mean-luma histogram buckets (16 levels of 16).
pub const LUMA_BUCKETS: usize = 16;
/// Shadow confidence-shift histogram buckets over `[-0.4, 0.4]` in steps of 0.1, clamped.
pub const SHIFT_BUCKETS: usize = 8;

/// The measurement vector's layout: names and offsets of each block.
pub struct Layout;

impl Layout {
    /// Offset of the latency histogram.
    pub const LATENCY: usize = COUNTERS.len();
    /// Offset of the confidence histogram.
    pub const CONFIDENCE: usize = Self::LATENCY + LATENCY_BUCKETS;
    /// Offset of the input-luma histogram.
    pub const LUMA: usize = Self::CONFIDENCE + CONFIDENCE_BUCKETS;
    /// Offset of the shadow confidence-shift histogram.
    pub const SHIFT: usize = Self::LUMA + LUMA_BUCKETS;
    /// Length of the measurement vector.
    pub const LEN: usize = Self::SHIFT + SHIFT_BUCKETS;

    /// Name of coordinate `i` (for reports and the fleet-side decoder).
    pub fn name(i: usize) -> String {
        if i < Self::LATENCY {
            COUNTERS[i].to_string()
        } else if i < Self::CONFIDENCE {
            let b = i - Self::LATENCY;
            match LATENCY_EDGES_US.get(b) {
                Some(edge) => format!("latency_lt_{}us", edge),
                None => format!("latency_ge_{}us", LATENCY_EDGES_US[LATENCY_EDGES_US.len() - 1]),
            }
        } else if i < Self::LUMA {
            let b = i - Self::CONFIDENCE;
            format!("confidence_{:.1}_{:.1}", b as f32 / 10.0, (b + 1) as f32 / 10.0)
        } else if i < Self::SHIFT {
            let b = i - Self::LUMA;
            format!("luma_{}_{}", b * 16, b * 16 + 15)
        } else if i < Self::LEN {
            format!("shadow_shift_bucket_{}", i - Self::SHIFT)
        } else {
            format!("out_of_layout_{i}")
        }
    }

    /// Index of the counter named `name`.
    pub fn counter(name: &str) -> Option<usize> {
        COUNTERS.iter().position(|c| *c == name)
    }
}

/// Latency histogram bucket of `latency_us`.
pub fn latency_bucket(latency_us: i64) -> usize {
    LATENCY_EDGES_US.iter().position(|&e| latency_us < e as i64).unwrap_or(LATENCY_BUCKETS - 1)
}

/// Confidence histogram bucket of a confidence in 1/10000.
pub fn confidence_bucket(conf_e4: i64) -> usize {
    ((conf_e4.clamp(0, 10_000) / 1_000) as usize).min(CONFIDENCE_BUCKETS - 1)
}

/// Luma histogram bucket.
pub fn luma_bucket(luma: i64) -> usize {
    ((luma.clamp(0, 255) / 16) as usize).min(LUMA_BUCKETS - 1)
}

/// Shift histogram bucket of a confidence shift in 1/10000: `[-inf,-0.3)`, `[-0.3,-0.2)`, …,
/// `[0.3, inf)`.
pub fn shift_bucket(shift_e4: i64) -> usize {
    let b = shift_e4.div_euclid(1_000) + 4;
    b.clamp(0, SHIFT_BUCKETS as i64 - 1) as usize
}

/// Metrics of one window, folded from events.
#[derive(Clone)]
pub struct WindowAccumulator {
    /// Window index (event time / window length).
    pub index: u64,
    /// The measurement vector being built (layout [`Layout`]).
    pub values: Vec<u64>,
    /// Latency sketch (microseconds) for local percentiles.
    pub latency: DDSketch,
    /// Events folded.
    pub events: u64,
}

/// Relative accuracy of the latency sketch.
pub const SKETCH_ALPHA: f64 = 0.01;

impl WindowAccumulator {
    /// An empty window.
    pub fn new(index: u64) -> Self {
        let cfg = SketchConfig::new(SKETCH_ALPHA, 2048, 1.0e-3);
        Self { index, values: vec![0; Layout::LEN], latency: DDSketch::new(cfg), events: 0 }
    }

    /// Folds one event into the window.
    pub fn fold(&mut self, e: &Event) {
        self.events += 1;
        let v = &mut self.values;
        match e.kind {
            EventKind::FrameLatency => {
                v[0] += 1;
                v[Layout::LATENCY + latency_bucket(e.value)] += 1;
                self.latency.add(e.value.max(0) as f64);
            }
            EventKind::DeadlineMiss => v[1] += 1,
            EventKind::FrameSkip => v[2] += 1,
            EventKind::VariantSwitch => v[3] += 1,
            EventKind::Failover => v[4] += 1,
            EventKind::Throttle => v[5] += 1,
            EventKind::Detection => v[Layout::CONFIDENCE + confidence_bucket(e.value)] += 1,
            EventKind::InputStat => v[Layout::LUMA + luma_bucket(e.value)] += 1,
            EventKind::ShadowFrame => {
                v[7] += 1;
                v[8] += e.value.max(0) as u64;
            }
            EventKind::ShadowConfidenceShift => v[Layout::SHIFT + shift_bucket(e.value)] += 1,
        }
    }

    /// Adds `n` dropped tap events to the window's counter.
    pub fn add_tap_drops(&mut self, n: u64) {
        self.values[6] += n;
    }

    /// Local summary (quantiles from the sketch).
    pub fn summary(&self) -> WindowSummary {
        let q = |p: f64| self.latency.quantile(p).ok().flatten().map(|x| x.round() as u64);
        WindowSummary {
            index: self.index,
            frames: self.values[0],
            deadline_misses: self.values[1],
            latency_p50_us: q(0.5),
            latency_p90_us: q(0.9),
            latency_p99_us: q(0.99),
            events: self.events,
        }
    }
}

/// What `vigil analytics status` shows about a window (stays on the vehicle).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowSummary {
    /// Window index.
    pub index: u64,
    /// Frames finished.
    pub frames: u64,
    /// Deadline misses.
    pub deadline_misses: u64,
    /// Median latency (µs), from the sketch.
    pub latency_p50_us: Option<u64>,
    /// 90th percentile latency (µs).
    pub latency_p90_us: Option<u64>,
    /// 99th percentile latency (µs).
    pub latency_p99_us: Option<u64>,
    /// Events folded.
    pub events: u64,
}
