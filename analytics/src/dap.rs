//! Prio3 encoding and the DAP-09 client (upload side).
//!
//! A spooled record is sharded with `Prio3SumVec` (two aggregators, nonce = report id),
//! each input share is sealed with HPKE to its aggregator (`"dap-09 input share" || 0x01
//! || role`, AAD = `InputShareAad`), and the `Report` is PUT to
//! `{leader}/tasks/{task_id}/reports` as `application/dap-report` (messages in
//! [`crate::messages`]).
//!
//! Why not `janus_client`: it pulls Janus's async stack (tokio, reqwest, hyper, rustls,
//! backoff, …), about 17 minutes of build on this project's 2-core machines, for what is one
//! `shard` + two HPKE seals + one PUT here. The uploader is a low-priority thread, so a
//! blocking HTTP client (`ureq`) is the right shape anyway.

use std::time::Duration;

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use prio::codec::{Decode, Encode};
use prio::vdaf::Client as _;
use prio::vdaf::prio3::Prio3SumVec;

use crate::AnalyticsError;
use crate::messages::{
    AEAD_AES_128_GCM, HpkeCiphertext, HpkeConfig, HpkeConfigList, InputShareAad, KDF_HKDF_SHA256, KEM_X25519_HKDF_SHA256,
    PlaintextInputShare, REPORT_MEDIA_TYPE, Report, ReportMetadata, TaskId,
};
use crate::spool::SpoolRecord;

/// DAP roles (the byte used in HPKE info strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Collector.
    Collector = 0,
    /// Client (the vehicle).
    Client = 1,
    /// Leader aggregator.
    Leader = 2,
    /// Helper aggregator.
    Helper = 3,
}

/// The HPKE suite this client speaks (Janus's default).
pub type Kem = hpke::kem::X25519HkdfSha256;
/// HPKE KDF.
pub type Kdf = hpke::kdf::HkdfSha256;
/// HPKE AEAD.
pub type Aead = hpke::aead::AesGcm128;

/// HPKE application-info label for input shares in DAP-09.
pub const INPUT_SHARE_LABEL: &[u8] = b"dap-09 input share";
/// Role byte of a client in HPKE info strings.
pub const ROLE_CLIENT: u8 = Role::Client as u8;

/// The Prio3 instance every vehicle and both aggregators agree on.
pub fn vdaf(bits: u32, len: usize) -> Result<Prio3SumVec, AnalyticsError> {
    Prio3SumVec::new_sum_vec(2, bits as usize, len, chunk_length(bits, len)).map_err(|e| AnalyticsError::Encode(e.to_string()))
}

/// Parallel-sum chunk length: about `sqrt(bits * len)`, the proof-size optimum.
pub fn chunk_length(bits: u32, len: usize) -> usize {
    ((bits as f64 * len as f64).sqrt().ceil() as usize).max(1)
}

/// HPKE info string for an input share sent to `role` (`2` leader, `3` helper).
pub fn input_share_info(role: Role) -> Vec<u8> {
    let mut info = INPUT_SHARE_LABEL.to_vec();
    info.push(ROLE_CLIENT);
    info.push(role as u8);
    info
}

/// Whether this client can seal to `cfg`.
pub fn supported(cfg: &HpkeConfig) -> bool {
    cfg.kem_id == KEM_X25519_HKDF_SHA256 && cfg.kdf_id == KDF_HKDF_SHA256 && cfg.aead_id == AEAD_AES_128_GCM
}

fn seal(cfg: &HpkeConfig, info: &[u8], plaintext: &[u8], aad: &[u8]) -> Result<HpkeCiphertext, AnalyticsError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&cfg.public_key)
        .map_err(|e| AnalyticsError::Encode(format!("HPKE public key of config {}: {e}", cfg.id)))?;
    let mut rng = rand::rng();
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(&OpModeS::Base, &pk, info, plaintext, aad, &mut rng)
        .map_err(|e| AnalyticsError::Encode(format!("HPKE seal: {e}")))?;
    Ok(HpkeCiphertext { config_id: cfg.id, enc: enc.to_bytes().to_vec(), payload: ct })
}

/// Opens an HPKE ciphertext with a private key (aggregator side; used by the in-process fleet).
pub fn open(sk: &<Kem as hpke::Kem>::PrivateKey, ct: &HpkeCiphertext, info: &[u8], aad: &[u8]) -> Result<Vec<u8>, AnalyticsError> {
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&ct.enc).map_err(|e| AnalyticsError::Encode(format!("encapsulated key: {e}")))?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(&OpModeR::Base, sk, &enc, info, &ct.payload, aad)
        .map_err(|e| AnalyticsError::Encode(format!("HPKE open: {e}")))
}

/// A fresh X25519 key pair and its DAP `HpkeConfig` (aggregator side, tests and tools).
pub fn generate_hpke_config(id: u8) -> (<Kem as hpke::Kem>::PrivateKey, HpkeConfig) {
    let mut rng = rand::rng();
    let (sk, pk) = Kem::gen_keypair(&mut rng);
    let cfg = HpkeConfig { id, kem_id: KEM_X25519_HKDF_SHA256, kdf_id: KDF_HKDF_SHA256, aead_id: AEAD_AES_128_GCM, public_key: pk.to_bytes().to_vec() };
    (sk, cfg)
}

