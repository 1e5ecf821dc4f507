//! Power sensors against fake sysfs trees, the sliding-window cap, the thermal model.

use std::fs;
use std::path::Path;

use scheduler::clock::{millis, secs};
use scheduler::governor::*;
use scheduler::*;

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn at(ms: u64) -> Instant {
    Instant::from_ticks(ms * 1_000_000)
}

#[test]
fn hwmon_sums_power_inputs_and_reports_the_hottest_sensor() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    put(r, "hwmon0/name", "coretemp\n");
    put(r, "hwmon0/temp1_input", "45000\n");
    put(r, "hwmon1/name", "amdgpu\n");
    put(r, "hwmon1/power1_input", "15000000\n");
    put(r, "hwmon1/power2_input", "2500000\n");
    put(r, "hwmon1/power1_label", "PPT\n");
    put(r, "hwmon1/temp1_input", "55000\n");
    put(r, "hwmon1/temp2_input", "61500\n");
    let mut s = Hwmon::discover(r, None).unwrap();
    assert_eq!(s.name(), "hwmon:amdgpu");
    assert_eq!(s.read(at(0)).unwrap(), Reading { power_w: Some(17.5), temp_c: Some(61.5) });
    assert!(Hwmon::discover(r, Some("amdgpu")).is_ok());
    let e = Hwmon::discover(r, Some("nouveau")).unwrap_err().to_string();
    assert!(e.contains(&r.display().to_string()) && e.contains("power"), "{e}");

    put(r, "hwmon1/power2_input", "n/a\n");
    let e = s.read(at(1)).unwrap_err().to_string();
    assert!(e.contains("hwmon1/power2_input") && e.contains("n/a"), "{e}");
    fs::remove_file(r.join("hwmon1/power1_input")).unwrap();
    let e = s.read(at(2)).unwrap_err().to_string();
    assert!(e.contains("hwmon1/power1_input"), "{e}");
}

#[test]
fn hwmon_falls_back_to_power_average() {
    let d = tempfile::tempdir().unwrap();
    put(d.path(), "hwmon2/name", "nvme\n");
    put(d.path(), "hwmon2/power1_average", "7000000\n");
    let mut s = Hwmon::discover(d.path(), None).unwrap();
    assert_eq!(s.read(at(0)).unwrap().power_w, Some(7.0));
}

#[test]
fn rapl_differentiates_energy_and_handles_wraparound() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    put(r, "intel-rapl:0/energy_uj", "1000000\n");
    put(r, "intel-rapl:0/max_energy_range_uj", "10000000\n");
    put(r, "intel-rapl:0/name", "package-0\n");
    // A sub-zone (core) must not be double counted.
    put(r, "intel-rapl:0:0/energy_uj", "500000\n");
    put(r, "intel-rapl:0:0/max_energy_range_uj", "10000000\n");
    put(r, "intel-rapl:1/energy_uj", "0\n");
    put(r, "intel-rapl:1/max_energy_range_uj", "10000000\n");
    let mut s = Rapl::discover(r).unwrap();
    assert_eq!(s.read(at(0)).unwrap().power_w, None, "the first read has no interval");
    put(r, "intel-rapl:0/energy_uj", "3000000\n"); // +2 J
    put(r, "intel-rapl:0:0/energy_uj", "9000000\n");
    put(r, "intel-rapl:1/energy_uj", "1000000\n"); // +1 J
    assert_eq!(s.read(at(500)).unwrap().power_w, Some(6.0), "3 J in 0.5 s");
    put(r, "intel-rapl:0/energy_uj", "1000000\n"); // wrapped: +7 J +1 J
    put(r, "intel-rapl:1/energy_uj", "1000000\n");
    assert_eq!(s.read(at(1500)).unwrap().power_w, Some(8.0));
    let e = Rapl::discover(&r.join("nothing")).unwrap_err().to_string();
    assert!(e.contains("intel-rapl") && e.contains("nothing"), "{e}");
}

