//! Hardware-in-the-loop bench: fault scenarios injected at real rates into the live loop,
//! with the invariants every scenario must keep.
//!
//! A scenario runs the real runtime (executor, ladder, governor, fusion, tracking, control
//! publication) on the monotonic clock for a few seconds, against a scripted world: a
//! [`TimedInput`] delivers eight cameras at 36 fps, and a [`WorldDetector`] stands in for
//! the device, spending a configured time per job (busy, as a kernel would) and reporting
//! the scripted car where the calibration projects it. Faults are injected by time: a camera
//! going dark, corrupt frames, a kernel ten times slower than its budget, the power cap
//! halved, a thermal ramp, the primary backend lost (the [`Failover`] detector moves to the
//! next one), and a control reader that stalls. A 100 Hz control reader runs beside it.
//!
//! Invariants checked by [`Report::violations`]: the control loop is never blocked (every
//! read returns within a bound, the writer's publish time stays bounded), the snapshot age
//! stays within its bound after start-up, the front camera keeps its minimum rate, every
//! ladder transition carries a reason, and nothing panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use kernels::backend::BackendError;
use rig::{CAMERA_COUNT, Camera, ObjectClass, Rig};
use scheduler::clock::{Duration, Instant, millis};
use scheduler::governor::ThermalParams;
use scheduler::governor::EnergyModel;
use scheduler::{Clock, LadderEvent, MonotonicClock, OnlineEstimator, VariantId};

use crate::detector::Detector;
use crate::perception::Detection;
use crate::runtime::{FrameInput, FrameRef, PowerInput, Runtime, RuntimeConfig, SnapshotSink, StepOutcome};

/// The scripted car's position in the vehicle frame at `t_ns` after the start.
pub fn car_at(t_ns: u64) -> [f64; 3] {
    let t = t_ns as f64 * 1e-9;
    [15.0 + 10.0 * (t % 4.0), 1.5, 0.8]
}

/// Frames whose 16 bytes carry their capture time (relative to the start) and a validity
/// marker; delivered at `fps` per camera on the runtime's clock.
#[derive(Debug)]
pub struct TimedInput {
    start_ns: u64,
    period_ns: u64,
    frames: u64,
    next: [u64; CAMERA_COUNT],
    pool: Vec<[u8; 16]>,
    /// `(camera, from, to)` relative ns: the camera delivers nothing.
    pub dark: Option<(u8, u64, u64)>,
    /// `(camera, from, to)` relative ns: frames carry garbage.
    pub corrupt: Option<(u8, u64, u64)>,
    corrupt_frame: [u8; 16],
}

impl TimedInput {
    /// `fps` frames per second per camera for `seconds`, starting at `start_ns`.
    pub fn new(fps: u64, seconds: f64, start_ns: u64) -> Self {
        let frames = (fps as f64 * seconds).ceil() as u64;
        let period_ns = 1_000_000_000 / fps.max(1);
        let pool = (0..frames)
            .map(|k| {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&(k * period_ns).to_le_bytes());
                b[8..].copy_from_slice(b"VIGILOK!");
                b
            })
            .collect();
        TimedInput { start_ns, period_ns, frames, next: [0; CAMERA_COUNT], pool, dark: None, corrupt: None, corrupt_frame: [0xA5; 16] }
    }

    fn within(w: Option<(u8, u64, u64)>, camera: u8, t: u64) -> bool {
        w.is_some_and(|(c, a, b)| c == camera && (a..b).contains(&t))
    }
}

const CORRUPT: u32 = u32::MAX;

impl FrameInput for TimedInput {
    fn poll(&mut self, camera: u8, now_ns: u64) -> Option<FrameRef> {
        let c = usize::from(camera);
        loop {
            let k = *self.next.get(c)?;
            let rel = k * self.period_ns;
            if k >= self.frames || self.start_ns + rel > now_ns {
                return None;
            }
            self.next[c] += 1;
            if Self::within(self.dark, camera, rel) {
                continue;
            }
            let slot = if Self::within(self.corrupt, camera, rel) { CORRUPT } else { k as u32 };
            return Some(FrameRef { camera, slot, capture_ns: self.start_ns + rel });
        }
    }
    fn pixels(&self, frame: &FrameRef) -> &[u8] {
        if frame.slot == CORRUPT {
            return &self.corrupt_frame;
        }
        &self.pool[frame.slot as usize]
    }
    fn release(&mut self, _frame: FrameRef) {}
    fn next_capture_ns(&self) -> Option<u64> {
        let k = *self.next.iter().min()?;
        (k < self.frames).then_some(self.start_ns + k * self.period_ns)
    }
}

