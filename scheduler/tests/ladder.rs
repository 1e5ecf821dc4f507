//! The degradation ladder: order of rungs, hysteresis, reasons, revert hook.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use scheduler::clock::millis;
use scheduler::ladder::{LadderError, ModelRevert};
use scheduler::*;

/// The production-like rig: 2 front (High), 4 side (Medium), 2 rear (Low), 36 fps.
fn rig() -> Vec<CameraSpec> {
    let c = |criticality, min_fps| CameraSpec { criticality, nominal_fps: 36.0, min_fps };
    vec![
        c(Criticality::High, 18.0),
        c(Criticality::High, 18.0),
        c(Criticality::Medium, 9.0),
        c(Criticality::Medium, 9.0),
        c(Criticality::Medium, 9.0),
        c(Criticality::Medium, 9.0),
        c(Criticality::Low, 6.0),
        c(Criticality::Low, 6.0),
    ]
}

fn at(ms: u64) -> Instant {
    Instant::from_ticks(ms * 1_000_000)
}

fn overload() -> Pressure {
    Pressure { miss_ratio: 0.2, power_w: 10.0, cap_w: 30.0, thermal_limited: false }
}

fn calm() -> Pressure {
    Pressure { miss_ratio: 0.0, power_w: 10.0, cap_w: 30.0, thermal_limited: false }
}

#[test]
fn rungs_go_cheapest_first() {
    let l = Ladder::new(LadderConfig::new(rig(), 3)).unwrap();
    use Criticality::*;
    let steps: Vec<Step> = l.steps().collect();
    assert_eq!(steps, vec![
        Step::Nominal,
        Step::VariantDown { criticality: Low, variant: 1 },
        Step::VariantDown { criticality: Medium, variant: 1 },
        Step::VariantDown { criticality: High, variant: 1 },
        Step::VariantDown { criticality: Low, variant: 2 },
        Step::VariantDown { criticality: Medium, variant: 2 },
        Step::VariantDown { criticality: High, variant: 2 },
        Step::RateDown { criticality: Low, fps_milli: 18_000 },
        Step::RateDown { criticality: Low, fps_milli: 6_000 },
        Step::RateDown { criticality: Medium, fps_milli: 18_000 },
        Step::RateDown { criticality: Medium, fps_milli: 9_000 },
        Step::SkipFrames,
        Step::Stale,
        Step::Revert,
    ]);
}

#[test]
fn front_cameras_keep_their_rate_until_skip_frames_and_never_drop_below_minimum() {
    let mut l = Ladder::new(LadderConfig { escalate_after: millis(0), ..LadderConfig::new(rig(), 3) }).unwrap();
    let specs = rig();
    let mut t = 0;
    loop {
        for (cam, spec) in specs.iter().enumerate() {
            let fps = l.planned_fps(cam).unwrap();
            assert!(fps >= spec.min_fps, "level {} camera {cam}: {fps} < {}", l.level(), spec.min_fps);
            if spec.criticality == Criticality::High && !matches!(l.step(), Step::SkipFrames | Step::Stale | Step::Revert) {
                assert_eq!(fps, 36.0, "front camera lost rate at {:?}", l.step());
            }
            let p = l.policy(cam).unwrap();
            assert_eq!(p.priority, spec.criticality as u8);
            assert_eq!(p.min_interval.ticks(), (1e9 / f64::from(fps)) as u64);
        }
        assert_eq!(l.stale(), matches!(l.step(), Step::Stale | Step::Revert));
        t += 1;
        if l.update(at(t), overload()).is_none() {
            break;
        }
    }
    assert_eq!(l.level(), l.max_level());
    assert_eq!(l.policy(0).unwrap().variant, VariantId(2));
    assert_eq!(l.planned_fps(0), Some(18.0));
    assert_eq!(l.planned_fps(7), Some(6.0));
}

