//! Wait-free publication inside the process.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::seqlock::{self, ReadError};
use crate::snapshot::{SNAPSHOT_WORDS, Snapshot, checksum};

#[derive(Debug)]
struct Cell {
    seq: AtomicU64,
    words: Box<[AtomicU64]>,
}

/// The single writer of an in-process snapshot channel.
#[derive(Debug)]
pub struct Publisher {
    cell: Arc<Cell>,
    sequence: u64,
}

/// A reader of an in-process snapshot channel; clone one per reader thread.
#[derive(Debug, Clone)]
pub struct Reader {
    cell: Arc<Cell>,
}

/// Creates a channel. The only allocation; publishing and reading allocate nothing.
pub fn channel() -> (Publisher, Reader) {
    let cell = Arc::new(Cell { seq: AtomicU64::new(0), words: (0..SNAPSHOT_WORDS).map(|_| AtomicU64::new(0)).collect() });
    (Publisher { cell: Arc::clone(&cell), sequence: 0 }, Reader { cell })
}

impl Publisher {
    /// Stamps `s` with the next sequence number and its checksum, and publishes it.
    /// Wait-free: a fixed number of atomic stores, whatever the readers do.
    pub fn publish(&mut self, s: &mut Snapshot) {
        self.sequence += 1;
        s.sequence = self.sequence;
        s.checksum = checksum(s);
        seqlock::write(&self.cell.seq, &self.cell.words, s);
    }

    /// Sequence number of the last publication.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl Reader {
    /// The newest snapshot. Never waits for the writer: after a bounded number of
    /// attempts that overlap writes it returns [`ReadError::Busy`].
    pub fn read(&self) -> Result<Snapshot, ReadError> {
        seqlock::read(&self.cell.seq, &self.cell.words)
    }
}
