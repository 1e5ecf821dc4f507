//! The frame loop's latency does not depend on the uploader: running against a healthy
//! leader, with the network down (connection refused), or with a stalled leader (accepts,
//! never answers), the median per-frame time stays within 1%.
//!
//! Method (robust to a shared, noisy machine): each block starts a fresh service in one
//! scenario, runs 300 warm-up and 2000 measured frames (about 200 µs of integer work plus
//! eight recorded events each) and keeps the block's median frame time. Scenarios are
//! interleaved round by round so drift in machine load hits all three alike; the verdict is
//! the median over rounds of each scenario's ratio to the healthy block of the same round.
//! Tolerance: |ratio - 1| < 1%. A fresh measurement is taken up to three times before
//! failing, because other processes on a shared 2-core machine can still bias one run.

use std::net::TcpListener;
use std::time::Instant;

use analytics::config::{AnalyticsConfig, DapConfig};
use analytics::fleet::{InProcessAggregators, LoopbackDap, Mode};
use analytics::metrics::Layout;
use analytics::{Analytics, Event, MetricsTap};
use analytics::messages::TaskId;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scenario {
    Healthy,
    Down,
    Stalled,
}

fn work(buf: &mut [u32], seed: u32) -> u32 {
    let mut acc = seed;
    for _ in 0..24 {
        for x in buf.iter_mut() {
            acc = acc.wrapping_mul(0x9E37_79B9).rotate_left(5) ^ *x;
            *x = acc;
        }
    }
    acc
}

fn frame(tap: &mut MetricsTap, buf: &mut [u32], i: u64) -> u32 {
    let r = work(buf, i as u32);
    let t = i * 3_472_222; // 288 frames per second of event time
    let cam = (i % 8) as u8;
    tap.record(Event::frame_latency(t, cam, 0, 15_000 + (r % 6_000)));
    tap.record(Event::input_stat(t, cam, (r % 256) as u8));
    for k in 0..5u16 {
        tap.record(Event::detection(t, cam, 0, k, (r % 1000) as f32 / 1000.0));
    }
    if r.is_multiple_of(50) {
        tap.record(Event::deadline_miss(t, cam, 0, 1_000));
    }
    r
}

fn block(sc: Scenario, healthy: &LoopbackDap, stalled: &LoopbackDap, down_url: &str, task: TaskId, frames0: &mut u64) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AnalyticsConfig { state_dir: dir.path().to_path_buf(), window_secs: 3, ..Default::default() };
    let (leader, helper) = match sc {
        Scenario::Healthy => (healthy.leader_url(), healthy.helper_url()),
        Scenario::Stalled => (stalled.leader_url(), stalled.helper_url()),
        Scenario::Down => (down_url.to_string(), down_url.to_string()),
    };
    cfg.dap = DapConfig { leader, helper, task_id: task.to_string(), time_precision_secs: 60 };
    cfg.privacy.epsilon_per_day = 1000.0;
    cfg.upload.timeout_ms = 300;
    cfg.upload.retry_min_ms = 5;
    cfg.upload.retry_max_ms = 40;
    let svc = Analytics::start(cfg).unwrap();
    let mut tap = svc.tap();
    let mut buf = vec![1u32; 2048];
    let mut times = Vec::with_capacity(2000);
    for n in 0..2300 {
        let i = *frames0 + n;
        let t0 = Instant::now();
        std::hint::black_box(frame(&mut tap, &mut buf, i));
        let dt = t0.elapsed();
        if n >= 300 {
            times.push(dt.as_nanos() as f64);
        }
    }
    *frames0 += 2300;
    let dropped = tap.dropped();
    drop(svc);
    times.sort_by(|a, b| a.total_cmp(b));
    (times[times.len() / 2], dropped)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn frame_latency_unaffected_by_stalled_or_offline_uploader() {
    let task = TaskId([3u8; 32]);
    let healthy = LoopbackDap::start(InProcessAggregators::new(task, 24, Layout::LEN).unwrap()).unwrap();
    let stalled = LoopbackDap::start(InProcessAggregators::new(task, 24, Layout::LEN).unwrap()).unwrap();
    stalled.set_mode(Mode::Stalled);
    // A loopback port with nothing listening: connection refused, as with the network down.
    let down_url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let mut frames = 0u64;
    let mut verdicts = Vec::new();
    for attempt in 1..=3 {
        let (mut r_down, mut r_stall) = (Vec::new(), Vec::new());
        for _round in 0..5 {
            let mut m = [0.0; 3];
            for (k, sc) in [Scenario::Healthy, Scenario::Down, Scenario::Stalled].into_iter().enumerate() {
                let (med, dropped) = block(sc, &healthy, &stalled, &down_url, task, &mut frames);
                assert_eq!(dropped, 0, "{sc:?}: the tap dropped events");
                m[k] = med;
            }
            r_down.push(m[1] / m[0]);
            r_stall.push(m[2] / m[0]);
        }
        let (d, s) = (median(r_down), median(r_stall));
        eprintln!("attempt {attempt}: median frame-time ratio down/healthy {d:.4}, stalled/healthy {s:.4}");
        verdicts.push((d, s));
        if (d - 1.0).abs() < 0.01 && (s - 1.0).abs() < 0.01 {
            break;
        }
    }
    // The scenarios were real: the healthy leader aggregated reports, the stalled one
    // received requests it never answered.
    assert!(healthy.with_state(|s| s.aggregators.collect().unwrap().reports) > 0, "healthy leader got no report");
    assert!(stalled.with_state(|s| s.captured.len()) > 0, "stalled leader was never contacted");
    let &(d, s) = verdicts.last().unwrap();
    assert!((d - 1.0).abs() < 0.01 && (s - 1.0).abs() < 0.01, "frame time changed by more than 1%: {verdicts:?}");
}