#[test]
fn escalation_needs_sustained_overload_and_recovery_needs_longer_calm() {
    let mut l = Ladder::new(LadderConfig::new(rig(), 3)).unwrap();
    assert_eq!(l.update(at(0), overload()), None);
    assert_eq!(l.update(at(150), overload()), None);
    // A calm sample breaks the run: the 200 ms start again.
    assert_eq!(l.update(at(160), calm()), None);
    assert_eq!(l.update(at(170), overload()), None);
    assert_eq!(l.update(at(360), overload()), None);
    let e = l.update(at(370), overload()).expect("200 ms of overload");
    assert_eq!((e.from, e.to, e.at), (0, 1, at(370)));
    assert_eq!(e.reason, Reason::DeadlineMisses { miss_permille: 200 });
    assert_eq!(e.step, Step::VariantDown { criticality: Criticality::Low, variant: 1 });
    let e = l.update(at(570), overload()).expect("another 200 ms: next step");
    assert_eq!(e.to, 2);

    // Between the thresholds (3% misses): hold, in either direction.
    let mid = Pressure { miss_ratio: 0.03, ..calm() };
    for ms in (580..10_000).step_by(10) {
        assert_eq!(l.update(at(ms), mid), None);
    }
    // Calm for 2 s -> one step down, and another 2 s for the next.
    assert_eq!(l.update(at(10_000), calm()), None);
    assert_eq!(l.update(at(11_990), calm()), None);
    let e = l.update(at(12_000), calm()).expect("2 s calm");
    assert_eq!((e.from, e.to, e.reason), (2, 1, Reason::Recovered { calm_ms: 2000 }));
    assert_eq!(e.step, Step::VariantDown { criticality: Criticality::Medium, variant: 1 }, "the step left");
    assert_eq!(l.update(at(13_000), calm()), None);
    assert_eq!(l.update(at(14_000), calm()).map(|e| e.to), Some(0));
    assert_eq!(l.update(at(20_000), calm()), None, "nothing below nominal");

    let mut seen = Vec::new();
    l.drain_events(|e| seen.push((e.from, e.to)));
    assert_eq!(seen, vec![(0, 1), (1, 2), (2, 1), (1, 0)]);
    l.drain_events(|_| panic!("drained twice"));
}

#[test]
fn power_and_thermal_reasons() {
    let mut l = Ladder::new(LadderConfig { escalate_after: millis(0), ..LadderConfig::new(rig(), 2) }).unwrap();
    let e = l.update(at(0), Pressure { miss_ratio: 0.0, power_w: 31.5, cap_w: 30.0, thermal_limited: false }).unwrap();
    assert_eq!(e.reason, Reason::PowerOverCap { avg_mw: 31_500, cap_mw: 30_000 });
    let e = l.update(at(1), Pressure { miss_ratio: 0.0, power_w: 25.0, cap_w: 20.0, thermal_limited: true }).unwrap();
    assert_eq!(e.reason, Reason::ThermalDerate { avg_mw: 25_000, cap_mw: 20_000 });
    // 28 W under a 30 W cap is above the 90% calm line: hold.
    let mut l2 = Ladder::new(LadderConfig::new(rig(), 2)).unwrap();
    l2.update(at(0), overload());
    l2.update(at(200), overload()).unwrap();
    for ms in 0..100 {
        assert_eq!(l2.update(at(300 + ms * 100), Pressure { miss_ratio: 0.0, power_w: 28.0, cap_w: 30.0, thermal_limited: false }), None);
    }
}

