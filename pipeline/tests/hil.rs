//! The HIL scenarios as tests: each injects its fault at real rates into the live loop and
//! must keep every invariant of `pipeline::hil::Report::violations`. Scenarios run one at a
//! time (a lock) so they do not compete for the CPU with each other.

use std::sync::Mutex;

use pipeline::hil::{Bounds, Scenario, run};

static SERIAL: Mutex<()> = Mutex::new(());

fn check(s: Scenario) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let r = run(s, 4.0);
    let v = r.violations(&Bounds::default());
    assert!(v.is_empty(), "{}: {v:?}\nreport: {r:#?}", s.name());
}

#[test]
fn camera_dropout() {
    check(Scenario::CameraDropout);
}

#[test]
fn corrupt_frames() {
    check(Scenario::CorruptFrames);
}

#[test]
fn slow_kernel() {
    check(Scenario::SlowKernel);
}

#[test]
fn power_cap_halved() {
    check(Scenario::PowerCapHalved);
}

#[test]
fn thermal_ramp() {
    check(Scenario::ThermalRamp);
}

#[test]
fn backend_lost() {
    check(Scenario::BackendLost);
}

#[test]
fn reader_stall() {
    check(Scenario::ReaderStall);
}
