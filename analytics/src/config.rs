//! The `[analytics]` section of the vigil config file (TOML).
//!
//! ```toml
//! [analytics]
//! state_dir = "/var/lib/vigil/analytics"
//! window_secs = 21600
//!
//! [analytics.dap]
//! leader = "https://leader.example/"
//! helper = "https://helper.example/"
//! task_id = "<32 bytes, base64url without padding>"
//! time_precision_secs = 3600
//!
//! [analytics.privacy]
//! epsilon_per_report = 0.25
//! epsilon_per_day = 1.0
//! l1_clip = 4096
//!
//! [analytics.spool]
//! max_bytes = 8388608
//! max_age_secs = 604800
//! ```
//!
//! Other sections of the file belong to other subsystems and are left alone, also when
//! [`set_key`] edits a value (comments and layout are kept).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::AnalyticsError;
use crate::dap::DapEndpoint;
use crate::messages::TaskId;
use crate::privacy::{PrivacyParams, to_micro};
use crate::spool::SpoolLimits;

/// Environment variable naming the vigil config file.
pub const ENV_CONFIG: &str = "VIGIL_CONFIG";
/// Default config file path.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vigil/vigil.toml";
/// Largest default daily epsilon the project ships with.
pub const MAX_DEFAULT_EPSILON_PER_DAY: f64 = 1.0;

/// `[analytics]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Whether analytics run at all.
    pub enabled: bool,
    /// Budget, spool and status live here.
    pub state_dir: PathBuf,
    /// Window length in seconds of event time; one report per window.
    pub window_secs: u64,
    /// Events each tap's ring holds.
    pub ring_capacity: usize,
    /// `[analytics.dap]`.
    pub dap: DapConfig,
    /// `[analytics.privacy]`.
    pub privacy: PrivacyConfig,
    /// `[analytics.spool]`.
    pub spool: SpoolConfig,
    /// `[analytics.upload]`.
    pub upload: UploadConfig,
}

/// `[analytics.dap]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DapConfig {
    /// Leader base URL.
    pub leader: String,
    /// Helper base URL.
    pub helper: String,
    /// Task id, base64url without padding (32 bytes).
    pub task_id: String,
    /// Task time precision in seconds.
    pub time_precision_secs: u64,
}

/// `[analytics.privacy]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Epsilon spent by each released window.
    pub epsilon_per_report: f64,
    /// Epsilon a vehicle may spend per UTC day.
    pub epsilon_per_day: f64,
    /// L1 bound of one window's vector.
    pub l1_clip: u64,
    /// Bits per Prio3 coordinate.
    pub bits: u32,
    /// Disables noise. Tests only; never set it on a vehicle.
    pub dangerous_disable_noise: bool,
}

/// `[analytics.spool]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Largest total size of spooled reports.
    pub max_bytes: u64,
    /// Oldest report kept, in seconds.
    pub max_age_secs: u64,
}

/// `[analytics.upload]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Bound on every HTTP request.
    pub timeout_ms: u64,
    /// First retry delay after a failure.
    pub retry_min_ms: u64,
    /// Largest retry delay (exponential back-off).
    pub retry_max_ms: u64,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            state_dir: PathBuf::from("/var/lib/vigil/analytics"),
            window_secs: 6 * 3600,
            ring_capacity: 1 << 16,
            dap: DapConfig::default(),
            privacy: PrivacyConfig::default(),
            spool: SpoolConfig::default(),
            upload: UploadConfig::default(),
        }
    }
}

impl Default for DapConfig {
    fn default() -> Self {
        Self { leader: String::new(), helper: String::new(), task_id: String::new(), time_precision_secs: 3600 }
    }
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self { epsilon_per_report: 0.25, epsilon_per_day: MAX_DEFAULT_EPSILON_PER_DAY, l1_clip: 4096, bits: 24, dangerous_disable_noise: false }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self { max_bytes: 8 << 20, max_age_secs: 7 * 86_400 }
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self { timeout_ms: 10_000, retry_min_ms: 500, retry_max_ms: 300_000 }
    }
}

fn field_err(field: &str, reason: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Config { field: field.into(), reason: reason.into() }
}

fn check_url(field: &str, url: &str) -> Result<(), AnalyticsError> {
    if url.starts_with("http://") {
        return Ok(());
    }
    if url.starts_with("https://") {
        if cfg!(feature = "tls") {
            return Ok(());
        }
        return Err(field_err(field, "https:// needs vigil built with the analytics `tls` feature"));
    }
    Err(field_err(field, format!("{url:?} is not an http:// or https:// URL")))
}

