//! The hot loop: camera frames -> EDF executor -> detector -> lift -> fusion -> tracking
//! -> control boundary, under the degradation ladder and the power governor.
//!
//! One thread runs [`Runtime::step`] in a loop. Everything it touches is allocated in
//! [`Runtime::new`]; a step performs no allocation, takes no lock and does no I/O (the
//! `no_alloc` test binary proves the allocation part with a counting allocator). Status
//! for humans leaves through [`RuntimeStats`] (atomics read by another thread) and
//! ladder transitions through a bounded event ring.
//!
//! Time comes from the injected [`Clock`]: with [`scheduler::MonotonicClock`] the loop
//! runs live; with a [`scheduler::VirtualClock`] (see [`Pace`]) the loop advances
//! time itself (to the next frame when idle, by the modelled cost after each job), so a
//! replay is bit-for-bit reproducible on any machine and any backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use analytics::{Event, MetricsTap, ShadowCompare, ShadowDetection};

use control::{CameraStatus, FLAG_DEGRADED, FLAG_STALE, Object, Snapshot};
use rig::{CAMERA_COUNT, Rig};
use scheduler::clock::{Duration, Instant};
use scheduler::executor::{Completion, ExecutorConfig, FrameJob, JobStatus, Next, Submitted};
use scheduler::governor::{Governor, GovernorConfig, GovernorState};
use scheduler::ladder::{Ladder, LadderConfig, LadderEvent, Reason};
use scheduler::{Clock, ExecTimeModel, Executor, VariantId};


use crate::detector::Detector;
use crate::perception::{Detection, Fusion, MAX_OBJECTS, Object3D, Tracker, lift};

/// A frame handed over by a camera source: an index into the source's pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    /// Camera index.
    pub camera: u8,
    /// Slot in the camera's frame pool.
    pub slot: u32,
    /// Capture time on the runtime's clock, nanoseconds.
    pub capture_ns: u64,
}

/// Where frames come from (camera sources through their rings). Non-blocking throughout.
pub trait FrameInput {
    /// The next frame of `camera` that has arrived by `now_ns`, if any (oldest first; the
    /// executor keeps only the newest per camera and hands older ones back).
    fn poll(&mut self, camera: u8, now_ns: u64) -> Option<FrameRef>;
    /// Pixels of a frame (RGB8, the camera's width x height).
    fn pixels(&self, frame: &FrameRef) -> &[u8];
    /// Returns a frame to its pool.
    fn release(&mut self, frame: FrameRef);
    /// Capture time of the earliest frame not yet polled (virtual pacing jumps to it);
    /// `None` when the input is exhausted (end of a log).
    fn next_capture_ns(&self) -> Option<u64>;
}

/// A clock the loop can pace itself with.
///
/// A live clock ([`scheduler::MonotonicClock`]) moves by itself: the loop never moves it.
/// A virtual clock ([`scheduler::VirtualClock`]) is moved by the loop: to the next frame's
/// capture time when idle, and by the modelled cost of each job after running it.
pub trait Pace: Clock + Clone {
    /// True when the loop advances this clock itself.
    const VIRTUAL: bool;
    /// Moves the clock to `t` (virtual clocks only; never backwards).
    fn jump_to(&self, t: Instant);
}

impl Pace for scheduler::MonotonicClock {
    const VIRTUAL: bool = false;
    fn jump_to(&self, _t: Instant) {}
}

impl Pace for scheduler::VirtualClock {
    const VIRTUAL: bool = true;
    fn jump_to(&self, t: Instant) {
        self.set(t);
    }
}

/// Static configuration of the runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Per-frame budget from capture to result, per camera.
    pub budget: [Duration; CAMERA_COUNT],
    /// Nominal camera rate, frames per second.
    pub fps: f32,
    /// Power cap, watts.
    pub power_cap_w: f32,
    /// Window the cap is enforced over.
    pub power_window: Duration,
    /// How often the ladder and the governor are evaluated.
    pub control_period: Duration,
    /// Watchdog grace after a deadline.
    pub watchdog_grace: Duration,
    /// Safety margin added to every execution-time prediction.
    pub margin: Duration,
    /// Published snapshots older than this are flagged stale by readers' convention.
    pub stale_after: Duration,
    /// Thermal model of the chip, where one is known.
    pub thermal: Option<scheduler::governor::ThermalParams>,
}