/// A stand-in device: spends `cost[variant]` per job (times `slow_factor` while
/// `slow` holds), fails while `fail` holds, and detects the scripted car.
#[derive(Debug)]
pub struct WorldDetector {
    name: &'static str,
    /// Busy time per job, per variant.
    pub cost: Vec<StdDuration>,
    /// Multiplies the cost while set (the "kernel 10x slower" fault).
    pub slow_factor: Arc<AtomicU64>,
    /// Fails every call while set (the "backend lost" fault).
    pub fail: Arc<AtomicBool>,
    /// Frames rejected as corrupt (bad marker).
    pub rejected: Arc<AtomicU64>,
}

impl WorldDetector {
    /// A device named `name` with the given per-variant costs.
    pub fn new(name: &'static str, cost: Vec<StdDuration>) -> Self {
        WorldDetector {
            name,
            cost,
            slow_factor: Arc::new(AtomicU64::new(1)),
            fail: Arc::new(AtomicBool::new(false)),
            rejected: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Detector for WorldDetector {
    fn backend_name(&self) -> &'static str {
        self.name
    }
    fn variants(&self) -> u8 {
        self.cost.len() as u8
    }
    fn model_version(&self) -> u64 {
        1
    }
    fn detect(&mut self, camera: &Camera, idx: u8, variant: u8, frame: &[u8], out: &mut Vec<Detection>) -> Result<(), BackendError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(BackendError::Device { backend: self.name, reason: String::new() });
        }
        let base = self.cost.get(usize::from(variant)).or(self.cost.last()).copied().unwrap_or_default();
        let until = StdInstant::now() + base * self.slow_factor.load(Ordering::Relaxed) as u32;
        while StdInstant::now() < until {
            std::hint::spin_loop();
        }
        if frame.len() < 16 || &frame[8..16] != b"VIGILOK!" {
            // Garbage in: the network still runs, its output is empty.
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&frame[..8]);
        let p = car_at(u64::from_le_bytes(t));
        let pv = nalgebra::Point3::new(p[0], p[1], p[2]);
        let depth = camera.camera_to_vehicle.inverse_transform_point(&pv).z;
        if let Some(px) = camera.project(&pv)
            && px.x > 10.0
            && px.y > 10.0
            && px.x < f64::from(camera.width) - 10.0
            && px.y < f64::from(camera.height) - 10.0
            && out.len() < out.capacity()
        {
            out.push(Detection {
                camera: idx,
                class: ObjectClass::Car,
                score: 0.9,
                bbox: [(px.x - 8.0) as f32, (px.y - 6.0) as f32, (px.x + 8.0) as f32, (px.y + 6.0) as f32],
                depth: depth as f32,
            });
        }
        Ok(())
    }
}

/// Runs the primary detector until it reports a device fault, then the secondary, for good:
/// the frame that failed is retried on the secondary, so no result is lost to the fault.
#[derive(Debug)]
pub struct Failover<A: Detector, B: Detector> {
    primary: A,
    secondary: B,
    failed_over: Arc<AtomicBool>,
}

impl<A: Detector, B: Detector> Failover<A, B> {
    /// Primary first.
    pub fn new(primary: A, secondary: B) -> Self {
        Failover { primary, secondary, failed_over: Arc::new(AtomicBool::new(false)) }
    }
    /// Set once the secondary has taken over.
    pub fn failed_over(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.failed_over)
    }
}

impl<A: Detector, B: Detector> Detector for Failover<A, B> {
    fn backend_name(&self) -> &'static str {
        if self.failed_over.load(Ordering::Relaxed) { self.secondary.backend_name() } else { self.primary.backend_name() }
    }
    fn variants(&self) -> u8 {
        self.primary.variants().min(self.secondary.variants())
    }
    fn model_version(&self) -> u64 {
        self.primary.model_version()
    }
    fn detect(&mut self, camera: &Camera, idx: u8, variant: u8, frame: &[u8], out: &mut Vec<Detection>) -> Result<(), BackendError> {
        if !self.failed_over.load(Ordering::Relaxed) {
            match self.primary.detect(camera, idx, variant, frame, out) {
                Err(BackendError::Device { .. }) => {
                    self.failed_over.store(true, Ordering::Relaxed);
                    out.clear();
                }
                other => return other,
            }
        }
        self.secondary.detect(camera, idx, variant, frame, out)
    }
}

