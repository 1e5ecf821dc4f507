//! The on-disk spool of released reports, waiting for upload.
//!
//! One file per report, named `{seq:016}-{created:012}-{report id hex}.rec`, written as
//! temp file + fsync + rename + directory fsync, so after `kill -9` or power loss at any
//! instant a report is either wholly present or absent; leftover temp files are removed on
//! open. Each file ends with a SHA-256 prefix over its content, so a corrupt file (a disk
//! fault, not a crash) is detected, moved aside and counted, never uploaded.
//!
//! Bounded: entries older than `max_age_secs` and, oldest first, entries beyond
//! `max_bytes` are dropped and counted (`counters.json`). The report id is chosen once, when
//! the report is spooled, so a report re-sent after a crash between upload and delete carries
//! the same id and the DAP aggregators discard the duplicate.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AnalyticsError;
use crate::fsutil::{TMP_SUFFIX, sync_dir, write_atomic};

const MAGIC: &[u8; 4] = b"VGSP";
const VERSION: u8 = 1;
const CHECK_LEN: usize = 8;
/// Extension of spooled reports.
pub const EXT: &str = "rec";

/// A released, noised window waiting to be sealed and uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolRecord {
    /// DAP report id (random, chosen at spool time).
    pub report_id: [u8; 16],
    /// When the record was spooled (seconds since the epoch).
    pub created_secs: u64,
    /// Window index the record summarises.
    pub window_index: u64,
    /// DAP report time (seconds since the epoch, rounded down to the task's precision).
    pub dap_time_secs: u64,
    /// Encoded (clipped, noised, offset) measurement.
    pub measurement: Vec<u64>,
}

impl SpoolRecord {
    /// Serialises the record with its checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(49 + 8 * self.measurement.len() + CHECK_LEN);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&self.report_id);
        b.extend_from_slice(&self.created_secs.to_le_bytes());
        b.extend_from_slice(&self.window_index.to_le_bytes());
        b.extend_from_slice(&self.dap_time_secs.to_le_bytes());
        b.extend_from_slice(&(self.measurement.len() as u32).to_le_bytes());
        for v in &self.measurement {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum[..CHECK_LEN]);
        b
    }

    /// Parses a record; the error names the offset where it went wrong.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() < 45 + CHECK_LEN {
            return Err(format!("truncated: {} bytes", b.len()));
        }
        let (body, check) = b.split_at(b.len() - CHECK_LEN);
        if Sha256::digest(body)[..CHECK_LEN] != *check {
            return Err(format!("checksum mismatch at offset {}", body.len()));
        }
        if &body[..4] != MAGIC {
            return Err("bad magic at offset 0".into());
        }
        if body[4] != VERSION {
            return Err(format!("unsupported version {} at offset 4", body[4]));
        }
        let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().unwrap_or([0; 8]));
        let mut report_id = [0u8; 16];
        report_id.copy_from_slice(&body[5..21]);
        let len = u32::from_le_bytes(body[45..49].try_into().unwrap_or([0; 4])) as usize;
        if body.len() != 49 + 8 * len {
            return Err(format!("length field {len} at offset 45 does not match {} bytes", body.len()));
        }
        Ok(Self {
            report_id,
            created_secs: u64_at(21),
            window_index: u64_at(29),
            dap_time_secs: u64_at(37),
            measurement: (0..len).map(|i| u64_at(49 + 8 * i)).collect(),
        })
    }
}

/// Bounds of the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Total bytes of spooled reports.
    pub max_bytes: u64,
    /// Oldest report age kept.
    pub max_age_secs: u64,
}

/// Persisted counters of what left the spool other than by a successful upload.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpoolCounters {
    /// Reports uploaded and removed.
    pub uploaded: u64,
    /// Dropped for age.
    pub dropped_age: u64,
    /// Dropped (oldest first) for size.
    pub dropped_size: u64,
    /// Refused by the aggregator for good (malformed, task unknown): removed.
    pub rejected: u64,
    /// Corrupt files found and moved aside.
    pub corrupt: u64,
}

/// One spooled report on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolEntry {
    /// File path.
    pub path: PathBuf,
    /// Sequence number (upload order).
    pub seq: u64,
    /// Spool time (seconds since the epoch).
    pub created_secs: u64,
    /// File size in bytes.
    pub size: u64,
}

/// The spool directory.
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    next_seq: u64,
    counters: SpoolCounters,
}

