//! The [`Analytics`] service: owns the aggregator and uploader threads.
//!
//! ```text
//! hot path ──record()──▶ rtrb ring ──▶ aggregator thread ──▶ spool (disk) ──▶ uploader thread ──▶ DAP leader
//!            (wait-free)   per tap      windows, clip,         bounded,          seal + PUT,
//!                                       budget, noise          crash-safe        back-off
//! ```
//!
//! Neither thread shares anything with the hot path except the rings, so a stalled,
//! offline or crashing uploader can only fill the spool, never slow a frame.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::config::AnalyticsConfig;
use crate::dap::{DapUploader, UploadError, vdaf};
use crate::event::Event;
use crate::fsutil::write_atomic;
use crate::metrics::{Layout, WindowAccumulator, WindowSummary};
use crate::privacy::{Budget, MICRO, PrivacyParams, clip_l1, noise_and_encode};
use crate::spool::{Spool, SpoolCounters, SpoolRecord};
use crate::tap::{MetricsTap, TapReader, tap_ring};

/// Seconds since the epoch; injected so tests can move days.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock as a [`WallClock`].
pub fn system_clock() -> WallClock {
    Arc::new(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

/// What the service reports about itself (also written to `status.json` in the state dir).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Windows closed.
    pub windows_closed: u64,
    /// Windows released into the spool.
    pub windows_released: u64,
    /// Windows withheld because the day's privacy budget was spent.
    pub windows_refused_budget: u64,
    /// Windows with no events (nothing released, no budget spent).
    pub windows_empty: u64,
    /// Windows whose vector was scaled down by the L1 clip.
    pub windows_clipped: u64,
    /// Events folded.
    pub events_folded: u64,
    /// Events dropped by taps (ring full).
    pub events_dropped: u64,
    /// Events that arrived after their window had closed.
    pub events_late: u64,
    /// Last closed window (local only).
    pub last_window: Option<WindowSummary>,
    /// Privacy budget left today, in epsilon.
    pub budget_left_epsilon: f64,
    /// Reports in the spool.
    pub spool_reports: u64,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// Spool counters.
    pub spool: SpoolCounters,
    /// Last upload error, if the last attempt failed.
    pub last_upload_error: Option<String>,
    /// When this status was written (seconds since the epoch).
    pub updated_secs: u64,
}

impl Status {
    /// File name in the state directory.
    pub const FILE: &'static str = "status.json";

    /// Reads the status file of a state directory.
    pub fn read(state_dir: &Path) -> Result<Option<Self>, AnalyticsError> {
        let path = state_dir.join(Self::FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| AnalyticsError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AnalyticsError::io(&path, e)),
        }
    }
}

struct Shared {
    cfg: AnalyticsConfig,
    params: PrivacyParams,
    clock: WallClock,
    stop: AtomicBool,
    status: Mutex<Status>,
    spool: Mutex<Spool>,
    /// Signalled when a report is spooled or the service stops.
    wake: Condvar,
    wake_lock: Mutex<bool>,
}

enum Command {
    /// Close every open window now and answer when released.
    Flush(mpsc::Sender<()>),
}