impl RuntimeConfig {
    /// Defaults for a rig at `fps`: budget one frame period (front cameras included),
    /// control evaluated every 100 ms, power window 1 s.
    pub fn new(fps: f32, power_cap_w: f32) -> Self {
        let period = Duration::from_ticks((1e9 / f64::from(fps.max(1.0))) as u64);
        RuntimeConfig {
            budget: [period * 3; CAMERA_COUNT],
            fps,
            power_cap_w,
            power_window: scheduler::clock::secs(1),
            control_period: scheduler::clock::millis(100),
            watchdog_grace: period,
            margin: scheduler::clock::micros(200),
            stale_after: scheduler::clock::millis(100),
            thermal: None,
        }
    }
}

/// Counters the hot loop updates and a status thread reads (relaxed atomics, no lock).
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Frames processed per camera (valid result).
    pub frames: [AtomicU64; CAMERA_COUNT],
    /// Frames skipped per camera (decimated, replaced, predicted miss, expired).
    pub skipped: [AtomicU64; CAMERA_COUNT],
    /// Results dropped (watchdog, failure) per camera.
    pub dropped: [AtomicU64; CAMERA_COUNT],
    /// Capture-to-publish latency histogram, 100 us buckets up to 1 s (last bucket: more).
    pub latency_us: LatencyHistogram,
    /// Snapshots published.
    pub published: AtomicU64,
    /// Current ladder level.
    pub ladder_level: AtomicU32,
    /// Governor power average, milliwatts.
    pub power_mw: AtomicU32,
    /// Governor temperature, milli-degrees C (0 when unknown).
    pub temp_mc: AtomicU32,
    /// Detector failures (device errors).
    pub failures: AtomicU64,
    /// Ladder events that did not fit the event ring.
    pub lost_events: AtomicU64,
}

/// Buckets of [`LatencyHistogram`].
pub const LATENCY_BUCKETS: usize = 10_001;

/// A fixed histogram of latencies with 100 us buckets (atomics; no allocation after creation).
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&self, d: Duration) {
        let b = ((d.ticks() / 100_000) as usize).min(LATENCY_BUCKETS - 1);
        self.counts[b].fetch_add(1, Ordering::Relaxed);
    }

    /// Snapshot of the counts (allocates: for the status thread, not the hot path).
    pub fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Percentile `p` (0..=1) of `counts` in milliseconds (upper bucket edge); `None` when empty.
    pub fn percentile_ms(counts: &[u64], p: f64) -> Option<f64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
        let mut acc = 0;
        for (i, c) in counts.iter().enumerate() {
            acc += c;
            if acc >= rank {
                return Some((i as f64 + 1.0) * 0.1);
            }
        }
        None
    }
}

/// Sink of snapshots (the control boundary: in-process channel, shared memory, replay output).
pub trait SnapshotSink {
    /// Publishes one snapshot; must not block.
    fn publish(&mut self, s: &mut Snapshot);

    /// Sees one camera's on-time result before fusion: its detections (camera pixels) and
    /// the same objects lifted to the vehicle frame. Called on the hot thread: it must not
    /// block or allocate (copy into a bounded ring or a preallocated buffer). Default: ignored.
    #[allow(unused_variables)]
    fn on_result(&mut self, result: &CameraResult<'_>) {}
}

/// One camera's on-time result, as [`SnapshotSink::on_result`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct CameraResult<'a> {
    /// Camera index.
    pub camera: u8,
    /// Model variant that ran.
    pub variant: u8,
    /// Capture time of the frame, ns on the runtime's clock.
    pub capture_ns: u64,
    /// When the result was ready, ns on the runtime's clock.
    pub done_ns: u64,
    /// Detections in camera pixels.
    pub detections: &'a [Detection],
    /// The detections that could be lifted, in the vehicle frame.
    pub objects: &'a [Object3D],
}

impl SnapshotSink for control::Publisher {
    fn publish(&mut self, s: &mut Snapshot) {
        control::Publisher::publish(self, s);
    }
}