const COUNTERS_FILE: &str = "counters.json";

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(EXT)?.strip_suffix('.')?;
    let mut parts = stem.splitn(3, '-');
    let seq = parts.next()?.parse().ok()?;
    let created = parts.next()?.parse().ok()?;
    let id = parts.next()?;
    (id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit())).then_some((seq, created))
}

impl Spool {
    /// Opens (creating) the spool at `dir`: removes leftover temp files, moves corrupt
    /// reports aside (counted), and resumes the sequence after the newest entry.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Self, AnalyticsError> {
        std::fs::create_dir_all(dir).map_err(|e| AnalyticsError::io(dir, e))?;
        let counters = match std::fs::read(dir.join(COUNTERS_FILE)) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => SpoolCounters::default(),
        };
        let mut spool = Self { dir: dir.to_path_buf(), limits, next_seq: 0, counters };
        let rd = std::fs::read_dir(dir).map_err(|e| AnalyticsError::io(dir, e))?;
        let mut corrupt = 0;
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.ends_with(TMP_SUFFIX) {
                let _ = std::fs::remove_file(ent.path());
            }
        }
        for e in spool.entries()? {
            let ok = std::fs::read(&e.path).ok().map(|b| SpoolRecord::from_bytes(&b).is_ok()).unwrap_or(false);
            if !ok {
                let _ = std::fs::rename(&e.path, e.path.with_extension("corrupt"));
                corrupt += 1;
            }
            spool.next_seq = spool.next_seq.max(e.seq + 1);
        }
        if corrupt > 0 {
            spool.counters.corrupt += corrupt;
            spool.save_counters()?;
        }
        sync_dir(dir)?;
        Ok(spool)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Spooled entries, oldest (lowest sequence) first.
    pub fn entries(&self) -> Result<Vec<SpoolEntry>, AnalyticsError> {
        list(&self.dir)
    }

    /// Writes `rec` durably and then enforces the bounds at `now_secs`.
    pub fn push(&mut self, rec: &SpoolRecord, now_secs: u64) -> Result<SpoolEntry, AnalyticsError> {
        let hex: String = rec.report_id.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{:016}-{:012}-{hex}.{EXT}", self.next_seq, rec.created_secs);
        let path = self.dir.join(name);
        let bytes = rec.to_bytes();
        write_atomic(&path, &bytes)?;
        let entry = SpoolEntry { path, seq: self.next_seq, created_secs: rec.created_secs, size: bytes.len() as u64 };
        self.next_seq += 1;
        self.enforce(now_secs)?;
        Ok(entry)
    }

    /// Reads one entry.
    pub fn read(&self, e: &SpoolEntry) -> Result<SpoolRecord, AnalyticsError> {
        let b = std::fs::read(&e.path).map_err(|err| AnalyticsError::io(&e.path, err))?;
        SpoolRecord::from_bytes(&b).map_err(|reason| AnalyticsError::Corrupt { path: e.path.clone(), reason })
    }

    /// Removes an entry after a successful upload.
    pub fn mark_uploaded(&mut self, e: &SpoolEntry) -> Result<(), AnalyticsError> {
        self.remove(e)?;
        self.counters.uploaded += 1;
        self.save_counters()
    }

    /// Removes an entry the aggregator refused for good.
    pub fn mark_rejected(&mut self, e: &SpoolEntry) -> Result<(), AnalyticsError> {
        self.remove(e)?;
        self.counters.rejected += 1;
        self.save_counters()
    }

    /// Moves an unreadable entry aside.
    pub fn mark_corrupt(&mut self, e: &SpoolEntry) -> Result<(), AnalyticsError> {
        let _ = std::fs::rename(&e.path, e.path.with_extension("corrupt"));
        self.counters.corrupt += 1;
        self.save_counters()
    }

    fn remove(&self, e: &SpoolEntry) -> Result<(), AnalyticsError> {
        match std::fs::remove_file(&e.path) {
            Ok(()) => sync_dir(&self.dir),
            // Already dropped by the bounds: nothing to do.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(AnalyticsError::io(&e.path, err)),
        }
    }

    /// Drops entries past the age bound, then the oldest while over the size bound.
    /// Returns how many were dropped.
    pub fn enforce(&mut self, now_secs: u64) -> Result<u64, AnalyticsError> {
        let entries = self.entries()?;
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        let mut dropped = 0;
        for e in &entries {
            let too_old = e.created_secs.saturating_add(self.limits.max_age_secs) < now_secs;
            let too_big = total > self.limits.max_bytes;
            if !(too_old || too_big) {
                // Entries are in sequence order; age is monotone in practice, size is checked
                // from the oldest on, so the first keeper ends the pass.
                break;
            }
            self.remove(e)?;
            total -= e.size;
            dropped += 1;
            if too_old {
                self.counters.dropped_age += 1;
            } else {
                self.counters.dropped_size += 1;
            }
        }
        if dropped > 0 {
            self.save_counters()?;
        }
        Ok(dropped)
    }

    /// Counters so far.
    pub fn counters(&self) -> SpoolCounters {
        self.counters
    }

    fn save_counters(&self) -> Result<(), AnalyticsError> {
        let b = serde_json::to_vec_pretty(&self.counters).map_err(|e| AnalyticsError::Privacy(e.to_string()))?;
        write_atomic(&self.dir.join(COUNTERS_FILE), &b)
    }
}

