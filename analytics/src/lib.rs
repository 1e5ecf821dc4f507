//! Federated analytics that never touch the hot path.
//!
//! `analytics` owns the metric tap (fixed-size events, `try_push` into a bounded ring,
//! counted drops), the low-priority aggregator (sketches, counters, histograms),
//! differential privacy with a per-vehicle budget, Prio encoding, the bounded on-disk
//! spool and the asynchronous DAP uploader.
//!
//! * Hot path: [`MetricsTap::record`] (wait-free, no allocation, no lock, no syscall).
//! * Service: [`Analytics::start`] with an [`AnalyticsConfig`]; [`Analytics::tap`] per
//!   producing thread.
//! * Shadow evaluation: [`ShadowCompare::compare`] turns champion/challenger detections of a
//!   frame into events.
//! * Fleet side (tests, demos): [`fleet::InProcessAggregators`], [`fleet::LoopbackDap`].
#![forbid(unsafe_code)]

pub mod config;
pub mod dap;
pub mod event;
pub mod fleet;
pub mod fsutil;
pub mod messages;
pub mod metrics;
pub mod privacy;
pub mod service;
pub mod shadow;
pub mod sim;
pub mod spool;
pub mod tap;

use std::path::{Path, PathBuf};

pub use config::AnalyticsConfig;
pub use event::{Event, EventKind};
pub use service::{Analytics, Status};
pub use shadow::{ShadowCompare, ShadowDetection, ShadowResult};
pub use tap::MetricsTap;

/// Errors of the analytics crate. Each names the file or field it is about.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// An I/O error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A state file that does not parse.
    #[error("{path}: corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the offset where known.
        reason: String,
    },
    /// A bad configuration value.
    #[error("config {field}: {reason}")]
    Config {
        /// The field, e.g. `analytics.dap.task_id`.
        field: String,
        /// Why.
        reason: String,
    },
    /// The day's privacy budget cannot cover a release.
    #[error("privacy budget exhausted: {left_micro} micro-epsilon left today, {needed_micro} needed")]
    BudgetExhausted {
        /// Left today.
        left_micro: u64,
        /// Needed for the release.
        needed_micro: u64,
    },
    /// Noise sampling failed.
    #[error("privacy: {0}")]
    Privacy(String),
    /// Prio/DAP encoding or decoding failed.
    #[error("encoding: {0}")]
    Encode(String),
    /// The service has stopped.
    #[error("analytics service stopped")]
    Stopped,
}

impl AnalyticsError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_is_small_and_copy() {
        fn is_copy<T: Copy>() {}
        is_copy::<crate::Event>();
        assert!(std::mem::size_of::<crate::Event>() <= 32, "{}", std::mem::size_of::<crate::Event>());
    }
}