impl SnapshotSink for control::ShmPublisher {
    fn publish(&mut self, s: &mut Snapshot) {
        control::ShmPublisher::publish(self, s);
    }
}

/// Fan-out to two sinks.
impl<A: SnapshotSink, B: SnapshotSink> SnapshotSink for (A, B) {
    fn publish(&mut self, s: &mut Snapshot) {
        self.0.publish(s);
        self.1.publish(s);
    }
    fn on_result(&mut self, r: &CameraResult<'_>) {
        self.0.on_result(r);
        self.1.on_result(r);
    }
}

/// A challenger model evaluated in the shadow of the champion (on the vehicle, instead of a
/// server-side A/B test): on a sampled subset of frames, and only in spare time, it runs on
/// the same frame as the champion; the two detection lists are compared and the result
/// leaves as metric events (disagreements, confidence shift). It never runs when a job is
/// queued, a frame is due or a control tick falls before it would finish, or the ladder is
/// degrading, so the champion's deadlines are untouched (on a virtual clock the champion's
/// output is byte-identical with and without a shadow: `tests/analytics.rs`). The energy
/// model does not charge shadow runs; a measured power sensor sees them.
pub struct Shadow {
    detector: Box<dyn Detector + Send>,
    variant: u8,
    every: u32,
    prior: Duration,
    observed: Duration,
    /// xorshift state of the frame sampler (fixed seed: replays sample the same frames).
    rng: u64,
    /// The sampled frame waiting for spare time, and the champion's detections on it.
    held: Option<FrameRef>,
    champion: Vec<Detection>,
    dets: Vec<Detection>,
    compare: ShadowCompare,
    /// Times the challenger ran.
    pub ran: u64,
    /// Sampled frames not evaluated for lack of spare time.
    pub no_time: u64,
}

impl Shadow {
    /// Runs `detector`'s `variant` on one on-time champion frame in `every` (at least 1, drawn
    /// at random with a fixed seed);
    /// `cost` is the expected time of one challenger run (a virtual clock advances by it;
    /// a live clock's estimate grows to the slowest run seen).
    pub fn new(detector: Box<dyn Detector + Send>, variant: u8, every: u32, cost: Duration) -> Self {
        Shadow {
            detector,
            variant,
            every: every.max(1),
            prior: cost,
            observed: Duration::from_ticks(0),
            rng: 0x9E37_79B9_7F4A_7C15,
            held: None,
            champion: Vec::with_capacity(MAX_OBJECTS),
            dets: Vec::with_capacity(MAX_OBJECTS),
            compare: ShadowCompare::default(),
            ran: 0,
            no_time: 0,
        }
    }

    /// One draw of the sampler: true with probability 1/`every`. Random rather than every
    /// n-th frame: the rig's cameras capture together, so a fixed stride would always land on
    /// the same cameras.
    fn sample(&mut self) -> bool {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x % u64::from(self.every) == 0
    }

    fn predicted(&self) -> Duration {
        if self.observed > self.prior { self.observed } else { self.prior }
    }
}

impl ShadowDetection for Detection {
    fn class(&self) -> u16 {
        self.class as u16
    }
    fn confidence(&self) -> f32 {
        self.score
    }
    fn bbox(&self) -> [f32; 4] {
        self.bbox
    }
}

/// What one [`Runtime::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// A job ran (its result may have been dropped).
    Ran,
    /// A job was skipped before it started.
    Skipped,
    /// Nothing was ready (live pacing: the caller may sleep until the next frame).
    Idle,
    /// The input is exhausted and nothing is pending.
    Finished,
}

/// Energy and power inputs for the governor, read by the hot loop without blocking.
pub trait PowerInput {
    /// Records that a job of `variant` finished at `now` (energy-model sensors use it).
    fn on_job(&mut self, now: Instant, variant: VariantId);
    /// Current power, watts, and temperature where measured.
    fn read(&mut self, now: Instant) -> (Option<f32>, Option<f32>);
}

/// The per-variant energy model as a [`PowerInput`] (platforms without a sensor).
impl PowerInput for scheduler::governor::EnergyModel {
    fn on_job(&mut self, now: Instant, variant: VariantId) {
        scheduler::governor::EnergyModel::on_job(self, now, variant);
    }
    fn read(&mut self, now: Instant) -> (Option<f32>, Option<f32>) {
        (Some(self.power_w(now)), None)
    }
}