/// Power and temperature for the governor: the energy model, plus a temperature ramp when
/// the thermal scenario drives one.
#[derive(Debug)]
pub struct BenchPower {
    model: EnergyModel,
    /// Measured temperature in milli-degrees C; 0 = no sensor.
    pub temp_mc: Arc<AtomicU64>,
}

impl PowerInput for BenchPower {
    fn on_job(&mut self, now: Instant, variant: VariantId) {
        self.model.on_job(now, variant);
    }
    fn read(&mut self, now: Instant) -> (Option<f32>, Option<f32>) {
        let t = self.temp_mc.load(Ordering::Relaxed);
        (Some(self.model.power_w(now)), (t > 0).then_some(t as f32 / 1000.0))
    }
}

/// Records publish times so the report can show the writer never waited.
#[derive(Debug)]
pub struct TimedSink {
    inner: control::Publisher,
    worst_publish_ns: Arc<AtomicU64>,
}

impl SnapshotSink for TimedSink {
    fn publish(&mut self, s: &mut control::Snapshot) {
        let t0 = StdInstant::now();
        self.inner.publish(s);
        self.worst_publish_ns.fetch_max(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The fault scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// The front wide camera goes dark for 1 s and returns.
    CameraDropout,
    /// A side camera delivers garbage for 1 s.
    CorruptFrames,
    /// Every kernel runs 10x slower than its budget for 1 s.
    SlowKernel,
    /// The power cap is halved mid-run.
    PowerCapHalved,
    /// The die temperature ramps towards the throttle point.
    ThermalRamp,
    /// The primary backend is lost mid-run; the secondary takes over.
    BackendLost,
    /// The control reader stalls for 500 ms.
    ReaderStall,
}

impl Scenario {
    /// Every scenario, in bench order.
    pub const ALL: [Scenario; 7] = [
        Scenario::CameraDropout,
        Scenario::CorruptFrames,
        Scenario::SlowKernel,
        Scenario::PowerCapHalved,
        Scenario::ThermalRamp,
        Scenario::BackendLost,
        Scenario::ReaderStall,
    ];

    /// Kebab-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::CameraDropout => "camera-dropout",
            Scenario::CorruptFrames => "corrupt-frames",
            Scenario::SlowKernel => "slow-kernel",
            Scenario::PowerCapHalved => "power-cap-halved",
            Scenario::ThermalRamp => "thermal-ramp",
            Scenario::BackendLost => "backend-lost",
            Scenario::ReaderStall => "reader-stall",
        }
    }

