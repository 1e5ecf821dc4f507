//! Done-when: the simulated pipeline feeds the service, the uploader sends DAP reports to an
//! in-process leader+helper on loopback, and the collected aggregate matches the ground truth
//! (exactly without noise; within the configured noise with it). Every byte sent is inspected.

use std::path::Path;
use std::time::Duration;

use analytics::config::{AnalyticsConfig, DapConfig};
use analytics::fleet::{InProcessAggregators, LoopbackDap};
use analytics::metrics::Layout;
use analytics::privacy::decode_aggregate;
use analytics::sim::{SimConfig, SimFrameLoop};
use analytics::Analytics;
use analytics::messages::{Report, TaskId};
use prio::codec::{Decode, Encode};

fn task() -> TaskId {
    TaskId([7u8; 32])
}

fn config(state: &Path, server: &LoopbackDap, window_secs: u64) -> AnalyticsConfig {
    let mut c = AnalyticsConfig { state_dir: state.to_path_buf(), window_secs, ring_capacity: 1 << 14, ..Default::default() };
    c.dap = DapConfig { leader: server.leader_url(), helper: server.helper_url(), task_id: task().to_string(), time_precision_secs: 60 };
    c.upload.retry_min_ms = 20;
    c.upload.retry_max_ms = 200;
    c.upload.timeout_ms = 5_000;
    c
}

/// Runs `vehicles` simulated vehicles against `server`; returns the summed ground truth
/// and the number of windows released.
fn run_fleet(server: &LoopbackDap, base: &Path, vehicles: u64, seconds: u32, tweak: impl Fn(&mut AnalyticsConfig)) -> (Vec<u64>, u64) {
    let mut truth = vec![0u64; Layout::LEN];
    let mut released = 0;
    for v in 0..vehicles {
        let mut cfg = config(&base.join(format!("vehicle{v}")), server, 5);
        tweak(&mut cfg);
        let svc = Analytics::start(cfg.clone()).unwrap();
        let mut tap = svc.tap();
        let mut sim = SimFrameLoop::new(SimConfig { seconds, seed: 100 + v, ..Default::default() });
        let gt = sim.run(&mut tap, cfg.window_secs * 1_000_000_000, true);
        assert_eq!(tap.dropped(), 0, "paced simulation dropped events");
        for w in gt.values() {
            for (t, x) in truth.iter_mut().zip(w) {
                *t += x;
            }
        }
        svc.flush_windows(Duration::from_secs(30)).unwrap();
        assert!(svc.wait_uploaded(Duration::from_secs(60)), "spool not drained: {:?}", svc.status());
        let st = svc.shutdown();
        assert_eq!(st.windows_released, gt.len() as u64, "{st:?}");
        assert_eq!(st.windows_clipped, 0, "test clip bound too small: {st:?}");
        assert_eq!(st.spool.uploaded, gt.len() as u64);
        released += st.windows_released;
    }
    (truth, released)
}

fn collected(server: &LoopbackDap, cfg_bits: u32, released: u64, noise_off: bool) -> Vec<i128> {
    let c = server.with_state(|s| s.aggregators.collect().unwrap());
    assert_eq!(c.reports, released);
    let p = analytics::privacy::PrivacyParams {
        epsilon_per_report_micro: 1,
        epsilon_per_day_micro: 1,
        l1_clip: 1,
        bits: cfg_bits,
        dangerous_disable_noise: noise_off,
    };
    decode_aggregate(&c.sum, c.reports, &p)
}