/// Lists the reports in a spool directory, oldest first (for status readers too).
pub fn list(dir: &Path) -> Result<Vec<SpoolEntry>, AnalyticsError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AnalyticsError::io(dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some((seq, created_secs)) = parse_name(&name) {
            let size = ent.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(SpoolEntry { path: ent.path(), seq, created_secs, size });
        }
    }
    out.sort_by_key(|e| e.seq);
    Ok(out)
}

/// Reads the persisted counters of a spool directory (for status readers).
pub fn read_counters(dir: &Path) -> SpoolCounters {
    std::fs::read(dir.join(COUNTERS_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u8, created: u64) -> SpoolRecord {
        SpoolRecord { report_id: [id; 16], created_secs: created, window_index: id as u64, dap_time_secs: created, measurement: vec![id as u64; 55] }
    }

    #[test]
    fn record_round_trip_and_corruption_detected() {
        let r = rec(3, 1000);
        let b = r.to_bytes();
        assert_eq!(SpoolRecord::from_bytes(&b).unwrap(), r);
        for i in [0, 10, 60, b.len() - 1] {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(SpoolRecord::from_bytes(&c).is_err(), "flip at {i} undetected");
        }
        assert!(SpoolRecord::from_bytes(&b[..b.len() - 3]).is_err());
    }

    #[test]
    fn bounds_drop_oldest_first_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let size = rec(0, 0).to_bytes().len() as u64;
        let mut s = Spool::open(dir.path(), SpoolLimits { max_bytes: 3 * size, max_age_secs: 100 }).unwrap();
        for i in 0..5u8 {
            s.push(&rec(i, 1000 + i as u64), 1000 + i as u64).unwrap();
        }
        let ids: Vec<u64> = s.entries().unwrap().iter().map(|e| s.read(e).unwrap().window_index).collect();
        assert_eq!(ids, [2, 3, 4]);
        assert_eq!(s.counters().dropped_size, 2);
        // Age: at t=1103 entries created at 1002 are older than 100 s.
        s.enforce(1103).unwrap();
        let ids: Vec<u64> = s.entries().unwrap().iter().map(|e| s.read(e).unwrap().window_index).collect();
        assert_eq!(ids, [3, 4]);
        assert_eq!(s.counters().dropped_age, 1);
        // Reopen resumes the sequence and the counters.
        drop(s);
        let mut s = Spool::open(dir.path(), SpoolLimits { max_bytes: 10 * size, max_age_secs: 1000 }).unwrap();
        let e = s.push(&rec(9, 1104), 1104).unwrap();
        assert_eq!(e.seq, 5);
        assert_eq!(s.counters().dropped_size, 2);
        assert_eq!(s.entries().unwrap().last().unwrap(), &e);
    }

    #[test]
    fn open_removes_temp_files_and_quarantines_corrupt_ones() {
        let dir = tempfile::tempdir().unwrap();
        let lim = SpoolLimits { max_bytes: 1 << 20, max_age_secs: 1 << 30 };
        let mut s = Spool::open(dir.path(), lim).unwrap();
        let e = s.push(&rec(1, 5), 5).unwrap();
        s.push(&rec(2, 6), 6).unwrap();
        std::fs::write(dir.path().join(".x.rec.1.tmp"), b"partial").unwrap();
        let mut b = std::fs::read(&e.path).unwrap();
        b[20] ^= 0xff;
        std::fs::write(&e.path, b).unwrap();
        let s = Spool::open(dir.path(), lim).unwrap();
        assert_eq!(s.entries().unwrap().len(), 1);
        assert_eq!(s.counters().corrupt, 1);
        assert!(!dir.path().join(".x.rec.1.tmp").exists());
    }
}
