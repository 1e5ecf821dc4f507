//! The shared-memory segment: a 64-byte header followed by one [`Snapshot`].
//!
//! ```text
//! offset  size  field            value
//!      0     8  magic            "VIGILSNP"
//!      8     4  version          1
//!     12     4  header_size      64
//!     16     4  snapshot_size    2480
//!     20     4  max_objects      64
//!     24     4  max_cameras      8
//!     28     4  reserved         0
//!     32     8  seq              sequence lock: odd while the writer is copying
//!     40    24  reserved         0
//!     64  2480  snapshot         struct vigil_snapshot (control/include/vigil_snapshot.h)
//! ```
//!
//! The segment is a file (normally under `/dev/shm`) mapped with `memmap2`. Every access
//! to the mapped memory after creation goes through `AtomicU64` words: the sequence lock
//! of [`crate::seqlock`]. This module holds the crate's only `unsafe` code: turning the
//! mapping into a slice of atomics.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::seqlock::{self, ReadError};
use crate::snapshot::{MAX_CAMERAS, MAX_OBJECTS, SNAPSHOT_SIZE, Snapshot, checksum};

/// Bytes 0..8 of a segment.
pub const MAGIC: [u8; 8] = *b"VIGILSNP";
/// Layout version.
pub const VERSION: u32 = 1;
/// Header size in bytes; the snapshot starts here.
pub const HEADER_SIZE: usize = 64;
/// Offset of the sequence-lock counter.
pub const SEQ_OFFSET: usize = 32;
/// Total segment size.
pub const SEGMENT_SIZE: usize = HEADER_SIZE + SNAPSHOT_SIZE;

/// Opening or creating a segment failed; names the path and, for layout problems, the
/// field and its offset.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// The file could not be opened, sized or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The segment file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a segment of this layout.
    #[error("{path}: {field} at offset {offset}: found {found}, expected {expected}")]
    Layout {
        /// The segment file.
        path: PathBuf,
        /// The header field.
        field: &'static str,
        /// Its byte offset.
        offset: usize,
        /// What the file holds.
        found: String,
        /// What this build expects.
        expected: String,
    },
}

/// The mapping seen as 64-bit atomic words.
struct Words {
    map: MmapRaw,
}

impl Words {
    fn new(map: MmapRaw, path: &Path) -> Result<Self, ShmError> {
        if map.len() < SEGMENT_SIZE {
            return Err(ShmError::Layout {
                path: path.to_owned(),
                field: "file size",
                offset: 0,
                found: map.len().to_string(),
                expected: format!("at least {SEGMENT_SIZE}"),
            });
        }
        // mmap returns page-aligned memory; checked anyway because `words` relies on it.
        if map.as_ptr().align_offset(std::mem::align_of::<AtomicU64>()) != 0 {
            return Err(ShmError::Io { path: path.to_owned(), source: std::io::Error::other("mapping is not 8-byte aligned") });
        }
        Ok(Words { map })
    }

    /// All words of the segment.
    fn all(&self) -> &[AtomicU64] {
        // SAFETY: the pointer comes from a live mapping owned by `self.map` (so it stays
        // valid for the lifetime of `&self`), it is 8-byte aligned (checked in `new`), and
        // `SEGMENT_SIZE / 8` words lie within its length (checked in `new`). `AtomicU64`
        // has the size and alignment of `u64`, and every access to this memory from this
        // process goes through the atomics (no `&[u8]` view is ever created), so
        // concurrent writes by another process are atomic accesses, not data races. A
        // read-only mapping is only ever loaded from (`ShmReader` never stores), and
        // 64-bit atomic loads on targets with native 64-bit atomics do not write.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), SEGMENT_SIZE / 8) }
    }

    fn seq(&self) -> &AtomicU64 {
        &self.all()[SEQ_OFFSET / 8]
    }

    fn snapshot(&self) -> &[AtomicU64] {
        &self.all()[HEADER_SIZE / 8..]
    }
}

fn header_words() -> [u64; HEADER_SIZE / 8] {
    let mut h = [0u8; HEADER_SIZE];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_ne_bytes());
    h[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_ne_bytes());
    h[16..20].copy_from_slice(&(SNAPSHOT_SIZE as u32).to_ne_bytes());
    h[20..24].copy_from_slice(&(MAX_OBJECTS as u32).to_ne_bytes());
    h[24..28].copy_from_slice(&(MAX_CAMERAS as u32).to_ne_bytes());
    let mut w = [0u64; HEADER_SIZE / 8];
    for (o, c) in w.iter_mut().zip(h.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        *o = u64::from_ne_bytes(a);
    }
    w
}