impl AnalyticsConfig {
    /// Reads `[analytics]` from a vigil config file; a missing section gives the defaults.
    pub fn load(path: &Path) -> Result<Self, AnalyticsError> {
        let text = std::fs::read_to_string(path).map_err(|e| AnalyticsError::io(path, e))?;
        Self::from_toml(&text).map_err(|e| match e {
            AnalyticsError::Config { field, reason } => AnalyticsError::Config { field: format!("{}: {field}", path.display()), reason },
            other => other,
        })
    }

    /// Parses `[analytics]` out of the text of a vigil config file.
    pub fn from_toml(text: &str) -> Result<Self, AnalyticsError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| field_err("(file)", e.to_string()))?;
        match table.get("analytics") {
            None => Ok(Self::default()),
            Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| field_err("[analytics]", e.to_string())),
        }
    }

    /// Privacy parameters, checked.
    pub fn privacy_params(&self) -> Result<PrivacyParams, AnalyticsError> {
        let p = &self.privacy;
        if !(p.epsilon_per_report.is_finite() && p.epsilon_per_report > 0.0) {
            return Err(field_err("analytics.privacy.epsilon_per_report", "must be a finite number > 0"));
        }
        if !(p.epsilon_per_day.is_finite() && p.epsilon_per_day > 0.0) {
            return Err(field_err("analytics.privacy.epsilon_per_day", "must be a finite number > 0"));
        }
        let params = PrivacyParams {
            epsilon_per_report_micro: to_micro(p.epsilon_per_report),
            epsilon_per_day_micro: to_micro(p.epsilon_per_day),
            l1_clip: p.l1_clip,
            bits: p.bits,
            dangerous_disable_noise: p.dangerous_disable_noise,
        };
        params.validate().map_err(|e| match e {
            AnalyticsError::Config { field, reason } => field_err(&format!("analytics.{field}"), reason),
            other => other,
        })?;
        Ok(params)
    }

    /// The DAP endpoint, checked; `None` when no leader is configured (reports stay spooled).
    pub fn endpoint(&self) -> Result<Option<DapEndpoint>, AnalyticsError> {
        let d = &self.dap;
        if d.leader.is_empty() && d.helper.is_empty() && d.task_id.is_empty() {
            return Ok(None);
        }
        check_url("analytics.dap.leader", &d.leader)?;
        check_url("analytics.dap.helper", &d.helper)?;
        let task_id = TaskId::from_str(&d.task_id)
            .map_err(|e| field_err("analytics.dap.task_id", format!("{e} (want 32 bytes, base64url without padding)")))?;
        if d.time_precision_secs == 0 {
            return Err(field_err("analytics.dap.time_precision_secs", "must be > 0"));
        }
        Ok(Some(DapEndpoint { leader: d.leader.clone(), helper: d.helper.clone(), task_id, time_precision_secs: d.time_precision_secs }))
    }

    /// Spool bounds.
    pub fn spool_limits(&self) -> SpoolLimits {
        SpoolLimits { max_bytes: self.spool.max_bytes, max_age_secs: self.spool.max_age_secs }
    }

    /// Checks everything; the error names the field.
    pub fn validate(&self) -> Result<(), AnalyticsError> {
        if self.window_secs == 0 {
            return Err(field_err("analytics.window_secs", "must be > 0"));
        }
        if self.ring_capacity == 0 {
            return Err(field_err("analytics.ring_capacity", "must be > 0"));
        }
        if self.upload.retry_min_ms == 0 || self.upload.retry_max_ms < self.upload.retry_min_ms {
            return Err(field_err("analytics.upload.retry_min_ms", "must be > 0 and <= retry_max_ms"));
        }
        self.privacy_params()?;
        self.endpoint()?;
        Ok(())
    }

    /// The effective config as an `[analytics]` TOML section.
    pub fn to_toml(&self) -> Result<String, AnalyticsError> {
        let mut t = toml::Table::new();
        t.insert("analytics".into(), toml::Value::try_from(self).map_err(|e| field_err("analytics", e.to_string()))?);
        toml::to_string_pretty(&t).map_err(|e| field_err("analytics", e.to_string()))
    }

    /// Spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.state_dir.join("spool")
    }
}