#[test]
fn collected_aggregate_equals_ground_truth_without_noise() {
    let dir = tempfile::tempdir().unwrap();
    let server = LoopbackDap::start(InProcessAggregators::new(task(), 32, Layout::LEN).unwrap()).unwrap();
    let tweak = |c: &mut AnalyticsConfig| {
        c.privacy.bits = 32;
        c.privacy.l1_clip = 1 << 30;
        c.privacy.dangerous_disable_noise = true;
    };
    let (truth, released) = run_fleet(&server, dir.path(), 3, 12, tweak);
    assert!(released >= 6, "expected several windows, got {released}");
    let got = collected(&server, 32, released, true);
    let want: Vec<i128> = truth.iter().map(|&x| x as i128).collect();
    for i in 0..Layout::LEN {
        assert_eq!(got[i], want[i], "coordinate {} ({})", i, Layout::name(i));
    }
    assert!(want[0] > 8 * 36 * 12 * 3 * 9 / 10, "frames {}", want[0]);

    // Byte inspection: every request is a config fetch without a body, or a PUT whose body is
    // exactly one DAP Report (decodes with no byte left, re-encodes to the same bytes) whose
    // shares open to a fixed-length Prio3 vector. No frame, detection or per-frame record can
    // be hiding anywhere: headers are a fixed set and the body is the report, nothing else.
    let allowed = ["host", "user-agent", "accept", "accept-encoding", "content-type", "content-length", "connection"];
    let reqs = server.with_state(|s| s.captured.clone());
    let mut puts = 0;
    let mut sizes = std::collections::BTreeSet::new();
    let mut total = 0usize;
    for r in &reqs {
        total += r.head.len() + r.body.len();
        let head = String::from_utf8(r.head.clone()).expect("request head is ASCII");
        for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            let name = line.split(':').next().unwrap().trim().to_ascii_lowercase();
            assert!(allowed.contains(&name.as_str()), "unexpected header {line:?}");
        }
        match r.method.as_str() {
            "GET" => {
                assert!(r.target.contains("/hpke_config?task_id="), "{}", r.target);
                assert!(r.body.is_empty());
            }
            "PUT" => {
                assert_eq!(r.target, format!("/leader/tasks/{}/reports", task()));
                assert!(head.to_ascii_lowercase().contains("content-type: application/dap-report"));
                let rep = Report::get_decoded(&r.body).expect("body is exactly one DAP report");
                assert_eq!(rep.get_encoded().unwrap(), r.body, "report re-encodes to the bytes sent");
                sizes.insert(r.body.len());
                puts += 1;
            }
            m => panic!("unexpected method {m}"),
        }
    }
    assert_eq!(puts as u64, released, "one PUT per released window");
    // Report size does not depend on how many frames or detections a window had.
    assert_eq!(sizes.len(), 1, "report sizes vary: {sizes:?}");
    eprintln!("byte inspection: {} requests, {total} bytes, {puts} reports of {:?} bytes", reqs.len(), sizes);
    // Every report was opened by both aggregators and passed Prio3 verification (the
    // collection above counts exactly the released windows).
}

#[test]
fn collected_aggregate_matches_ground_truth_within_dp_noise() {
    let dir = tempfile::tempdir().unwrap();
    let server = LoopbackDap::start(InProcessAggregators::new(task(), 24, Layout::LEN).unwrap()).unwrap();
    let tweak = |c: &mut AnalyticsConfig| {
        c.window_secs = 60; // one window per vehicle
        c.privacy.l1_clip = 60_000;
        c.privacy.epsilon_per_report = 1000.0;
        c.privacy.epsilon_per_day = 1000.0;
    };
    let (truth, released) = run_fleet(&server, dir.path(), 3, 15, tweak);
    assert_eq!(released, 3);
    let got = collected(&server, 24, released, false);
    let mut cfg = AnalyticsConfig::default();
    tweak(&mut cfg);
    let std = cfg.privacy_params().unwrap().noise_std() * (released as f64).sqrt();
    // Discrete Laplace tails: P(|sum of 3| > 7 std) is below 1e-4 per coordinate.
    let tol = 7.0 * std;
    let mut exact = 0;
    for i in 0..Layout::LEN {
        let err = (got[i] - truth[i] as i128) as f64;
        assert!(err.abs() <= tol, "coordinate {} ({}): collected {} truth {} (tolerance {tol:.0})", i, Layout::name(i), got[i], truth[i]);
        exact += (err == 0.0) as usize;
    }
    assert!(exact < Layout::LEN / 2, "noise was not applied ({exact} coordinates exact)");
    assert!(truth[0] as f64 > 5.0 * tol, "signal {} too small against tolerance {tol}", truth[0]);
}