struct CountRevert(Arc<AtomicU32>);
impl ModelRevert for CountRevert {
    fn request_revert(&mut self, reason: Reason) {
        assert!(matches!(reason, Reason::DeadlineMisses { .. }));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_last_rung_asks_for_a_model_revert_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let mut l = Ladder::new(LadderConfig { escalate_after: millis(0), ..LadderConfig::new(rig(), 2) }).unwrap();
    l.set_revert_hook(Box::new(CountRevert(Arc::clone(&calls))));
    for t in 0..100 {
        l.update(at(t), overload());
    }
    assert_eq!(l.step(), Step::Revert);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn the_event_ring_keeps_the_newest_and_counts_the_lost() {
    let cfg = LadderConfig { escalate_after: millis(0), event_capacity: 4, ..LadderConfig::new(rig(), 3) };
    let mut l = Ladder::new(cfg).unwrap();
    for t in 0..6 {
        l.update(at(t), overload());
    }
    assert_eq!(l.level(), 6);
    let mut seen = Vec::new();
    l.drain_events(|e| seen.push(e.to));
    assert_eq!(seen, vec![3, 4, 5, 6]);
    assert_eq!(l.lost_events(), 2);
}

/// A plant whose miss ratio falls with the ladder level, plus noise around the
/// thresholds: the ladder settles and does not oscillate.
#[test]
fn no_oscillation_under_noisy_load() {
    let mut l = Ladder::new(LadderConfig::new(rig(), 3)).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f32 / 10_000.0 * 0.06 - 0.03 // uniform in [-0.03, 0.03)
    };
    let mut moves: Vec<(u64, i32)> = Vec::new();
    for tick in 0..6_000u64 {
        // 10 ms ticks, 60 s. Demand 1.3x capacity at nominal, 5% less per level.
        let load = 1.3 * 0.95f32.powi(i32::from(l.level()));
        let miss = ((load - 1.0).max(0.0) / load + noise()).clamp(0.0, 1.0);
        if let Some(e) = l.update(at(tick * 10), Pressure { miss_ratio: miss, ..calm() }) {
            moves.push((tick, i32::from(e.to) - i32::from(e.from)));
        }
    }
    let reversals = moves.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(reversals <= 2, "the ladder oscillates: {moves:?}");
    let last_move = moves.last().map_or(0, |m| m.0);
    assert!(last_move < 2_000, "still moving after 20 s: {moves:?}");
    assert!(l.level() >= 4, "it must have climbed to where the load fits: level {}", l.level());
}

#[test]
fn bad_configuration_names_the_field() {
    let mut cams = rig();
    cams[3].min_fps = 40.0;
    let e = Ladder::new(LadderConfig::new(cams, 3)).unwrap_err();
    let LadderError::Invalid { field, .. } = &e;
    assert_eq!(field, "cameras[3].min_fps");
    assert!(e.to_string().contains("cameras[3].min_fps"), "{e}");
    assert!(Ladder::new(LadderConfig::new(rig(), 0)).unwrap_err().to_string().contains("variants"));
    let mut cams = rig();
    cams[0].nominal_fps = f32::NAN;
    assert!(Ladder::new(LadderConfig::new(cams, 2)).unwrap_err().to_string().contains("cameras[0].nominal_fps"));
    let cfg = LadderConfig { miss_low: 0.5, miss_high: 0.1, ..LadderConfig::new(rig(), 2) };
    assert!(Ladder::new(cfg).is_err());
}

#[test]
fn the_ladder_drives_the_executor() {
    let l = {
        let mut l = Ladder::new(LadderConfig { escalate_after: millis(0), ..LadderConfig::new(rig(), 3) }).unwrap();
        for t in 0..8 {
            l.update(at(t), overload());
        }
        l
    };
    assert_eq!(l.step(), Step::RateDown { criticality: Criticality::Low, fps_milli: 6_000 });
    let clock = VirtualClock::new(at(0));
    let cfg = ExecutorConfig { cameras: 8, variants: 3, margin: millis(0), watchdog_grace: millis(0) };
    let mut exec: Executor<(), _, _> = Executor::new(cfg, clock, ModelledTimes::new(&[millis(10), millis(4), millis(1)]));
    l.apply(&mut exec);
    assert_eq!(exec.policy(7).unwrap().variant, VariantId(2));
    assert_eq!(exec.policy(7).unwrap().min_interval, Duration::from_ticks(166_666_666));
    assert_eq!(exec.policy(0).unwrap().min_interval, Duration::from_ticks(27_777_777));
}
