//! Typed rejections. Every variant's message says why, naming the role or file.

/// Why metadata, a target, or a step of the update workflow was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    /// The document is not well-formed TUF metadata.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// File or role being read.
        what: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The metadata's `_type` is not the one expected at this step.
    #[error("wrong metadata type: expected {expected}, got {got}")]
    WrongType {
        /// The type the workflow asked for.
        expected: String,
        /// The type the document declares.
        got: String,
    },
    /// Fewer than `threshold` distinct trusted keys produced a valid signature.
    #[error("{role}: signature threshold not met: {valid} of {threshold} required distinct keys signed ({detail})")]
    ThresholdNotMet {
        /// The role whose metadata was checked.
        role: String,
        /// Distinct keys with a valid signature.
        valid: u32,
        /// Keys required.
        threshold: u32,
        /// Per-key notes (unknown key, bad signature, duplicate key).
        detail: String,
    },
    /// The metadata expired before the update's fixed start time.
    #[error("{role} expired: expires {expires} (unix {expires_unix}) is not after the update start time unix {now}")]
    Expired {
        /// Role.
        role: String,
        /// The `expires` field as written.
        expires: String,
        /// `expires` in seconds since the epoch.
        expires_unix: i64,
        /// The update's start time in seconds since the epoch.
        now: i64,
    },
    /// A version went backwards (rollback attack) or a root skipped versions.
    #[error("{role} rollback: new version {new} is lower than trusted version {trusted}")]
    Rollback {
        /// Role (or `snapshot meta for X`).
        role: String,
        /// The version already trusted.
        trusted: u64,
        /// The version offered.
        new: u64,
    },
    /// A version does not match what the referring metadata says (mix-and-match).
    #[error("{role} version mismatch: expected version {expected} ({source_role} says so), got {got}")]
    VersionMismatch {
        /// The role checked.
        role: String,
        /// Who stated the expected version.
        source_role: String,
        /// The version required.
        expected: u64,
        /// The version found.
        got: u64,
    },
    /// Length or hash does not match what trusted metadata states.
    #[error("{what}: {reason}")]
    LengthOrHashMismatch {
        /// File checked.
        what: String,
        /// Which length or hash differs.
        reason: String,
    },
    /// A download exceeded the length allowed for it (endless-data attack).
    #[error("{what}: data exceeds the maximum length of {max} bytes")]
    TooLong {
        /// File fetched.
        what: String,
        /// The cap in bytes.
        max: u64,
    },
    /// Something that must be listed is missing (e.g. a role in snapshot meta).
    #[error("{what}: {reason}")]
    Missing {
        /// What was being looked up.
        what: String,
        /// What is missing.
        reason: String,
    },
    /// The workflow was driven out of order (e.g. snapshot before timestamp).
    #[error("update order: {0}")]
    Order(String),
    /// Fetching a file failed.
    #[error("fetching {what} failed: {reason}")]
    Fetch {
        /// File fetched.
        what: String,
        /// Transport's reason.
        reason: String,
    },
    /// No trusted targets metadata lists the target path.
    #[error("target {0:?} not found in any trusted targets metadata")]
    TargetNotFound(String),
    /// The local metadata store failed.
    #[error("local store: {0}")]
    Store(String),
}

impl TufError {
    pub(crate) fn malformed(what: impl Into<String>, reason: impl Into<String>) -> Self {
        TufError::Malformed { what: what.into(), reason: reason.into() }
    }
}
