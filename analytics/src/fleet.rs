//! Fleet side, in process: a DAP leader and helper built on `prio`'s VDAF API, and a
//! loopback HTTP endpoint that serves them to the uploader.
//!
//! This is the reference the vehicle side is tested against: it decodes every upload as a
//! DAP-09 `Report`, opens each input share with its own aggregator's HPKE key, runs Prio3
//! preparation (`prepare_init` on both, `prepare_shares_to_prepare_message`, `prepare_next`),
//! aggregates output shares per aggregator and unshards for the collector. A real fleet runs
//! the same protocol on Janus (see `docs/ANALYTICS.md`); nothing here is meant for production.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use prio::codec::{Decode, Encode, ParameterizedDecode};
use prio::field::Field128;
use prio::vdaf::prio3::{Prio3InputShare, Prio3PublicShare, Prio3SumVec};
use prio::vdaf::{AggregateShare, Aggregator, Collector, OutputShare, PrepareTransition};

use crate::AnalyticsError;
use crate::dap::{Kem, Role, generate_hpke_config, input_share_info, open, vdaf};
use crate::messages::{HPKE_CONFIG_LIST_MEDIA_TYPE, HpkeConfig, HpkeConfigList, InputShareAad, PlaintextInputShare, Report, TaskId};

/// What happened to one upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Decrypted, verified and aggregated.
    Accepted,
    /// A report id seen before: ignored (DAP replay protection).
    Duplicate,
}

/// Leader + helper of one DAP task, in one process.
pub struct InProcessAggregators {
    task_id: TaskId,
    vdaf: Prio3SumVec,
    verify_key: [u8; 16],
    leader_sk: <Kem as hpke::Kem>::PrivateKey,
    helper_sk: <Kem as hpke::Kem>::PrivateKey,
    leader_cfg: HpkeConfig,
    helper_cfg: HpkeConfig,
    seen: HashSet<[u8; 16]>,
    duplicates: u64,
    leader_out: Vec<OutputShare<Field128>>,
    helper_out: Vec<OutputShare<Field128>>,
}

/// What the collector gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// Reports aggregated.
    pub reports: u64,
    /// Element-wise sum of the (encoded) measurements.
    pub sum: Vec<u128>,
}