/// Builds the DAP report of one spooled record.
pub fn seal_report(
    vdaf: &Prio3SumVec,
    task_id: &TaskId,
    leader: &HpkeConfig,
    helper: &HpkeConfig,
    rec: &SpoolRecord,
) -> Result<Report, AnalyticsError> {
    let enc_err = |e: &dyn std::fmt::Display| AnalyticsError::Encode(e.to_string());
    let measurement: Vec<u128> = rec.measurement.iter().map(|&x| x as u128).collect();
    let (public_share, input_shares) = vdaf.shard(&measurement, &rec.report_id).map_err(|e| enc_err(&e))?;
    let metadata = ReportMetadata { report_id: rec.report_id, time: rec.dap_time_secs };
    let public_share = public_share.get_encoded().map_err(|e| enc_err(&e))?;
    let aad = InputShareAad { task_id: *task_id, metadata, public_share: public_share.clone() }.get_encoded().map_err(|e| enc_err(&e))?;
    let mut cts = Vec::with_capacity(2);
    for (role, cfg, share) in [(Role::Leader, leader, &input_shares[0]), (Role::Helper, helper, &input_shares[1])] {
        let pt = PlaintextInputShare { extensions: Vec::new(), payload: share.get_encoded().map_err(|e| enc_err(&e))? }
            .get_encoded()
            .map_err(|e| enc_err(&e))?;
        cts.push(seal(cfg, &input_share_info(role), &pt, &aad)?);
    }
    let helper_ct = cts.pop().ok_or_else(|| AnalyticsError::Encode("missing helper share".into()))?;
    let leader_ct = cts.pop().ok_or_else(|| AnalyticsError::Encode("missing leader share".into()))?;
    Ok(Report { metadata, public_share, leader_share: leader_ct, helper_share: helper_ct })
}

/// Where reports go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DapEndpoint {
    /// Leader base URL (`http(s)://host[:port]/prefix`).
    pub leader: String,
    /// Helper base URL.
    pub helper: String,
    /// DAP task id.
    pub task_id: TaskId,
    /// Task time precision: report times are rounded down to a multiple of it.
    pub time_precision_secs: u64,
}

/// Why an upload did not go through.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Network down, timeout, 5xx, too early: keep the report and retry later.
    #[error("transient upload failure: {0}")]
    Transient(String),
    /// The aggregator refused this report for good (malformed, rejected): drop it, counted.
    #[error("report rejected: {0}")]
    Rejected(String),
    /// The report could not be built (configuration problem); kept for a later try.
    #[error(transparent)]
    Local(#[from] AnalyticsError),
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path)
}

/// Blocking DAP client for the uploader thread.
pub struct DapUploader {
    agent: ureq::Agent,
    endpoint: DapEndpoint,
    vdaf: Prio3SumVec,
    leader_cfg: Option<HpkeConfig>,
    helper_cfg: Option<HpkeConfig>,
}

impl DapUploader {
    /// A client for `endpoint`; `timeout` bounds every request.
    pub fn new(endpoint: DapEndpoint, vdaf: Prio3SumVec, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent("vigil-analytics")
            .build()
            .into();
        Self { agent, endpoint, vdaf, leader_cfg: None, helper_cfg: None }
    }

    fn fetch_config(&self, base: &str) -> Result<HpkeConfig, UploadError> {
        let url = join(base, &format!("hpke_config?task_id={}", self.endpoint.task_id));
        let mut resp = self.agent.get(&url).call().map_err(|e| UploadError::Transient(format!("GET {url}: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .map_err(|e| UploadError::Transient(format!("GET {url}: {e}")))?;
        if status != 200 {
            return Err(UploadError::Transient(format!("GET {url}: HTTP {status}")));
        }
        let list = HpkeConfigList::get_decoded(&body).map_err(|e| UploadError::Transient(format!("GET {url}: bad HpkeConfigList: {e}")))?;
        list.0
            .iter()
            .find(|c| supported(c))
            .cloned()
            .ok_or_else(|| UploadError::Transient(format!("GET {url}: no HPKE config with X25519/HKDF-SHA256/AES-128-GCM offered")))
    }

    /// Seals and uploads one record.
    pub fn upload(&mut self, rec: &SpoolRecord) -> Result<(), UploadError> {
        if self.leader_cfg.is_none() {
            self.leader_cfg = Some(self.fetch_config(&self.endpoint.leader)?);
        }
        if self.helper_cfg.is_none() {
            self.helper_cfg = Some(self.fetch_config(&self.endpoint.helper)?);
        }
        let (Some(l), Some(h)) = (&self.leader_cfg, &self.helper_cfg) else {
            return Err(UploadError::Transient("no HPKE configs".into()));
        };
        let report = seal_report(&self.vdaf, &self.endpoint.task_id, l, h, rec)?;
        let body = report.get_encoded().map_err(|e| AnalyticsError::Encode(e.to_string()))?;
        let url = join(&self.endpoint.leader, &format!("tasks/{}/reports", self.endpoint.task_id));
        let mut resp = self
            .agent
            .put(&url)
            .header("Content-Type", REPORT_MEDIA_TYPE)
            .send(&body[..])
            .map_err(|e| UploadError::Transient(format!("PUT {url}: {e}")))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = resp.body_mut().with_config().limit(16 * 1024).read_to_string().unwrap_or_default();
        let problem = |t: &str| text.contains(&format!("urn:ietf:params:ppm:dap:error:{t}"));
        if problem("outdatedConfig") {
            // Key rotation: fetch fresh configs on the next try.
            self.leader_cfg = None;
            self.helper_cfg = None;
            return Err(UploadError::Transient(format!("PUT {url}: outdated HPKE config")));
        }
        if status == 400 && (problem("invalidMessage") || problem("reportRejected")) {
            return Err(UploadError::Rejected(format!("PUT {url}: HTTP {status}: {text}")));
        }
        Err(UploadError::Transient(format!("PUT {url}: HTTP {status}")))
    }
}
