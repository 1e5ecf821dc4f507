//! The steady-state hot loop allocates nothing: a counting global allocator wraps the
//! system allocator, the runtime (executor, ladder, governor, lift, fusion, tracking and the
//! in-process control publisher, with a scripted detector) warms up, then a window of steps
//! must not allocate at all. A second run takes its frames from the camera rings (synthetic
//! sources delivering into `rtrb` rings on the runtime's clock) with the analytics metric tap
//! attached (and drained between steps, as the aggregator thread would). The backends' own
//! `run` is covered by `kernels/tests/no_alloc.rs`. One test function: the counter is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use kernels::backend::BackendError;
use pipeline::detector::Detector;
use pipeline::hil::TimedInput;
use pipeline::perception::Detection;
use rig::{Camera, ObjectClass};
use pipeline::runtime::{Runtime, RuntimeConfig, StepOutcome};
use scheduler::clock::{Instant, millis};
use scheduler::governor::EnergyModel;
use scheduler::{ModelledTimes, VirtualClock};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Reports, for every camera, the detection of a car 15 m ahead computed once at start-up
/// (the calibration's projection is start-up work; the scripted hil device projects per
/// frame and is not allocation-free itself).
struct FixedDetector {
    per_camera: Vec<Option<Detection>>,
}

impl FixedDetector {
    fn new(rig: &rig::Rig) -> Self {
        let p = nalgebra::Point3::new(15.0, 1.5, 0.8);
        let per_camera = rig
            .cameras()
            .iter()
            .enumerate()
            .map(|(i, cam)| {
                let px = cam.project(&p)?;
                let depth = cam.camera_to_vehicle.inverse_transform_point(&p).z as f32;
                let inside = px.x > 10.0 && px.y > 10.0 && px.x < f64::from(cam.width) - 10.0 && px.y < f64::from(cam.height) - 10.0;
                inside.then(|| Detection {
                    camera: i as u8,
                    class: ObjectClass::Car,
                    score: 0.9,
                    bbox: [(px.x - 8.0) as f32, (px.y - 6.0) as f32, (px.x + 8.0) as f32, (px.y + 6.0) as f32],
                    depth,
                })
            })
            .collect();
        FixedDetector { per_camera }
    }
}

impl Detector for FixedDetector {
    fn backend_name(&self) -> &'static str {
        "fixed"
    }
    fn variants(&self) -> u8 {
        2
    }
    fn model_version(&self) -> u64 {
        1
    }
    fn detect(&mut self, _camera: &Camera, idx: u8, _variant: u8, _frame: &[u8], out: &mut Vec<Detection>) -> Result<(), BackendError> {
        if let Some(Some(d)) = self.per_camera.get(usize::from(idx)) {
            out.push(*d);
        }
        Ok(())
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_loop_does_not_allocate() {
    scripted_input();
    rings_and_metric_tap();
}

/// Rings, the metric tap and a shadow challenger: the whole optional machinery.
fn rings_and_metric_tap() {
    let costs = vec![millis(2), millis(1)];
    let rig = rig::Rig::builtin();
    let (publisher, reader) = control::channel();
    let cams = pipeline::rings::synthetic(&rig, 4, 36.0, 3, None);
    let (mut rt, _events) = Runtime::new(
        rig.clone(),
        RuntimeConfig::new(36.0, 30.0),
        pipeline::rings::InlineRings::new(cams, 0),
        FixedDetector::new(&rig),
        VirtualClock::new(Instant::from_ticks(0)),
        ModelledTimes::new(&costs),
        EnergyModel::new(5.0, &[0.05, 0.02], scheduler::clock::secs(1)),
        publisher,
        costs,
    )
    .expect("runtime");
    let (tap, mut tap_reader) = analytics::tap::tap_ring(1 << 12);
    rt.set_metrics(tap);
    rt.set_shadow(pipeline::runtime::Shadow::new(Box::new(FixedDetector::new(&rig)), 0, 2, millis(1)));
    let mut events = 0u64;
    for _ in 0..1_000 {
        assert_ne!(rt.step(), StepOutcome::Finished);
        tap_reader.drain(|_| events += 1);
    }
    COUNTING.store(true, Ordering::SeqCst);
    let mut steps = 0;
    while steps < 20_000 && rt.step() != StepOutcome::Finished {
        tap_reader.drain(|_| events += 1);
        steps += 1;
    }
    COUNTING.store(false, Ordering::SeqCst);
    let n = ALLOCS.swap(0, Ordering::SeqCst);
    assert_eq!(steps, 20_000, "an endless synthetic source never finishes");
    assert_eq!(n, 0, "{n} allocations in {steps} steady-state steps (rings + metric tap + shadow)");
    assert!(rt.shadow().unwrap().ran > 100, "the shadow challenger ran {} times", rt.shadow().unwrap().ran);
    assert!(events > 20_000, "the tap saw {events} events");
    assert_eq!(rt.metrics().unwrap().dropped(), 0);
    let s = reader.read().expect("a snapshot was published");
    assert!(s.sequence > 1000, "seq {}", s.sequence);
}

fn scripted_input() {
    let costs = vec![millis(2), millis(1)];
    let rig = rig::Rig::builtin();
    let (publisher, reader) = control::channel();
    let (mut rt, _events) = Runtime::new(
        rig.clone(),
        RuntimeConfig::new(36.0, 30.0),
        TimedInput::new(36, 120.0, 0),
        FixedDetector::new(&rig),
        VirtualClock::new(Instant::from_ticks(0)),
        ModelledTimes::new(&costs),
        EnergyModel::new(5.0, &[0.05, 0.02], scheduler::clock::secs(1)),
        publisher,
        costs,
    )
    .expect("runtime");
    // Warm-up: first tracks, first ladder evaluations, histogram buckets touched.
    for _ in 0..1_000 {
        assert_ne!(rt.step(), StepOutcome::Finished);
    }
    COUNTING.store(true, Ordering::SeqCst);
    let mut steps = 0;
    while steps < 20_000 && rt.step() != StepOutcome::Finished {
        steps += 1;
    }
    COUNTING.store(false, Ordering::SeqCst);
    let n = ALLOCS.swap(0, Ordering::SeqCst);
    assert!(steps > 1_000, "the window covered {steps} steps");
    assert_eq!(n, 0, "{n} allocations in {steps} steady-state steps");
    let s = reader.read().expect("a snapshot was published");
    assert!(s.sequence > 1000 && s.object_count == 1, "seq {} objects {}", s.sequence, s.object_count);
}
