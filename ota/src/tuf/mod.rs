//! TUF 1.0 client verification core (The Update Framework, specification 1.0.x).
//!
//! No I/O happens in this module: metadata bytes and an update start time go in,
//! decisions come out (the one exception is [`transport`], the file and HTTP adapters
//! the binary and the device use, kept apart from the checks). [`updater::Updater`] drives the client workflow of the
//! specification's section 5 over a [`updater::Remote`] (fetch with a length cap) and a
//! [`updater::Store`] (trusted metadata by role name) supplied by the caller; the
//! `vigil-tuf-client` binary supplies HTTP and a directory.
//!
//! Defences, each rejected with a typed [`TufError`] whose message gives the reason:
//! arbitrary software and wrong/insufficient signatures (thresholds, each distinct key
//! counted once), rollback (versions never go back), freeze (expiry against a start time
//! fixed once per update), mix-and-match (timestamp -> snapshot -> targets version, length
//! and hash cross-checks), endless data (length caps on every fetch), fast-forward
//! (stored timestamp and snapshot discarded when their keys rotate in root), and
//! delegation loops (bounded pre-order search). There is no way to bypass a check.

pub mod error;
pub mod json;
pub mod keys;
pub mod metadata;
pub mod transport;
pub mod trusted;
pub mod updater;

pub use error::TufError;
pub use metadata::{Metadata, TargetFile};
pub use trusted::TrustedSet;
pub use updater::{FetchError, FetchKind, Limits, Remote, Store, Updater};