impl InProcessAggregators {
    /// A task over `Prio3SumVec` with `bits` per coordinate and `len` coordinates,
    /// fresh HPKE keys and a random verify key.
    pub fn new(task_id: TaskId, bits: u32, len: usize) -> Result<Self, AnalyticsError> {
        let (leader_sk, leader_cfg) = generate_hpke_config(1);
        let (helper_sk, helper_cfg) = generate_hpke_config(2);
        let mut verify_key = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut verify_key);
        Ok(Self {
            task_id,
            vdaf: vdaf(bits, len)?,
            verify_key,
            leader_sk,
            helper_sk,
            leader_cfg,
            helper_cfg,
            seen: HashSet::new(),
            duplicates: 0,
            leader_out: Vec::new(),
            helper_out: Vec::new(),
        })
    }

    /// The task id.
    pub fn task_id(&self) -> TaskId {
        self.task_id
    }

    /// The leader's HPKE config.
    pub fn leader_config(&self) -> &HpkeConfig {
        &self.leader_cfg
    }

    /// The helper's HPKE config.
    pub fn helper_config(&self) -> &HpkeConfig {
        &self.helper_cfg
    }

    /// Handles the body of one upload request.
    pub fn handle_upload(&mut self, body: &[u8]) -> Result<UploadOutcome, AnalyticsError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| AnalyticsError::Encode(format!("{what}: {e}"));
        let report = Report::get_decoded(body).map_err(|e| bad("Report", &e))?;
        let id = report.metadata.report_id;
        if self.seen.contains(&id) {
            self.duplicates += 1;
            return Ok(UploadOutcome::Duplicate);
        }
        let aad = InputShareAad { task_id: self.task_id, metadata: report.metadata, public_share: report.public_share.clone() }
            .get_encoded()
            .map_err(|e| bad("InputShareAad", &e))?;
        let public = Prio3PublicShare::get_decoded_with_param(&self.vdaf, &report.public_share).map_err(|e| bad("public share", &e))?;
        let mut shares = Vec::with_capacity(2);
        for (agg_id, role, sk, ct) in [
            (0usize, Role::Leader, &self.leader_sk, &report.leader_share),
            (1usize, Role::Helper, &self.helper_sk, &report.helper_share),
        ] {
            let pt = open(sk, ct, &input_share_info(role), &aad)?;
            let pt = PlaintextInputShare::get_decoded(&pt).map_err(|e| bad("PlaintextInputShare", &e))?;
            let share = Prio3InputShare::get_decoded_with_param(&(&self.vdaf, agg_id), &pt.payload).map_err(|e| bad("input share", &e))?;
            shares.push(share);
        }
        let (out0, out1) = self.prepare(&id, &public, &shares[0], &shares[1])?;
        self.seen.insert(id);
        self.leader_out.push(out0);
        self.helper_out.push(out1);
        Ok(UploadOutcome::Accepted)
    }

    /// Runs Prio3 preparation between the two aggregators; either output share, or the
    /// reason the proof failed.
    pub fn prepare(
        &self,
        nonce: &[u8; 16],
        public: &Prio3PublicShare<16>,
        leader: &Prio3InputShare<Field128, 16>,
        helper: &Prio3InputShare<Field128, 16>,
    ) -> Result<(OutputShare<Field128>, OutputShare<Field128>), AnalyticsError> {
        let e = |e: prio::vdaf::VdafError| AnalyticsError::Encode(format!("prepare: {e}"));
        let (st0, ps0) = self.vdaf.prepare_init(&self.verify_key, 0, &(), nonce, public, leader).map_err(e)?;
        let (st1, ps1) = self.vdaf.prepare_init(&self.verify_key, 1, &(), nonce, public, helper).map_err(e)?;
        let msg = self.vdaf.prepare_shares_to_prepare_message(&(), [ps0, ps1]).map_err(e)?;
        match (self.vdaf.prepare_next(st0, msg.clone()).map_err(e)?, self.vdaf.prepare_next(st1, msg).map_err(e)?) {
            (PrepareTransition::Finish(o0), PrepareTransition::Finish(o1)) => Ok((o0, o1)),
            _ => Err(AnalyticsError::Encode("prepare: Prio3 did not finish in one round".into())),
        }
    }

    /// Each aggregator's aggregate share (what each sends the collector).
    pub fn aggregate_shares(&self) -> Result<(AggregateShare<Field128>, AggregateShare<Field128>), AnalyticsError> {
        let e = |e: prio::vdaf::VdafError| AnalyticsError::Encode(format!("aggregate: {e}"));
        let a0 = self.vdaf.aggregate(&(), self.leader_out.iter().cloned()).map_err(e)?;
        let a1 = self.vdaf.aggregate(&(), self.helper_out.iter().cloned()).map_err(e)?;
        Ok((a0, a1))
    }

    /// The collector's result: unshards both aggregate shares.
    pub fn collect(&self) -> Result<Collection, AnalyticsError> {
        let (a0, a1) = self.aggregate_shares()?;
        let reports = self.leader_out.len() as u64;
        let sum = self
            .vdaf
            .unshard(&(), [a0, a1], reports as usize)
            .map_err(|e| AnalyticsError::Encode(format!("unshard: {e}")))?;
        Ok(Collection { reports, sum })
    }

    /// Uploads ignored because their report id was already aggregated.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// The VDAF instance.
    pub fn vdaf(&self) -> &Prio3SumVec {
        &self.vdaf
    }
}

/// How the loopback endpoint behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Serves configs and takes reports.
    Healthy = 0,
    /// Reads each request and never answers (a stalled network path).
    Stalled = 1,
    /// Answers every request with 503.
    Failing = 2,
}

/// One request as it arrived, every byte of it.
#[derive(Clone, Debug)]
pub struct CapturedRequest {
    /// Bytes of the request line and headers, as sent.
    pub head: Vec<u8>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Method.
    pub method: String,
    /// Request target.
    pub target: String,
}

/// Server state shared by connection threads.
pub struct ServerState {
    /// The aggregators.
    pub aggregators: InProcessAggregators,
    /// Every request received.
    pub captured: Vec<CapturedRequest>,
}