/// The config file path: `--config`, else `$VIGIL_CONFIG`, else [`DEFAULT_CONFIG_PATH`].
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    cli.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV_CONFIG).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// Sets `analytics.<key>` (dotted, e.g. `dap.leader`, `privacy.epsilon_per_day`) to `value`
/// in the file at `path` (created if missing), keeping everything else in the file. The
/// value is typed by the field it sets; the edit is refused, and the file left as it was,
/// when the result does not validate.
pub fn set_key(path: &Path, key: &str, value: &str) -> Result<AnalyticsConfig, AnalyticsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(AnalyticsError::io(path, e)),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| field_err(&path.display().to_string(), e.to_string()))?;
    let parts: Vec<&str> = key.split('.').collect();
    let field = format!("analytics.{key}");
    // Type the value by what the default config holds at that key.
    let defaults = toml::Value::try_from(AnalyticsConfig::default()).map_err(|e| field_err(&field, e.to_string()))?;
    let mut cur = &defaults;
    for p in &parts {
        cur = cur.get(p).ok_or_else(|| field_err(&field, "no such setting"))?;
    }
    let item: toml_edit::Value = match cur {
        toml::Value::String(_) => value.into(),
        toml::Value::Integer(_) => value.parse::<i64>().map_err(|_| field_err(&field, format!("{value:?} is not an integer")))?.into(),
        toml::Value::Float(_) => value.parse::<f64>().map_err(|_| field_err(&field, format!("{value:?} is not a number")))?.into(),
        toml::Value::Boolean(_) => value.parse::<bool>().map_err(|_| field_err(&field, format!("{value:?} is not true/false")))?.into(),
        _ => return Err(field_err(&field, "is a section, not a value")),
    };
    let mut table = doc.as_table_mut().entry("analytics").or_insert(toml_edit::table()).as_table_mut().ok_or_else(|| field_err("analytics", "is not a table"))?;
    for p in &parts[..parts.len() - 1] {
        table = table.entry(p).or_insert(toml_edit::table()).as_table_mut().ok_or_else(|| field_err(&field, "is not a table"))?;
    }
    table.insert(parts[parts.len() - 1], toml_edit::Item::Value(item));
    let new_text = doc.to_string();
    let cfg = AnalyticsConfig::from_toml(&new_text)?;
    cfg.privacy_params()?;
    // Endpoint fields are checked one by one, so they can be set in any order.
    if !cfg.dap.leader.is_empty() {
        check_url("analytics.dap.leader", &cfg.dap.leader)?;
    }
    if !cfg.dap.helper.is_empty() {
        check_url("analytics.dap.helper", &cfg.dap.helper)?;
    }
    if !cfg.dap.task_id.is_empty() {
        TaskId::from_str(&cfg.dap.task_id).map_err(|e| field_err("analytics.dap.task_id", e))?;
    }
    crate::fsutil::write_atomic(path, new_text.as_bytes())?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_the_daily_budget_at_most_one() {
        let c = AnalyticsConfig::default();
        assert!(c.privacy.epsilon_per_day <= 1.0);
        c.privacy_params().unwrap();
        assert_eq!(AnalyticsConfig::from_toml("[ota]\nx = 1\n").unwrap(), c);
    }

    #[test]
    fn errors_name_the_field() {
        let e = AnalyticsConfig::from_toml("[analytics]\nwindow_secs = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("window_secs"), "{e}");
        let e = AnalyticsConfig::from_toml("[analytics]\nbogus = 1\n").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let mut c = AnalyticsConfig {
            dap: DapConfig { leader: "ftp://x".into(), helper: "http://h".into(), task_id: "AA".into(), time_precision_secs: 60 },
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("analytics.dap.leader"));
        c.dap.leader = "http://l".into();
        assert!(c.validate().unwrap_err().to_string().contains("analytics.dap.task_id"));
    }

    #[test]
    fn set_key_keeps_other_sections_and_refuses_bad_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vigil.toml");
        std::fs::write(&path, "# fleet config\n[ota]\nrepo = \"https://ota\"\n").unwrap();
        set_key(&path, "dap.leader", "http://127.0.0.1:9/").unwrap();
        let c = set_key(&path, "privacy.epsilon_per_day", "0.5").unwrap();
        assert_eq!(c.dap.leader, "http://127.0.0.1:9/");
        assert_eq!(c.privacy.epsilon_per_day, 0.5);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# fleet config") && text.contains("repo = \"https://ota\""), "{text}");
        assert!(set_key(&path, "privacy.epsilon_per_day", "lots").unwrap_err().to_string().contains("epsilon_per_day"));
        // Per report above per day: refused, file unchanged.
        assert!(set_key(&path, "privacy.epsilon_per_report", "0.9").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert!(set_key(&path, "nope", "1").unwrap_err().to_string().contains("no such setting"));
        assert!(set_key(&path, "dap.task_id", "AAAA").unwrap_err().to_string().contains("analytics.dap.task_id"));
        // A bare file name (no directory part) works too.
        let cwd = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let r = set_key(Path::new("vigil.toml"), "window_secs", "60");
        std::env::set_current_dir(cwd).unwrap();
        assert_eq!(r.unwrap().window_secs, 60);
    }
}