/// The hot loop's state. See the module docs.
pub struct Runtime<I: FrameInput, D: Detector, C: Pace, M: ExecTimeModel, P: PowerInput, S: SnapshotSink> {
    rig: Rig,
    cfg: RuntimeConfig,
    input: I,
    detector: D,
    exec: Executor<FrameRef, C, M>,
    ladder: Ladder,
    governor: Governor,
    power: P,
    sink: S,
    /// Modelled cost per variant, for virtual pacing.
    virtual_cost: Vec<Duration>,
    dets: Vec<Detection>,
    per_camera: Vec<Vec<Object3D>>,
    /// Capture time of each camera's latest result, ns.
    per_camera_capture: [u64; CAMERA_COUNT],
    camera_status: [CameraStatus; CAMERA_COUNT],
    fps_window: [(u64, u32); CAMERA_COUNT],
    fusion: Fusion,
    tracker: Tracker,
    objects: Vec<Object>,
    snapshot: Snapshot,
    stats: Arc<RuntimeStats>,
    events: rtrb::Producer<LadderEvent>,
    next_control: Instant,
    last_gov: GovernorState,
    degraded: bool,
    /// Metric events for the analytics service (a wait-free ring; `None`: not collected).
    metrics: Option<MetricsTap>,
    /// Variant of each camera's previous job (variant switches are events).
    last_variant: [u8; CAMERA_COUNT],
    shadow: Option<Shadow>,
}