/// A DAP leader+helper on `127.0.0.1`, for tests and demos. Stops when dropped.
pub struct LoopbackDap {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    mode: Arc<AtomicU8>,
    state: Arc<Mutex<ServerState>>,
    accept: Option<JoinHandle<()>>,
}

impl LoopbackDap {
    /// Binds an ephemeral loopback port and serves `aggregators`.
    pub fn start(aggregators: InProcessAggregators) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mode = Arc::new(AtomicU8::new(Mode::Healthy as u8));
        let state = Arc::new(Mutex::new(ServerState { aggregators, captured: Vec::new() }));
        let (s, m, st) = (stop.clone(), mode.clone(), state.clone());
        let accept = std::thread::Builder::new().name("loopback-dap".into()).spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, m, st) = (s.clone(), m.clone(), st.clone());
                let _ = std::thread::Builder::new().name("loopback-dap-conn".into()).spawn(move || serve(conn, &s, &m, &st));
            }
        })?;
        Ok(Self { addr, stop, mode, state, accept: Some(accept) })
    }

    /// Leader base URL.
    pub fn leader_url(&self) -> String {
        format!("http://{}/leader/", self.addr)
    }

    /// Helper base URL.
    pub fn helper_url(&self) -> String {
        format!("http://{}/helper/", self.addr)
    }

    /// Changes the behaviour for requests from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Runs `f` on the server state.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut ServerState) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

impl Drop for LoopbackDap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn find(h: &[u8], pat: &[u8]) -> Option<usize> {
    h.windows(pat.len()).position(|w| w == pat)
}

/// Reads more bytes into `buf`; `None` when the peer closed, failed, or the server stops.
fn read_more(conn: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> Option<()> {
    let mut tmp = [0u8; 8192];
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match conn.read(&mut tmp) {
            Ok(0) => return None,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return Some(());
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return None,
        }
    }
}

fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> Option<CapturedRequest> {
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        read_more(conn, buf, stop)?;
    };
    let head: Vec<u8> = buf.drain(..head_end).collect();
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    while buf.len() < len {
        read_more(conn, buf, stop)?;
    }
    let body: Vec<u8> = buf.drain(..len).collect();
    Some(CapturedRequest { head, body, method, target })
}

fn respond(conn: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> bool {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
    conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body)).is_ok()
}

fn serve(mut conn: TcpStream, stop: &AtomicBool, mode: &AtomicU8, state: &Mutex<ServerState>) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut conn, &mut buf, stop) {
        let mode = mode.load(Ordering::Relaxed);
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.captured.push(req.clone());
        if mode == Mode::Stalled as u8 {
            drop(st);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        if mode == Mode::Failing as u8 {
            drop(st);
            if !respond(&mut conn, 503, "text/plain", b"unavailable") {
                return;
            }
            continue;
        }
        let task = st.aggregators.task_id().to_string();
        let path = req.target.split('?').next().unwrap_or("");
        let query_ok = req.target.ends_with(&format!("?task_id={task}"));
        let (status, ctype, body) = match (req.method.as_str(), path) {
            ("GET", "/leader/hpke_config") if query_ok => {
                (200, HPKE_CONFIG_LIST_MEDIA_TYPE, HpkeConfigList(vec![st.aggregators.leader_config().clone()]).get_encoded().unwrap_or_default())
            }
            ("GET", "/helper/hpke_config") if query_ok => {
                (200, HPKE_CONFIG_LIST_MEDIA_TYPE, HpkeConfigList(vec![st.aggregators.helper_config().clone()]).get_encoded().unwrap_or_default())
            }
            ("PUT", p) if p == format!("/leader/tasks/{task}/reports") => match st.aggregators.handle_upload(&req.body) {
                Ok(_) => (201, "text/plain", Vec::new()),
                Err(e) => (
                    400,
                    "application/problem+json",
                    format!("{{\"type\":\"urn:ietf:params:ppm:dap:error:invalidMessage\",\"detail\":{:?}}}", e.to_string()).into_bytes(),
                ),
            },
            _ => (404, "text/plain", b"not found".to_vec()),
        };
        drop(st);
        if !respond(&mut conn, status, ctype, &body) {
            return;
        }
    }
}
