//! Offline operation: reports spool while the leader is unreachable or failing, survive a
//! restart, and are delivered exactly once when the network is back, also when the previous
//! process died between sending a report and deleting it.

use std::time::Duration;

use analytics::Analytics;
use analytics::config::{AnalyticsConfig, DapConfig};
use analytics::dap::{DapEndpoint, DapUploader, vdaf};
use analytics::fleet::{InProcessAggregators, LoopbackDap, Mode};
use analytics::metrics::Layout;
use analytics::sim::{SimConfig, SimFrameLoop};
use analytics::spool::{Spool, list};
use analytics::messages::TaskId;

fn task() -> TaskId {
    TaskId([9u8; 32])
}

#[test]
fn spooled_while_offline_then_delivered_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = LoopbackDap::start(InProcessAggregators::new(task(), 24, Layout::LEN).unwrap()).unwrap();
    server.set_mode(Mode::Failing);
    let mut cfg = AnalyticsConfig { state_dir: dir.path().to_path_buf(), window_secs: 2, ..Default::default() };
    cfg.dap = DapConfig { leader: server.leader_url(), helper: server.helper_url(), task_id: task().to_string(), time_precision_secs: 60 };
    cfg.privacy.epsilon_per_day = 100.0;
    cfg.privacy.epsilon_per_report = 1.0;
    cfg.upload.retry_min_ms = 10;
    cfg.upload.retry_max_ms = 50;

    // Phase 1: leader answers 503; windows pile up in the spool.
    let svc = Analytics::start(cfg.clone()).unwrap();
    let mut tap = svc.tap();
    SimFrameLoop::new(SimConfig { seconds: 6, ..Default::default() }).run(&mut tap, 2_000_000_000, true);
    svc.flush_windows(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let st = svc.shutdown();
    assert_eq!(st.windows_released, 3, "{st:?}");
    assert_eq!(st.spool_reports, 3, "{st:?}");
    assert!(st.last_upload_error.is_some(), "the failing leader was never tried: {st:?}");
    assert_eq!(server.with_state(|s| s.aggregators.collect().unwrap().reports), 0);

    // A crash between "sent" and "deleted": the first report reaches the leader, but stays
    // in the spool (as after kill -9 right after the PUT returned).
    server.set_mode(Mode::Healthy);
    let spool = Spool::open(&cfg.spool_dir(), cfg.spool_limits()).unwrap();
    let first = spool.read(&spool.entries().unwrap()[0]).unwrap();
    let ep = DapEndpoint { leader: server.leader_url(), helper: server.helper_url(), task_id: task(), time_precision_secs: 60 };
    DapUploader::new(ep, vdaf(24, Layout::LEN).unwrap(), Duration::from_secs(5)).upload(&first).unwrap();
    drop(spool);

    // Phase 2: restart with the network back: everything is delivered, the re-sent report is
    // recognised by its report id and counted once.
    let svc = Analytics::start(cfg.clone()).unwrap();
    assert!(svc.wait_uploaded(Duration::from_secs(30)), "{:?}", svc.status());
    let st = svc.shutdown();
    assert_eq!(st.spool.uploaded, 3);
    assert!(list(&cfg.spool_dir()).unwrap().is_empty());
    let (reports, dups) = server.with_state(|s| (s.aggregators.collect().unwrap().reports, s.aggregators.duplicates()));
    assert_eq!(reports, 3, "no loss, no duplicate in the aggregate");
    assert_eq!(dups, 1, "the re-sent report was discarded by id");
}

#[test]
fn budget_refuses_release_once_spent_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = AnalyticsConfig { state_dir: dir.path().to_path_buf(), window_secs: 1, ..Default::default() };
    cfg.privacy.epsilon_per_day = 1.0;
    cfg.privacy.epsilon_per_report = 0.25;
    let day = 20_500 * 86_400;
    let clock: analytics::service::WallClock = std::sync::Arc::new(move || day + 3600);
    // 6 windows, no endpoint (offline vehicle): 4 fit the day's budget, 2 are refused.
    let svc = Analytics::start_with_clock(cfg.clone(), clock.clone()).unwrap();
    let mut tap = svc.tap();
    SimFrameLoop::new(SimConfig { seconds: 6, cameras: 2, ..Default::default() }).run(&mut tap, 1_000_000_000, true);
    svc.flush_windows(Duration::from_secs(30)).unwrap();
    let st = svc.shutdown();
    assert_eq!((st.windows_released, st.windows_refused_budget), (4, 2), "{st:?}");
    assert_eq!(st.budget_left_epsilon, 0.0);
    // Restart on the same day: still nothing left.
    let svc = Analytics::start_with_clock(cfg.clone(), clock).unwrap();
    let mut tap = svc.tap();
    SimFrameLoop::new(SimConfig { seconds: 1, cameras: 1, start_ns: 100_000_000_000, ..Default::default() }).run(&mut tap, 1_000_000_000, true);
    svc.flush_windows(Duration::from_secs(30)).unwrap();
    let st = svc.shutdown();
    assert_eq!((st.windows_released, st.windows_refused_budget), (0, 1), "{st:?}");
    // Next day: budget is back.
    let svc = Analytics::start_with_clock(cfg, std::sync::Arc::new(move || day + 86_400 + 5)).unwrap();
    let mut tap = svc.tap();
    SimFrameLoop::new(SimConfig { seconds: 1, cameras: 1, start_ns: 200_000_000_000, ..Default::default() }).run(&mut tap, 1_000_000_000, true);
    svc.flush_windows(Duration::from_secs(30)).unwrap();
    let st = svc.shutdown();
    assert_eq!(st.windows_released, 1, "{st:?}");
    assert_eq!(st.budget_left_epsilon, 0.75);
}