/// The running analytics service.
pub struct Analytics {
    shared: Arc<Shared>,
    taps: mpsc::Sender<TapReader>,
    commands: mpsc::Sender<Command>,
    aggregator: Option<JoinHandle<()>>,
    uploader: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Analytics {
    /// Starts the service with the system clock.
    pub fn start(cfg: AnalyticsConfig) -> Result<Self, AnalyticsError> {
        Self::start_with_clock(cfg, system_clock())
    }

    /// Starts the service; `clock` gives seconds since the epoch for budget days, report
    /// times and spool ages (events keep their own pipeline timestamps).
    pub fn start_with_clock(cfg: AnalyticsConfig, clock: WallClock) -> Result<Self, AnalyticsError> {
        cfg.validate()?;
        let params = cfg.privacy_params()?;
        let endpoint = cfg.endpoint()?;
        std::fs::create_dir_all(&cfg.state_dir).map_err(|e| AnalyticsError::io(&cfg.state_dir, e))?;
        let budget = Budget::open(&cfg.state_dir, params.epsilon_per_day_micro)?;
        let spool = Spool::open(&cfg.spool_dir(), cfg.spool_limits())?;
        let vdaf = vdaf(params.bits, Layout::LEN)?;
        let shared = Arc::new(Shared {
            cfg,
            params,
            clock,
            stop: AtomicBool::new(false),
            status: Mutex::new(Status::default()),
            spool: Mutex::new(spool),
            wake: Condvar::new(),
            wake_lock: Mutex::new(false),
        });
        {
            let mut st = lock(&shared.status);
            st.budget_left_epsilon = budget.left_micro((shared.clock)()) as f64 / MICRO as f64;
            refresh_spool_status(&shared, &mut st);
        }
        let (tap_tx, tap_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let s = shared.clone();
        let aggregator = std::thread::Builder::new()
            .name("vigil-analytics-agg".into())
            .spawn(move || Aggregator::new(s, budget, tap_rx, cmd_rx).run())
            .map_err(|e| AnalyticsError::io(Path::new("thread"), e))?;
        let uploader = match endpoint {
            Some(ep) => {
                let s = shared.clone();
                let timeout = Duration::from_millis(s.cfg.upload.timeout_ms);
                let up = DapUploader::new(ep, vdaf, timeout);
                Some(
                    std::thread::Builder::new()
                        .name("vigil-analytics-upload".into())
                        .spawn(move || upload_loop(s, up))
                        .map_err(|e| AnalyticsError::io(Path::new("thread"), e))?,
                )
            }
            None => None,
        };
        Ok(Self { shared, taps: tap_tx, commands: cmd_tx, aggregator: Some(aggregator), uploader })
    }

    /// A new hot-path tap with its own ring (one per producing thread). Allocates: call at
    /// start-up, not per frame.
    pub fn tap(&self) -> MetricsTap {
        let (tap, reader) = tap_ring(self.shared.cfg.ring_capacity);
        let _ = self.taps.send(reader);
        tap
    }

    /// Current status.
    pub fn status(&self) -> Status {
        lock(&self.shared.status).clone()
    }

    /// Closes every open window now (after draining the rings) and waits until they are
    /// released or refused. For shutdown paths and tests.
    pub fn flush_windows(&self, timeout: Duration) -> Result<(), AnalyticsError> {
        let (tx, rx) = mpsc::channel();
        self.commands.send(Command::Flush(tx)).map_err(|_| AnalyticsError::Stopped)?;
        rx.recv_timeout(timeout).map_err(|_| AnalyticsError::Stopped)
    }

    /// Waits until the spool is empty (everything uploaded); `false` on timeout.
    pub fn wait_uploaded(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let empty = lock(&self.shared.spool).entries().map(|e| e.is_empty()).unwrap_or(false);
            if empty {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops both threads (open windows are released first) and returns the final status.
    pub fn shutdown(mut self) -> Status {
        self.stop_threads();
        write_status(&self.shared);
        self.status()
    }

    fn stop_threads(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let mut w = lock(&self.shared.wake_lock);
            *w = true;
            self.shared.wake.notify_all();
        }
        if let Some(h) = self.aggregator.take() {
            let _ = h.join();
        }
        if let Some(h) = self.uploader.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Analytics {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn refresh_spool_status(shared: &Shared, st: &mut Status) {
    let spool = lock(&shared.spool);
    if let Ok(entries) = spool.entries() {
        st.spool_reports = entries.len() as u64;
        st.spool_bytes = entries.iter().map(|e| e.size).sum();
    }
    st.spool = spool.counters();
}

fn write_status(shared: &Shared) {
    let mut st = lock(&shared.status);
    refresh_spool_status(shared, &mut st);
    st.updated_secs = (shared.clock)();
    if let Ok(b) = serde_json::to_vec_pretty(&*st) {
        let _ = write_atomic(&shared.cfg.state_dir.join(Status::FILE), &b);
    }
}

struct Aggregator {
    shared: Arc<Shared>,
    budget: Budget,
    taps: Vec<(TapReader, u64)>,
    tap_rx: mpsc::Receiver<TapReader>,
    cmd_rx: mpsc::Receiver<Command>,
    open: BTreeMap<u64, WindowAccumulator>,
    window_ns: u64,
    max_seen_ns: u64,
    closed_below: u64,
}

/// Event time a window stays open past its end, for events from slower taps.
const GRACE_NS: u64 = 1_000_000_000;

impl Aggregator {
    fn new(shared: Arc<Shared>, budget: Budget, tap_rx: mpsc::Receiver<TapReader>, cmd_rx: mpsc::Receiver<Command>) -> Self {
        let window_ns = shared.cfg.window_secs.saturating_mul(1_000_000_000);
        Self { shared, budget, taps: Vec::new(), tap_rx, cmd_rx, open: BTreeMap::new(), window_ns, max_seen_ns: 0, closed_below: 0 }
    }

    fn run(mut self) {
        loop {
            let stopping = self.shared.stop.load(Ordering::SeqCst);
            while let Ok(t) = self.tap_rx.try_recv() {
                self.taps.push((t, 0));
            }
            let n = self.drain();
            self.close_due();
            while let Ok(cmd) = self.cmd_rx.try_recv() {
                match cmd {
                    Command::Flush(reply) => {
                        self.drain();
                        self.close_all();
                        let _ = reply.send(());
                    }
                }
            }
            if stopping {
                self.drain();
                self.close_all();
                write_status(&self.shared);
                return;
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    fn drain(&mut self) -> usize {
        let mut events: u64 = 0;
        let mut late: u64 = 0;
        let mut drops: u64 = 0;
        let Self { taps, open, window_ns, max_seen_ns, closed_below, .. } = self;
        for (tap, seen_drops) in taps.iter_mut() {
            tap.drain(|e: Event| {
                let w = e.timestamp_ns / *window_ns;
                if w < *closed_below {
                    late += 1;
                    return;
                }
                *max_seen_ns = (*max_seen_ns).max(e.timestamp_ns);
                open.entry(w).or_insert_with(|| WindowAccumulator::new(w)).fold(&e);
                events += 1;
            });
            let d = tap.dropped();
            drops += d - *seen_drops;
            *seen_drops = d;
        }
        if drops > 0 {
            let w = *max_seen_ns / *window_ns;
            let w = w.max(*closed_below);
            open.entry(w).or_insert_with(|| WindowAccumulator::new(w)).add_tap_drops(drops);
        }
        // A tap whose producer is gone was drained above and can receive nothing more.
        self.taps.retain(|(t, _)| !t.is_abandoned());
        if events + late + drops > 0 {
            let mut st = lock(&self.shared.status);
            st.events_folded += events;
            st.events_late += late;
            st.events_dropped += drops;
        }
        events as usize
    }

    fn close_due(&mut self) {
        while let Some((&w, _)) = self.open.first_key_value() {
            let end = (w + 1).saturating_mul(self.window_ns);
            if end.saturating_add(GRACE_NS) > self.max_seen_ns {
                break;
            }
            if let Some(acc) = self.open.remove(&w) {
                self.release(acc);
            }
        }
    }

    fn close_all(&mut self) {
        while let Some((_, acc)) = self.open.pop_first() {
            self.release(acc);
        }
    }

    fn release(&mut self, acc: WindowAccumulator) {
        self.closed_below = self.closed_below.max(acc.index + 1);
        let now = (self.shared.clock)();
        let summary = acc.summary();
        let mut v = acc.values;
        let outcome = |st: &mut Status| {
            st.windows_closed += 1;
            st.last_window = Some(summary.clone());
        };
        if v.iter().all(|&x| x == 0) {
            let mut st = lock(&self.shared.status);
            outcome(&mut st);
            st.windows_empty += 1;
            drop(st);
            write_status(&self.shared);
            return;
        }
        let params = self.shared.params;
        let clipped = clip_l1(&mut v, params.l1_clip);
        let result = self
            .budget
            .try_spend(now, params.epsilon_per_report_micro)
            .and_then(|()| noise_and_encode(&v, &params, &mut rand08::rngs::OsRng))
            .and_then(|measurement| {
                let mut report_id = [0u8; 16];
                rand::Rng::fill(&mut rand::rng(), &mut report_id);
                let precision = self.shared.cfg.dap.time_precision_secs.max(1);
                let rec = SpoolRecord { report_id, created_secs: now, window_index: acc.index, dap_time_secs: now - now % precision, measurement };
                lock(&self.shared.spool).push(&rec, now)
            });
        {
            let mut st = lock(&self.shared.status);
            outcome(&mut st);
            st.windows_clipped += clipped as u64;
            match &result {
                Ok(_) => st.windows_released += 1,
                Err(AnalyticsError::BudgetExhausted { .. }) => st.windows_refused_budget += 1,
                Err(e) => st.last_upload_error = Some(format!("release of window {}: {e}", acc.index)),
            }
            st.budget_left_epsilon = self.budget.left_micro(now) as f64 / MICRO as f64;
        }
        write_status(&self.shared);
        let mut w = lock(&self.shared.wake_lock);
        *w = true;
        self.shared.wake.notify_all();
    }
}

fn upload_loop(shared: Arc<Shared>, mut up: DapUploader) {
    let min = Duration::from_millis(shared.cfg.upload.retry_min_ms);
    let max = Duration::from_millis(shared.cfg.upload.retry_max_ms);
    let mut backoff = min;
    while !shared.stop.load(Ordering::SeqCst) {
        let now = (shared.clock)();
        let next = {
            let mut spool = lock(&shared.spool);
            let _ = spool.enforce(now);
            spool.entries().ok().and_then(|e| e.into_iter().next())
        };
        let Some(entry) = next else {
            let mut w = lock(&shared.wake_lock);
            if !*w {
                w = shared.wake.wait_timeout(w, Duration::from_millis(500)).map(|r| r.0).unwrap_or_else(|p| p.into_inner().0);
            }
            *w = false;
            continue;
        };
        let rec = match lock(&shared.spool).read(&entry) {
            Ok(r) => r,
            Err(AnalyticsError::Io { .. }) => continue, // dropped by the bounds meanwhile
            Err(_) => {
                let _ = lock(&shared.spool).mark_corrupt(&entry);
                continue;
            }
        };
        let result = up.upload(&rec);
        let failed = match result {
            Ok(()) => {
                let _ = lock(&shared.spool).mark_uploaded(&entry);
                lock(&shared.status).last_upload_error = None;
                backoff = min;
                false
            }
            Err(UploadError::Rejected(msg)) => {
                let _ = lock(&shared.spool).mark_rejected(&entry);
                lock(&shared.status).last_upload_error = Some(msg);
                false
            }
            Err(e) => {
                lock(&shared.status).last_upload_error = Some(e.to_string());
                true
            }
        };
        write_status(&shared);
        if failed {
            // Interruptible back-off.
            let mut w = lock(&shared.wake_lock);
            let deadline = std::time::Instant::now() + backoff;
            while !shared.stop.load(Ordering::SeqCst) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                w = shared.wake.wait_timeout(w, left).map(|r| r.0).unwrap_or_else(|p| p.into_inner().0);
            }
            drop(w);
            backoff = (backoff * 2).min(max);
        }
    }
}