/// The writer of a segment (one per segment).
pub struct ShmPublisher {
    words: Words,
    path: PathBuf,
    sequence: u64,
}

impl std::fmt::Debug for ShmPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmPublisher").field("path", &self.path).field("sequence", &self.sequence).finish()
    }
}

impl ShmPublisher {
    /// Creates (or takes over) the segment file at `path`, e.g. `/dev/shm/vigil-snapshot`.
    /// Start-up only: this opens, sizes and maps the file.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, ShmError> {
        let path = path.as_ref().to_owned();
        let io = |source| ShmError::Io { path: path.clone(), source };
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        file.set_len(SEGMENT_SIZE as u64).map_err(io)?;
        let map = MmapOptions::new().len(SEGMENT_SIZE).map_raw(&file).map_err(io)?;
        let words = Words::new(map, &path)?;
        // Mark "writing" while the header is (re)written, so a reader of an older run
        // sees an odd counter and retries rather than trusting a half-written header.
        let seq = words.seq().load(Ordering::Relaxed);
        let busy = if seq.is_multiple_of(2) { seq.wrapping_add(1) } else { seq };
        words.seq().store(busy, Ordering::Release);
        for (i, w) in header_words().into_iter().enumerate() {
            if i != SEQ_OFFSET / 8 {
                words.all()[i].store(w, Ordering::Relaxed);
            }
        }
        for w in words.snapshot() {
            w.store(0, Ordering::Relaxed);
        }
        // Back to "nothing published": 0.
        words.seq().store(0, Ordering::Release);
        Ok(ShmPublisher { words, path, sequence: 0 })
    }

    /// Stamps `s` with the next sequence number and its checksum, and publishes it.
    /// Wait-free: a fixed number of atomic stores, whatever the readers do.
    pub fn publish(&mut self, s: &mut Snapshot) {
        self.sequence += 1;
        s.sequence = self.sequence;
        s.checksum = checksum(s);
        seqlock::write(self.words.seq(), self.words.snapshot(), s);
    }

    /// The segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A reader of a segment (any number, in any process).
pub struct ShmReader {
    words: Words,
}

impl std::fmt::Debug for ShmReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmReader").finish_non_exhaustive()
    }
}

impl ShmReader {
    /// Maps the segment read-only and checks its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ShmError> {
        let path = path.as_ref();
        let io = |source| ShmError::Io { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < SEGMENT_SIZE as u64 {
            return Err(ShmError::Layout {
                path: path.to_owned(),
                field: "file size",
                offset: 0,
                found: len.to_string(),
                expected: format!("at least {SEGMENT_SIZE}"),
            });
        }
        let map = MmapOptions::new().len(SEGMENT_SIZE).map_raw_read_only(&file).map_err(io)?;
        let words = Words::new(map, path)?;
        let expect = header_words();
        let all = words.all();
        let field = |i: usize| -> (&'static str, usize) {
            match i {
                0 => ("magic", 0),
                1 => ("version/header_size", 8),
                2 => ("snapshot_size/max_objects", 16),
                _ => ("max_cameras/reserved", 24),
            }
        };
        for i in 0..4 {
            let found = all[i].load(Ordering::Acquire);
            if found != expect[i] {
                let (name, offset) = field(i);
                let show = |w: u64| {
                    let b = w.to_ne_bytes();
                    if i == 0 {
                        format!("{:?}", String::from_utf8_lossy(&b))
                    } else {
                        let lo = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                        let hi = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
                        format!("{lo}/{hi}")
                    }
                };
                return Err(ShmError::Layout {
                    path: path.to_owned(),
                    field: name,
                    offset,
                    found: show(found),
                    expected: show(expect[i]),
                });
            }
        }
        Ok(ShmReader { words })
    }

    /// The newest snapshot; never waits for the writer (see [`ReadError::Busy`]).
    pub fn read(&self) -> Result<Snapshot, ReadError> {
        seqlock::read(self.words.seq(), self.words.snapshot())
    }
}
