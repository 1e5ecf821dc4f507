//! The sequence lock over atomic words, shared by the in-process cell and the segment.
//!
//! One writer. The sequence counter is odd while a write is in progress. The writer
//! never waits: it bumps the counter, stores the words, bumps it again. A reader copies
//! the words between two loads of the counter and keeps the copy only if both loads are
//! equal and even; otherwise it retries a bounded number of times and gives up
//! (`Busy`), so neither side ever blocks the other. All accesses are atomic (relaxed
//! data, release/acquire fences), so the protocol is data-race free in the Rust/C11
//! memory model, including across processes.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use zerocopy::{FromBytes, IntoBytes};

use crate::snapshot::{SNAPSHOT_WORDS, Snapshot, checksum};

/// Why a read returned no snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Nothing was published yet.
    #[error("no snapshot published yet")]
    Empty,
    /// Every attempt overlapped a write; try again on the next tick.
    #[error("the writer was publishing during every attempt")]
    Busy,
    /// A consistent copy failed its checksum (a writer not following the protocol).
    #[error("snapshot {sequence} failed its checksum")]
    Corrupt {
        /// The snapshot's sequence number.
        sequence: u64,
    },
}

/// Attempts a reader makes before reporting [`ReadError::Busy`].
pub const READ_ATTEMPTS: usize = 64;

/// Publishes `s` into `words` under `seq`. Single writer only.
pub(crate) fn write(seq: &AtomicU64, words: &[AtomicU64], s: &Snapshot) {
    let start = seq.load(Ordering::Relaxed);
    // Odd while writing; a writer that died mid-write left it odd: skip to the next odd.
    let odd = if start.is_multiple_of(2) { start.wrapping_add(1) } else { start.wrapping_add(2) };
    seq.store(odd, Ordering::Relaxed);
    fence(Ordering::Release);
    for (dst, src) in words.iter().zip(s.as_bytes().chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(src);
        dst.store(u64::from_ne_bytes(a), Ordering::Relaxed);
    }
    seq.store(odd.wrapping_add(1), Ordering::Release);
}

/// One read attempt: `Some` if the copy is consistent.
fn try_read(seq: &AtomicU64, words: &[AtomicU64], out: &mut [u64; SNAPSHOT_WORDS]) -> Option<u64> {
    let s1 = seq.load(Ordering::Acquire);
    if s1 & 1 == 1 {
        return None;
    }
    for (o, w) in out.iter_mut().zip(words) {
        *o = w.load(Ordering::Relaxed);
    }
    fence(Ordering::Acquire);
    let s2 = seq.load(Ordering::Relaxed);
    (s1 == s2).then_some(s1)
}

/// Reads the newest snapshot, retrying up to [`READ_ATTEMPTS`] times.
pub(crate) fn read(seq: &AtomicU64, words: &[AtomicU64]) -> Result<Snapshot, ReadError> {
    let mut buf = [0u64; SNAPSHOT_WORDS];
    for _ in 0..READ_ATTEMPTS {
        match try_read(seq, words, &mut buf) {
            Some(0) => return Err(ReadError::Empty),
            Some(_) => {
                let s = Snapshot::read_from_bytes(buf.as_bytes()).map_err(|_| ReadError::Corrupt { sequence: 0 })?;
                if s.checksum != checksum(&s) {
                    return Err(ReadError::Corrupt { sequence: s.sequence });
                }
                return Ok(s);
            }
            None => std::hint::spin_loop(),
        }
    }
    Err(ReadError::Busy)
}