    /// Parses a kebab-case name.
    pub fn from_name(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// Bounds the invariants are checked against.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Longest acceptable control read, ms.
    pub max_read_ms: f64,
    /// Longest acceptable publish by the writer, ms.
    pub max_publish_ms: f64,
    /// Oldest acceptable snapshot seen by the reader after the first second, ms.
    pub max_age_ms: f64,
    /// Fraction of its configured minimum rate the front camera must hold.
    pub front_rate_fraction: f64,
}

impl Default for Bounds {
    fn default() -> Self {
        // Generous enough for a shared 2-core CI machine, tight enough to catch a stall.
        Bounds { max_read_ms: 20.0, max_publish_ms: 20.0, max_age_ms: 250.0, front_rate_fraction: 0.8 }
    }
}

/// What a scenario run observed.
#[derive(Clone, Debug)]
pub struct Report {
    /// Scenario.
    pub scenario: Scenario,
    /// Run length, s.
    pub seconds: f64,
    /// Frames processed per camera.
    pub frames: [u64; CAMERA_COUNT],
    /// Minimum rate of the front camera (from the calibration), fps.
    pub front_min_fps: f64,
    /// Control reads performed, and torn/empty reads.
    pub reads: u64,
    /// Longest control read, ms.
    pub worst_read_ms: f64,
    /// Longest publish, ms.
    pub worst_publish_ms: f64,
    /// Oldest snapshot the reader saw after the first second, ms.
    pub worst_age_ms: f64,
    /// Ladder transitions.
    pub events: Vec<LadderEvent>,
    /// Highest ladder level reached.
    pub max_level: u16,
    /// Results dropped (watchdog, failures).
    pub dropped: u64,
    /// Frames rejected as corrupt by the detector.
    pub rejected: u64,
    /// The backend failed over.
    pub failed_over: bool,
    /// The hot loop panicked.
    pub panicked: bool,
}

impl Report {
    /// Invariant violations, empty when the scenario passed.
    pub fn violations(&self, b: &Bounds) -> Vec<String> {
        let mut v = Vec::new();
        if self.panicked {
            v.push("the hot loop panicked".to_string());
        }
        if self.reads == 0 {
            v.push("the control reader never read a snapshot".to_string());
        }
        if self.worst_read_ms > b.max_read_ms {
            v.push(format!("a control read took {:.2} ms (bound {} ms)", self.worst_read_ms, b.max_read_ms));
        }
        if self.worst_publish_ms > b.max_publish_ms {
            v.push(format!("a publish took {:.2} ms (bound {} ms)", self.worst_publish_ms, b.max_publish_ms));
        }
        if self.worst_age_ms > b.max_age_ms {
            v.push(format!("snapshot age reached {:.1} ms (bound {} ms)", self.worst_age_ms, b.max_age_ms));
        }
        // The front camera of a dropout scenario is exempt while it is dark (it is not the front one).
        let front_fps = self.frames[0] as f64 / self.seconds;
        if front_fps < self.front_min_fps * b.front_rate_fraction {
            v.push(format!("front camera at {front_fps:.1} fps, below {:.0}% of its {} fps minimum", b.front_rate_fraction * 100.0, self.front_min_fps));
        }
        let mut level = 0u16;
        for e in &self.events {
            if e.from != level {
                v.push(format!("ladder event from level {} but the ladder was at {level}", e.from));
            }
            level = e.to;
        }
        if self.max_level > 0 && self.events.is_empty() {
            v.push("the ladder degraded without a logged transition".to_string());
        }
        match self.scenario {
            Scenario::BackendLost if !self.failed_over => v.push("the backend was lost but no failover happened".into()),
            Scenario::CorruptFrames if self.rejected == 0 => v.push("no corrupt frame reached the detector".into()),
            Scenario::PowerCapHalved | Scenario::ThermalRamp if self.events.is_empty() => {
                v.push("the fault produced no degradation".into())
            }
            _ => {}
        }
        v
    }
}

/// Runs one scenario for `seconds` (faults at 40-65% of the run) and reports.
pub fn run(scenario: Scenario, seconds: f64) -> Report {
    let rig = Rig::builtin();
    let clock = MonotonicClock;
    let start = clock.now().ticks() + 2_000_000;
    let ns = |f: f64| (seconds * f * 1e9) as u64;
    let (fault_from, fault_to) = (ns(0.4), ns(0.65));
    let mut input = TimedInput::new(36, seconds, start);
    match scenario {
        Scenario::CameraDropout => input.dark = Some((1, fault_from, fault_to)),
        Scenario::CorruptFrames => input.corrupt = Some((3, fault_from, fault_to)),
        _ => {}
    }
    let costs = vec![StdDuration::from_micros(1500), StdDuration::from_micros(700), StdDuration::from_micros(300)];
    let primary = WorldDetector::new("primary", costs.clone());
    let secondary = WorldDetector::new("secondary", costs.iter().map(|c| *c * 2).collect());
    let (slow, fail, rejected_a, rejected_b) =
        (Arc::clone(&primary.slow_factor), Arc::clone(&primary.fail), Arc::clone(&primary.rejected), Arc::clone(&secondary.rejected));
    let detector = Failover::new(primary, secondary);
    let failed_over = detector.failed_over();
    let temp = Arc::new(AtomicU64::new(0));
    let power = BenchPower { model: EnergyModel::new(4.0, &[0.06, 0.025, 0.01], scheduler::clock::secs(1)), temp_mc: Arc::clone(&temp) };
    let mut cfg = RuntimeConfig::new(36.0, 30.0);
    cfg.power_window = millis(500);
    if scenario == Scenario::ThermalRamp {
        cfg.thermal = Some(ThermalParams { ambient_c: 45.0, r_c_per_w: 1.5, tau_s: 5.0, throttle_c: 90.0, margin_c: 5.0, horizon_s: 2.0 });
    }
    let (publisher, reader) = control::channel();
    let worst_publish = Arc::new(AtomicU64::new(0));
    let sink = TimedSink { inner: publisher, worst_publish_ns: Arc::clone(&worst_publish) };
    let prior: Vec<Duration> = costs.iter().map(|c| Duration::from_ticks(c.as_nanos() as u64)).collect();
    let built = Runtime::new(rig.clone(), cfg, input, detector, clock, OnlineEstimator::new(&prior), power, sink, Vec::new());
    let Ok((mut rt, mut events_rx)) = built else {
        return Report::failed(scenario, seconds);
    };
    let stats = rt.stats();
    let stop = Arc::new(AtomicBool::new(false));
    let stall = scenario == Scenario::ReaderStall;
    let reader_thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut reads, mut worst_read, mut worst_age) = (0u64, 0u64, 0u64);
            let mut stalled = false;
            let mut next = StdInstant::now();
            while !stop.load(Ordering::Relaxed) {
                next += StdDuration::from_millis(10);
                let now = MonotonicClock.now().ticks();
                if stall && !stalled && now > start + fault_from {
                    stalled = true;
                    std::thread::sleep(StdDuration::from_millis(500));
                    next = StdInstant::now();
                }
                let t0 = StdInstant::now();
                let r = reader.read();
                worst_read = worst_read.max(t0.elapsed().as_nanos() as u64);
                if let Ok(s) = r {
                    reads += 1;
                    if now > start + 1_000_000_000 {
                        worst_age = worst_age.max(s.age_ns(MonotonicClock.now().ticks()));
                    }
                }
                std::thread::sleep(next.saturating_duration_since(StdInstant::now()));
            }
            (reads, worst_read, worst_age)
        })
    };
    let hot = std::thread::spawn(move || {
        let mut events = Vec::new();
        let mut max_level = 0u16;
        let mut cap_halved = false;
        loop {
            let rel = MonotonicClock.now().ticks().saturating_sub(start);
            let in_fault = (fault_from..fault_to).contains(&rel);
            match scenario {
                Scenario::SlowKernel => slow.store(if in_fault { 10 } else { 1 }, Ordering::Relaxed),
                Scenario::BackendLost if rel >= fault_from => fail.store(true, Ordering::Relaxed),
                Scenario::PowerCapHalved if rel >= fault_from && !cap_halved => {
                    cap_halved = true;
                    rt.governor_mut().set_cap(7.5);
                }
                Scenario::ThermalRamp => {
                    // 60 C at the start, rising 40 C across the fault window, then held.
                    let f = ((rel as f64 - fault_from as f64) / (fault_to - fault_from) as f64).clamp(0.0, 1.0);
                    temp.store((60_000.0 + 40_000.0 * f) as u64, Ordering::Relaxed);
                }
                _ => {}
            }
            let out = rt.step();
            max_level = max_level.max(rt.ladder_level());
            while let Ok(e) = events_rx.pop() {
                events.push(e);
            }
            match out {
                StepOutcome::Finished => break,
                StepOutcome::Idle => std::thread::sleep(StdDuration::from_micros(200)),
                _ => {}
            }
        }
        (events, max_level)
    });
    let joined = hot.join();
    stop.store(true, Ordering::Relaxed);
    let (reads, worst_read, worst_age) = reader_thread.join().unwrap_or((0, u64::MAX, u64::MAX));
    let (events, max_level, panicked) = match joined {
        Ok((e, l)) => (e, l, false),
        Err(_) => (Vec::new(), 0, true),
    };
    Report {
        scenario,
        seconds,
        frames: std::array::from_fn(|c| stats.frames[c].load(Ordering::Relaxed)),
        front_min_fps: rig.cameras()[0].min_fps,
        reads,
        worst_read_ms: worst_read as f64 / 1e6,
        worst_publish_ms: worst_publish.load(Ordering::Relaxed) as f64 / 1e6,
        worst_age_ms: worst_age as f64 / 1e6,
        events,
        max_level,
        dropped: stats.dropped.iter().map(|d| d.load(Ordering::Relaxed)).sum(),
        rejected: rejected_a.load(Ordering::Relaxed) + rejected_b.load(Ordering::Relaxed),
        failed_over: failed_over.load(Ordering::Relaxed),
        panicked,
    }
}

impl Report {
    fn failed(scenario: Scenario, seconds: f64) -> Report {
        Report {
            scenario,
            seconds,
            frames: [0; CAMERA_COUNT],
            front_min_fps: 0.0,
            reads: 0,
            worst_read_ms: 0.0,
            worst_publish_ms: 0.0,
            worst_age_ms: 0.0,
            events: Vec::new(),
            max_level: 0,
            dropped: 0,
            rejected: 0,
            failed_over: false,
            panicked: true,
        }
    }
}
