//! Fixed-size metric events: what the hot path hands to the tap.
//!
//! An [`Event`] is `Copy`, 24 bytes, and carries its own timestamp (taken from the
//! pipeline's injected clock by the caller), so recording one reads no clock.

/// What an [`Event`] measures. The meaning of `value` and `aux` depends on the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// One camera frame finished: `value` = end-to-end latency in microseconds.
    FrameLatency = 0,
    /// A frame missed its deadline: `value` = overrun in microseconds.
    DeadlineMiss = 1,
    /// The executor skipped a frame (admission control or degradation).
    FrameSkip = 2,
    /// The degradation ladder switched variant: `variant` = new, `aux` = previous.
    VariantSwitch = 3,
    /// A backend fault failed over: `aux` = from-backend id, `variant` = to-backend id.
    Failover = 4,
    /// The power/thermal governor throttled: `value` = throttle level.
    Throttle = 5,
    /// One detection of the champion model: `value` = confidence in 1/10000, `aux` = class.
    Detection = 6,
    /// Input statistic of a frame: `value` = mean luma (0..=255).
    InputStat = 7,
    /// A shadow (champion vs challenger) comparison of one frame:
    /// `value` = disagreeing detections, `aux` = detections compared.
    ShadowFrame = 8,
    /// Mean confidence shift challenger minus champion on matched detections of one frame,
    /// in 1/10000 (signed).
    ShadowConfidenceShift = 9,
}

impl EventKind {
    /// Number of kinds.
    pub const COUNT: usize = 10;
}

/// One metric event. `Copy`, no heap data, at most 32 bytes (checked by a test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Timestamp in nanoseconds on the pipeline's clock (the caller already has it).
    pub timestamp_ns: u64,
    /// Main value; meaning per [`EventKind`].
    pub value: i64,
    /// Secondary value; meaning per [`EventKind`].
    pub aux: u32,
    /// What is measured.
    pub kind: EventKind,
    /// Camera index (0..8 on the standard rig); 255 when not camera-specific.
    pub camera: u8,
    /// Model variant index on the degradation ladder.
    pub variant: u8,
}

/// Camera index used by events that are not tied to one camera.
pub const NO_CAMERA: u8 = u8::MAX;

impl Event {
    /// A finished frame and its end-to-end latency.
    #[inline]
    pub const fn frame_latency(timestamp_ns: u64, camera: u8, variant: u8, latency_us: u32) -> Self {
        Self { timestamp_ns, value: latency_us as i64, aux: 0, kind: EventKind::FrameLatency, camera, variant }
    }

    /// A frame that missed its deadline by `overrun_us`.
    #[inline]
    pub const fn deadline_miss(timestamp_ns: u64, camera: u8, variant: u8, overrun_us: u32) -> Self {
        Self { timestamp_ns, value: overrun_us as i64, aux: 0, kind: EventKind::DeadlineMiss, camera, variant }
    }

    /// A skipped frame.
    #[inline]
    pub const fn frame_skip(timestamp_ns: u64, camera: u8) -> Self {
        Self { timestamp_ns, value: 0, aux: 0, kind: EventKind::FrameSkip, camera, variant: 0 }
    }

    /// A variant switch on `camera` from `from` to `to`.
    #[inline]
    pub const fn variant_switch(timestamp_ns: u64, camera: u8, from: u8, to: u8) -> Self {
        Self { timestamp_ns, value: 0, aux: from as u32, kind: EventKind::VariantSwitch, camera, variant: to }
    }

    /// A backend failover from backend id `from` to `to`.
    #[inline]
    pub const fn failover(timestamp_ns: u64, from: u8, to: u8) -> Self {
        Self { timestamp_ns, value: 0, aux: from as u32, kind: EventKind::Failover, camera: NO_CAMERA, variant: to }
    }

    /// A throttle decision at `level`.
    #[inline]
    pub const fn throttle(timestamp_ns: u64, level: u8) -> Self {
        Self { timestamp_ns, value: level as i64, aux: 0, kind: EventKind::Throttle, camera: NO_CAMERA, variant: 0 }
    }

    /// One champion detection of `class` with `confidence` in `[0, 1]` (clamped; NaN counts as 0).
    #[inline]
    pub fn detection(timestamp_ns: u64, camera: u8, variant: u8, class: u16, confidence: f32) -> Self {
        Self {
            timestamp_ns,
            value: confidence_e4(confidence) as i64,
            aux: class as u32,
            kind: EventKind::Detection,
            camera,
            variant,
        }
    }

    /// Mean luma (0..=255) of one input frame.
    #[inline]
    pub const fn input_stat(timestamp_ns: u64, camera: u8, mean_luma: u8) -> Self {
        Self { timestamp_ns, value: mean_luma as i64, aux: 0, kind: EventKind::InputStat, camera, variant: 0 }
    }
}

/// Confidence in `[0, 1]` as an integer in 1/10000 (clamped; NaN maps to 0).
#[inline]
pub fn confidence_e4(confidence: f32) -> u16 {
    if confidence.is_nan() {
        return 0;
    }
    (confidence.clamp(0.0, 1.0) * 10_000.0).round() as u16
}