impl<I: FrameInput, D: Detector, C: Pace, M: ExecTimeModel, P: PowerInput, S: SnapshotSink> Runtime<I, D, C, M, P, S> {
    /// Builds the runtime; every buffer the loop uses is allocated here. Returns the runtime
    /// and the consumer of ladder transition events (drain it from a logging thread).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rig: Rig,
        cfg: RuntimeConfig,
        input: I,
        detector: D,
        clock: C,
        model: M,
        power: P,
        sink: S,
        virtual_cost: Vec<Duration>,
    ) -> Result<(Self, rtrb::Consumer<LadderEvent>), scheduler::ladder::LadderError> {
        let variants = detector.variants().max(1);
        let exec = Executor::new(
            ExecutorConfig { cameras: CAMERA_COUNT, variants, margin: cfg.margin, watchdog_grace: cfg.watchdog_grace },
            clock,
            model,
        );
        let specs = rig
            .cameras()
            .iter()
            .map(|c| scheduler::ladder::CameraSpec {
                criticality: match c.criticality {
                    rig::calib::Criticality::High => scheduler::Criticality::High,
                    rig::calib::Criticality::Medium => scheduler::Criticality::Medium,
                    rig::calib::Criticality::Low => scheduler::Criticality::Low,
                },
                nominal_fps: cfg.fps,
                min_fps: (c.min_fps as f32).min(cfg.fps),
            })
            .collect();
        let ladder = Ladder::new(LadderConfig::new(specs, variants))?;
        let governor = Governor::new(GovernorConfig { cap_w: cfg.power_cap_w, window: cfg.power_window, thermal: cfg.thermal });
        let (events, events_rx) = rtrb::RingBuffer::new(256);
        let now = exec.clock().now();
        let mut rt = Runtime {
            per_camera: (0..CAMERA_COUNT).map(|_| Vec::with_capacity(MAX_OBJECTS)).collect(),
            dets: Vec::with_capacity(MAX_OBJECTS),
            per_camera_capture: [0; CAMERA_COUNT],
            objects: Vec::with_capacity(MAX_OBJECTS),
            rig,
            input,
            detector,
            exec,
            ladder,
            governor,
            power,
            sink,
            virtual_cost,
            camera_status: [CameraStatus::default(); CAMERA_COUNT],
            fps_window: [(0, 0); CAMERA_COUNT],
            fusion: Fusion::new(),
            tracker: Tracker::new(),
            snapshot: Snapshot::default(),
            stats: Arc::new(RuntimeStats::default()),
            events,
            next_control: now + cfg.control_period,
            last_gov: GovernorState::default(),
            degraded: false,
            metrics: None,
            last_variant: [0; CAMERA_COUNT],
            shadow: None,
            cfg,
        };
        rt.ladder.apply(&mut rt.exec);
        Ok((rt, events_rx))
    }

    /// Records metric events into `tap` from now on (see the analytics crate): per frame its
    /// latency, input luma and detections; deadline misses, skips, variant switches,
    /// throttling and backend failovers. Recording is a wait-free ring push; a full ring
    /// drops the event and counts it.
    pub fn set_metrics(&mut self, tap: MetricsTap) {
        self.metrics = Some(tap);
    }

    /// Evaluates a challenger in the champion's shadow from now on (see [`Shadow`]).
    pub fn set_shadow(&mut self, shadow: Shadow) {
        self.shadow = Some(shadow);
    }

    /// The shadow evaluation, if one is set (its counters).
    pub fn shadow(&self) -> Option<&Shadow> {
        self.shadow.as_ref()
    }

    /// The metric tap, if one is set (its drop counter).
    pub fn metrics(&self) -> Option<&MetricsTap> {
        self.metrics.as_ref()
    }

    /// Counters for a status thread.
    pub fn stats(&self) -> Arc<RuntimeStats> {
        Arc::clone(&self.stats)
    }

    /// The executor's clock.
    pub fn clock(&self) -> &C {
        self.exec.clock()
    }

    /// The governor (the HIL bench changes its cap mid-run).
    pub fn governor_mut(&mut self) -> &mut Governor {
        &mut self.governor
    }

    /// The detector (the HIL bench injects faults through it).
    pub fn detector_mut(&mut self) -> &mut D {
        &mut self.detector
    }

    /// The frame input.
    pub fn input_mut(&mut self) -> &mut I {
        &mut self.input
    }

    /// The snapshot sink.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// The current ladder level.
    pub fn ladder_level(&self) -> u16 {
        self.ladder.level()
    }

    fn now_ns(&self) -> u64 {
        self.exec.clock().now().ticks()
    }

    fn ingest(&mut self) {
        let now = self.now_ns();
        for cam in 0..CAMERA_COUNT {
            while let Some(f) = self.input.poll(cam as u8, now) {
                let capture = Instant::from_ticks(f.capture_ns);
                let job = FrameJob { camera: cam, capture, deadline: capture + self.cfg.budget[cam], payload: f };
                match self.exec.submit(job) {
                    Submitted::Queued => {}
                    Submitted::Replaced(old) | Submitted::Decimated(old) | Submitted::UnknownCamera(old) => {
                        self.stats.skipped[usize::from(old.camera).min(CAMERA_COUNT - 1)].fetch_add(1, Ordering::Relaxed);
                        record(&mut self.metrics, Event::frame_skip(now, old.camera));
                        self.input.release(old);
                    }
                }
            }
        }
    }

    fn control_tick(&mut self, now: Instant) {
        if now < self.next_control {
            return;
        }
        self.next_control = now + self.cfg.control_period;
        let load = self.exec.take_stats();
        let (power_w, temp_c) = self.power.read(now);
        self.last_gov = self.governor.update(now, scheduler::governor::Reading { power_w, temp_c });
        // A frame replaced by a newer one before it ran is lost to queueing: from the camera's
        // side that is a miss too (decimation by the ladder's rate policy is intentional and
        // is not counted).
        let lost = load.dropped + load.predicted_miss + load.expired + load.replaced;
        let total = lost + load.on_time;
        let miss_ratio = if total == 0 { 0.0 } else { lost as f32 / total as f32 };
        if let Some(ev) = self.ladder.update(now, self.last_gov.pressure(miss_ratio)) {
            self.ladder.apply(&mut self.exec);
            if ev.to > ev.from && matches!(ev.reason, Reason::PowerOverCap { .. } | Reason::ThermalDerate { .. }) {
                record(&mut self.metrics, Event::throttle(now.ticks(), ev.to.min(255) as u8));
            }
            if self.events.push(ev).is_err() {
                self.stats.lost_events.fetch_add(1, Ordering::Relaxed);
            }
        }
        scheduler::plot!("power_w", self.last_gov.avg_w);
        scheduler::plot!("power_cap_w", self.last_gov.effective_cap_w);
        scheduler::plot!("temperature_c", self.last_gov.temp_c.unwrap_or(0.0));
        scheduler::plot!("ladder_level", self.ladder.level());
        scheduler::plot!("queued_jobs", self.exec.pending() as f64);
        self.stats.ladder_level.store(u32::from(self.ladder.level()), Ordering::Relaxed);
        self.stats.power_mw.store((self.last_gov.avg_w * 1000.0) as u32, Ordering::Relaxed);
        self.stats.temp_mc.store(self.last_gov.temp_c.map(|t| (t * 1000.0) as u32).unwrap_or(0), Ordering::Relaxed);
    }

    /// One iteration: ingest frames, run or skip one job, publish, evaluate the ladder.
    pub fn step(&mut self) -> StepOutcome {
        {
            let _z = scheduler::zone!("pipeline.ingest");
            self.ingest();
        }
        let now = self.exec.clock().now();
        self.control_tick(now);
        match self.exec.dispatch() {
            Next::Run(job) => {
                let _z = scheduler::zone!("pipeline.job");
                let cam = job.camera;
                let variant = job.variant;
                self.dets.clear();
                let camera = &self.rig.cameras()[cam];
                let pixels = self.input.pixels(&job.payload);
                if self.metrics.is_some() {
                    let luma = mean_luma(pixels);
                    record(&mut self.metrics, Event::input_stat(now.ticks(), cam as u8, luma));
                }
                let backend_before = self.detector.backend_name();
                let detected = {
                    let _z = scheduler::zone!("pipeline.detect");
                    self.detector.detect(camera, cam as u8, variant.0, pixels, &mut self.dets)
                };
                let backend_after = self.detector.backend_name();
                if backend_after != backend_before {
                    record(&mut self.metrics, Event::failover(now.ticks(), backend_id(backend_before), backend_id(backend_after)));
                }
                if self.last_variant[cam] != variant.0 {
                    record(&mut self.metrics, Event::variant_switch(now.ticks(), cam as u8, self.last_variant[cam], variant.0));
                    self.last_variant[cam] = variant.0;
                }
                let status = match detected {
                    Ok(()) if job.token.is_cancelled() => JobStatus::Cancelled,
                    Ok(()) => JobStatus::Finished,
                    Err(_) => {
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        JobStatus::Failed
                    }
                };
                if C::VIRTUAL
                    && let Some(cost) = virtual_advance(&self.virtual_cost, variant)
                {
                    let clock = self.exec.clock();
                    clock.jump_to(clock.now() + cost);
                }
                let capture = job.capture;
                let (completion, frame) = self.exec.complete(job, status);
                let done = self.exec.clock().now();
                self.power.on_job(done, variant);
                match completion {
                    Completion::OnTime { latency, .. } => {
                        self.stats.frames[cam].fetch_add(1, Ordering::Relaxed);
                        self.stats.latency_us.record(latency);
                        if self.metrics.is_some() {
                            let us = (latency.ticks() / 1_000).min(u64::from(u32::MAX)) as u32;
                            record(&mut self.metrics, Event::frame_latency(done.ticks(), cam as u8, variant.0, us));
                            for d in &self.dets {
                                record(&mut self.metrics, Event::detection(done.ticks(), cam as u8, variant.0, d.class as u16, d.score));
                            }
                        }
                        let _z = scheduler::zone!("pipeline.fuse_track");
                        self.take_result(cam, variant.0, capture, done);
                        scheduler::trace::frame_mark(cam);
                    }
                    Completion::Dropped { .. } => {
                        self.stats.dropped[cam].fetch_add(1, Ordering::Relaxed);
                        let over_us = (done.ticks().saturating_sub(capture.ticks() + self.cfg.budget[cam].ticks()) / 1_000).min(u64::from(u32::MAX)) as u32;
                        record(&mut self.metrics, Event::deadline_miss(done.ticks(), cam as u8, variant.0, over_us));
                        self.degraded = true;
                    }
                }
                {
                    let _z = scheduler::zone!("pipeline.publish");
                    self.publish(done);
                }
                if let Some(frame) = self.sample_shadow(matches!(completion, Completion::OnTime { .. }), frame) {
                    self.input.release(frame);
                }
                self.try_shadow(false);
                scheduler::trace::loop_mark();
                StepOutcome::Ran
            }
            Next::Skip(s) => {
                self.stats.skipped[s.camera].fetch_add(1, Ordering::Relaxed);
                record(&mut self.metrics, Event::frame_skip(now.ticks(), s.camera as u8));
                self.input.release(s.payload);
                StepOutcome::Skipped
            }
            Next::Idle => {
                self.try_shadow(true);
                let next = self.input.next_capture_ns();
                if C::VIRTUAL {
                    match next {
                        Some(t) => {
                            self.exec.clock().jump_to(Instant::from_ticks(t));
                            StepOutcome::Idle
                        }
                        None => StepOutcome::Finished,
                    }
                } else if next.is_none() && self.exec.pending() == 0 {
                    StepOutcome::Finished
                } else {
                    StepOutcome::Idle
                }
            }
        }
    }

    /// Keeps an on-time champion frame for the shadow challenger when the sampler picks it
    /// and none is held yet (with a copy of the champion's detections); otherwise hands the
    /// frame back for release.
    fn sample_shadow(&mut self, on_time: bool, frame: FrameRef) -> Option<FrameRef> {
        let Some(sh) = self.shadow.as_mut() else { return Some(frame) };
        if !on_time || !sh.sample() {
            return Some(frame);
        }
        if sh.held.is_some() {
            sh.no_time += 1;
            return Some(frame);
        }
        sh.champion.clear();
        sh.champion.extend_from_slice(&self.dets);
        sh.held = Some(frame);
        None
    }

    /// Runs the challenger on the held frame if there is spare time now; `last_chance` (the
    /// loop is idle) gives the frame back to its pool either way, so a held frame never
    /// outlives the burst of captures it came with.
    fn try_shadow(&mut self, last_chance: bool) {
        let Some(sh) = self.shadow.as_mut() else { return };
        let Some(frame) = sh.held else { return };
        let now = self.exec.clock().now();
        let finish = now + sh.predicted();
        let next_frame = self.input.next_capture_ns().map(Instant::from_ticks);
        // New captures already due: the burst the frame came with is over without spare time,
        // and the frame's pool slot may be needed (a held slot must never cost a capture).
        let last_chance = last_chance || next_frame.is_some_and(|t| t <= now);
        // Spare time only: nothing queued, no frame captured before the challenger would
        // finish, no control tick inside the run (so the governor and ladder see the same
        // instants as without the shadow), and no degradation in force (a degraded loop has no
        // spare budget, power included).
        let spare = self.exec.pending() == 0
            && !next_frame.is_some_and(|t| t <= finish)
            && finish < self.next_control
            && self.ladder.level() == 0;
        if !spare {
            if last_chance {
                sh.held = None;
                sh.no_time += 1;
                self.input.release(frame);
            }
            return;
        }
        sh.held = None;
        let cam = usize::from(frame.camera).min(CAMERA_COUNT - 1);
        let ran = {
            let _z = scheduler::zone!("pipeline.shadow");
            sh.dets.clear();
            let camera = &self.rig.cameras()[cam];
            let pixels = self.input.pixels(&frame);
            sh.detector.detect(camera, cam as u8, sh.variant, pixels, &mut sh.dets).is_ok()
        };
        self.input.release(frame);
        if !ran {
            return;
        }
        sh.ran += 1;
        if C::VIRTUAL {
            self.exec.clock().jump_to(finish);
        } else {
            let took = self.exec.clock().now() - now;
            if took > sh.observed {
                sh.observed = took;
            }
        }
        let result = sh.compare.compare(&sh.champion, &sh.dets);
        if let Some(tap) = self.metrics.as_mut() {
            for e in result.events(self.exec.clock().now().ticks(), cam as u8, sh.variant) {
                tap.record(e);
            }
        }
    }

    fn take_result(&mut self, cam: usize, variant: u8, capture: Instant, done: Instant) {
        let camera = &self.rig.cameras()[cam];
        let objs = &mut self.per_camera[cam];
        objs.clear();
        for d in &self.dets {
            if let Some(o) = lift(camera, d) {
                objs.push(o);
            }
        }
        self.sink.on_result(&CameraResult {
            camera: cam as u8,
            variant,
            capture_ns: capture.ticks(),
            done_ns: done.ticks(),
            detections: &self.dets,
            objects: &self.per_camera[cam],
        });
        let st = &mut self.camera_status[cam];
        st.last_capture_ns = capture.ticks();
        st.frames = st.frames.wrapping_add(1);
        let (start, n) = &mut self.fps_window[cam];
        *n += 1;
        let elapsed = done.ticks().saturating_sub(*start);
        if elapsed >= 1_000_000_000 {
            st.fps_milli = (u64::from(*n) * 1_000_000_000_000 / elapsed.max(1)) as u32;
            *start = done.ticks();
            *n = 0;
        }
        // Fuse only the cameras whose latest result belongs to this rig frame (captured within
        // half a frame period): mixing older captures would drag moving objects backwards.
        self.per_camera_capture[cam] = capture.ticks();
        let half_period = (5e8 / f64::from(self.cfg.fps.max(1.0))) as u64;
        self.fusion.clear();
        for (list, &t) in self.per_camera.iter().zip(&self.per_camera_capture) {
            if t.abs_diff(capture.ticks()) <= half_period {
                for o in list {
                    self.fusion.push(*o);
                }
            }
        }
        let fused = self.fusion.fuse();
        self.tracker.update(fused, capture.ticks());
    }

    fn publish(&mut self, now: Instant) {
        self.objects.clear();
        for t in self.tracker.tracks().iter().filter(|t| t.confirmed() && t.misses == 0) {
            if self.objects.len() == self.objects.capacity() {
                break;
            }
            self.objects.push(Object {
                track_id: t.id,
                class: t.class as u16,
                flags: 0,
                confidence: t.score,
                position: t.position,
                velocity: t.velocity,
            });
        }
        let s = &mut self.snapshot;
        s.set_objects(&self.objects);
        s.cameras = [CameraStatus::default(); control::MAX_CAMERAS];
        s.cameras[..CAMERA_COUNT].copy_from_slice(&self.camera_status);
        s.camera_count = CAMERA_COUNT as u16;
        s.capture_ns = self.camera_status.iter().map(|c| c.last_capture_ns).filter(|&t| t > 0).min().unwrap_or(0);
        s.publish_ns = now.ticks();
        s.model_version = self.detector.model_version();
        s.degradation_level = self.ladder.level();
        let mut flags = 0;
        if self.degraded || self.exec.take_degraded() {
            flags |= FLAG_DEGRADED;
        }
        if self.ladder.stale() {
            flags |= FLAG_STALE;
        }
        s.flags = flags;
        self.degraded = false;
        self.sink.publish(s);
        self.stats.published.fetch_add(1, Ordering::Relaxed);
    }
}