#[test]
fn ina3221_hwmon_driver_prefers_the_module_input_rail() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let hw = "ina3221/1-0040/hwmon/hwmon3";
    put(r, &format!("{hw}/in1_label"), "VDD_IN\n");
    put(r, &format!("{hw}/in1_input"), "5000\n"); // mV
    put(r, &format!("{hw}/curr1_input"), "2000\n"); // mA
    put(r, &format!("{hw}/in2_label"), "VDD_CPU_GPU_CV\n");
    put(r, &format!("{hw}/in2_input"), "5000\n");
    put(r, &format!("{hw}/curr2_input"), "1000\n");
    let mut s = Ina3221::discover(r, None).unwrap();
    assert_eq!(s.read(at(0)).unwrap().power_w, Some(10.0));
    let mut g = Ina3221::discover(r, Some("VDD_CPU_GPU_CV")).unwrap();
    assert_eq!(g.read(at(0)).unwrap().power_w, Some(5.0));
    assert!(Ina3221::discover(r, Some("VDD_SOC")).unwrap_err().to_string().contains("INA3221"));
}

#[test]
fn ina3221_legacy_iio_driver_sums_rails_without_a_total() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let iio = "ina3221x/0-0040/iio:device0";
    put(r, &format!("{iio}/rail_name_0"), "GPU\n");
    put(r, &format!("{iio}/in_power0_input"), "3000\n"); // mW
    put(r, &format!("{iio}/rail_name_1"), "CPU\n");
    put(r, &format!("{iio}/in_power1_input"), "1500\n");
    let mut s = Ina3221::discover(r, None).unwrap();
    assert_eq!(s.read(at(0)).unwrap().power_w, Some(4.5));
}

#[test]
fn energy_model_stands_in_for_a_sensor() {
    let mut m = EnergyModel::new(5.0, &[2.0, 0.5], secs(1));
    for k in 0..10 {
        m.on_job(at(50 + 100 * k), VariantId(0));
    }
    m.on_job(at(960), VariantId(1));
    // 10 x 2 J + 0.5 J in the last second, on 5 W idle.
    assert_eq!(m.read(at(999)).unwrap().power_w, Some(25.5));
    // At 1.5 s only the jobs after 0.5 s count: 5 x 2 J + 0.5 J.
    assert_eq!(m.power_w(at(1500)), 15.5);
    assert_eq!(m.power_w(at(5000)), 5.0);
}

#[test]
fn window_average_is_time_weighted() {
    let mut w = PowerWindow::new(secs(1));
    assert_eq!(w.average(at(0)), None);
    w.push(at(0), 10.0);
    w.push(at(500), 30.0);
    assert_eq!(w.average(at(1000)), Some(20.0));
    // Window [0.5 s, 1.5 s]: only the 30 W sample.
    assert_eq!(w.average(at(1500)), Some(30.0));
    // A burst: 100 W for 100 ms inside the window.
    w.push(at(1500), 100.0);
    w.push(at(1600), 20.0);
    assert_eq!(w.average(at(2500)), Some(28.0));
    w.push(at(100), 1000.0); // out of order: ignored
    assert_eq!(w.average(at(2500)), Some(28.0));
}

#[test]
fn the_cap_is_enforced_over_the_window_and_can_change_mid_run() {
    let cfg = GovernorConfig { cap_w: 30.0, window: secs(1), thermal: None };
    let mut g = Governor::new(cfg);
    let mut ladder = Ladder::new(LadderConfig::new(
        vec![CameraSpec { criticality: Criticality::High, nominal_fps: 36.0, min_fps: 18.0 }],
        2,
    ))
    .unwrap();
    // A 200 ms spike to 60 W on a 20 W base stays under a 30 W average: no action.
    let mut events = Vec::new();
    for ms in (0..3000).step_by(10) {
        let w = if (1000..1200).contains(&ms) { 60.0 } else { 20.0 };
        let s = g.update(at(ms), Reading { power_w: Some(w), temp_c: None });
        assert!(s.avg_w <= 28.0 + 1e-3, "{ms}: {s:?}");
        events.extend(ladder.update(at(ms), s.pressure(0.0)));
    }
    assert!(events.is_empty(), "{events:?}");
    // Cap halved mid-run: 20 W is now over 15 W.
    g.set_cap(15.0);
    for ms in (3000..3500).step_by(10) {
        let s = g.update(at(ms), Reading { power_w: Some(20.0), temp_c: None });
        events.extend(ladder.update(at(ms), s.pressure(0.0)));
    }
    assert!(!events.is_empty());
    assert_eq!(events[0].reason, Reason::PowerOverCap { avg_mw: 20_000, cap_mw: 15_000 });
    assert_eq!(events[0].at, at(3200));
}