/// Pushes `e` into the tap, if there is one (wait-free; a full ring counts a drop).
#[inline]
fn record(tap: &mut Option<MetricsTap>, e: Event) {
    if let Some(t) = tap {
        t.record(e);
    }
}

/// Mean luma (BT.601 integer weights) of an RGB8 frame, sampled on a sparse grid of pixels
/// (about 4,000 reads for a 640x384 frame; no allocation).
fn mean_luma(rgb: &[u8]) -> u8 {
    const STRIDE_PX: usize = 61;
    let (mut sum, mut n) = (0u64, 0u64);
    let mut i = 0;
    while i + 2 < rgb.len() {
        sum += (77 * u64::from(rgb[i]) + 150 * u64::from(rgb[i + 1]) + 29 * u64::from(rgb[i + 2])) >> 8;
        n += 1;
        i += 3 * STRIDE_PX;
    }
    sum.checked_div(n).unwrap_or(0).min(255) as u8
}

/// Stable small ids of backends for failover events (`analytics` carries a byte).
pub fn backend_id(name: &str) -> u8 {
    match name {
        "cuda" => 0,
        "wgsl" => 1,
        "cpu" => 2,
        "cpu-ref" => 3,
        _ => 255,
    }
}

fn virtual_advance(cost: &[Duration], v: VariantId) -> Option<Duration> {
    cost.get(usize::from(v.0)).or(cost.last()).copied()
}