fn thermal() -> ThermalParams {
    ThermalParams { ambient_c: 40.0, r_c_per_w: 0.5, tau_s: 10.0, throttle_c: 90.0, margin_c: 5.0, horizon_s: 5.0 }
}

#[test]
fn thermal_model_derates_before_the_throttle_threshold() {
    // 150 W would settle at 40 + 75 = 115 °C, far above the 90 °C throttle point.
    let demand = 150.0;
    let mut free = ThermalModel::new(thermal());
    for _ in 0..1200 {
        free.update(millis(100), demand, None);
    }
    assert!(free.temp_c() > 90.0, "without the governor the chip would throttle: {}", free.temp_c());

    let mut g = Governor::new(GovernorConfig { cap_w: 200.0, window: millis(500), thermal: Some(thermal()) });
    let mut first_derate: Option<(u64, f32)> = None;
    let mut max_temp = 0.0f32;
    let mut power = demand;
    for step in 0..1200u64 {
        let s = g.update(at(step * 100), Reading { power_w: Some(power), temp_c: None });
        let t = s.temp_c.unwrap();
        max_temp = max_temp.max(t);
        if s.thermal_limited && first_derate.is_none() {
            first_derate = Some((step, t));
        }
        // The ladder holds power at the effective cap.
        power = demand.min(s.effective_cap_w);
    }
    let (step, t) = first_derate.expect("the governor must de-rate");
    assert!(step > 0 && t < 85.0, "de-rating starts at {t} °C, before the 85 °C target");
    assert!(max_temp <= 85.0 + 0.01, "the temperature overshot to {max_temp} °C");
    assert!(max_temp > 80.0, "and the chip is still used close to its limit: {max_temp} °C");
}

#[test]
fn a_temperature_sensor_corrects_the_model() {
    let mut g = Governor::new(GovernorConfig { cap_w: 200.0, window: secs(1), thermal: Some(thermal()) });
    let cool = g.update(at(0), Reading { power_w: Some(50.0), temp_c: None });
    assert!(!cool.thermal_limited);
    // The sensor says the die is already at 84 °C (e.g. a hot day): the limit drops at once.
    let hot = g.update(at(100), Reading { power_w: Some(50.0), temp_c: Some(84.0) });
    assert_eq!(hot.temp_c, Some(84.0));
    assert!(hot.thermal_limited && hot.effective_cap_w < 100.0, "{hot:?}");
    let m = g.thermal().unwrap();
    assert!(m.predict(hot.effective_cap_w, 5.0) <= 85.0 + 1e-3);
}

#[test]
fn shared_state_round_trips() {
    let s = GovernorState { avg_w: 23.456, cap_w: 30.0, effective_cap_w: 27.5, temp_c: Some(-5.25), thermal_limited: true };
    let cell = SharedGovernorState::default();
    cell.store(&s);
    assert_eq!(cell.load(), s);
    let s2 = GovernorState { temp_c: None, thermal_limited: false, ..s };
    cell.store(&s2);
    assert_eq!(cell.load(), s2);
}

#[test]
fn detection_prefers_rail_monitors_and_explains_every_miss() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let (none, why) = detect(r);
    assert!(none.is_none());
    assert_eq!(why.len(), 4, "{why:?}");
    assert!(why.iter().any(|w| w.contains("NVML")), "{why:?}");
    assert!(why.iter().any(|w| w.contains("intel-rapl")), "{why:?}");

    put(r, "sys/class/powercap/intel-rapl:0/energy_uj", "0\n");
    put(r, "sys/class/powercap/intel-rapl:0/max_energy_range_uj", "1000\n");
    assert_eq!(detect(r).0.unwrap().name(), "rapl");
    put(r, "sys/class/hwmon/hwmon0/name", "amdgpu\n");
    put(r, "sys/class/hwmon/hwmon0/power1_input", "1000000\n");
    assert_eq!(detect(r).0.unwrap().name(), "hwmon:amdgpu");
    put(r, "sys/bus/i2c/drivers/ina3221x/0-0040/iio:device0/rail_name_0", "VDD_IN\n");
    put(r, "sys/bus/i2c/drivers/ina3221x/0-0040/iio:device0/in_power0_input", "5000\n");
    let (s, _) = detect(r);
    let mut s = s.unwrap();
    assert_eq!(s.name(), "ina3221");
    assert_eq!(s.read(at(0)).unwrap().power_w, Some(5.0));
}
