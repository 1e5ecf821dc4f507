//! The few file operations the slot store needs, behind a trait, so the same install,
//! switch, commit and revert code runs on a real directory ([`FsStorage`]) and on a
//! simulated medium that can lose power at any operation ([`SimStorage`]).
//!
//! Names are flat file names inside one directory (no `/`). Nothing written is durable
//! until the file is fsynced, and no create, rename or remove is durable until the
//! directory is fsynced: the slot store is written against exactly that contract, and
//! [`SimStorage`] enforces it when it "cuts the power".

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A failed storage operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The operation failed, naming the operation and the file.
    #[error("{op} {name}: {reason}")]
    Io {
        /// Operation (`write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// File name.
        name: String,
        /// The system's reason.
        reason: String,
    },
    /// The simulated power was cut at this operation; nothing after it runs.
    #[error("power cut at storage operation {0}")]
    PowerCut(u64),
}

/// A directory of files with explicit durability.
pub trait Storage {
    /// Creates or truncates `name` and writes `data` (not durable until [`Storage::fsync`]).
    fn write(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Makes the contents of `name` durable.
    fn fsync(&mut self, name: &str) -> Result<(), StorageError>;
    /// Atomically replaces `to` by `from` (durable after [`Storage::fsync_dir`]).
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError>;
    /// Makes creates, renames and removes in the directory durable.
    fn fsync_dir(&mut self) -> Result<(), StorageError>;
    /// The contents of `name`, or `None` when it does not exist.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Removes `name` (no error when it does not exist).
    fn remove(&mut self, name: &str) -> Result<(), StorageError>;
}

/// Replaces `name` by `data` so that after a power cut at any point the file holds
/// either its old or its new contents: write `name.new`, fsync it, rename it over
/// `name`, fsync the directory.
pub fn write_durable<S: Storage + ?Sized>(s: &mut S, name: &str, data: &[u8]) -> Result<(), StorageError> {
    let tmp = format!("{name}.new");
    s.write(&tmp, data)?;
    s.fsync(&tmp)?;
    s.rename(&tmp, name)?;
    s.fsync_dir()
}

fn check_name(op: &'static str, name: &str) -> Result<(), StorageError> {
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        return Err(StorageError::Io { op, name: name.into(), reason: "not a plain file name".into() });
    }
    Ok(())
}

/// [`Storage`] over a real directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
}

impl FsStorage {
    /// Storage in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::Io { op: "create_dir", name: dir.display().to_string(), reason: e.to_string() })?;
        Ok(FsStorage { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(op: &'static str, name: &str, e: std::io::Error) -> StorageError {
        StorageError::Io { op, name: name.into(), reason: e.to_string() }
    }
}

impl Storage for FsStorage {
    fn write(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        check_name("write", name)?;
        let mut f = std::fs::File::create(self.dir.join(name)).map_err(|e| Self::io("write", name, e))?;
        f.write_all(data).map_err(|e| Self::io("write", name, e))
    }
    fn fsync(&mut self, name: &str) -> Result<(), StorageError> {
        check_name("fsync", name)?;
        let f = std::fs::OpenOptions::new().read(true).open(self.dir.join(name)).map_err(|e| Self::io("fsync", name, e))?;
        f.sync_all().map_err(|e| Self::io("fsync", name, e))
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        check_name("rename", from)?;
        check_name("rename", to)?;
        std::fs::rename(self.dir.join(from), self.dir.join(to)).map_err(|e| Self::io("rename", from, e))
    }
    fn fsync_dir(&mut self) -> Result<(), StorageError> {
        let d = std::fs::File::open(&self.dir).map_err(|e| Self::io("fsync_dir", ".", e))?;
        d.sync_all().map_err(|e| Self::io("fsync_dir", ".", e))
    }
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        check_name("read", name)?;
        match std::fs::read(self.dir.join(name)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io("read", name, e)),
        }
    }
    fn remove(&mut self, name: &str) -> Result<(), StorageError> {
        check_name("remove", name)?;
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io("remove", name, e)),
        }
    }
}

/// What survives a simulated power cut, for data and directory changes not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Only what was fsynced survives (file data and directory entries separately).
    LoseUnsynced,
    /// Everything happened to reach the medium (a legal outcome too).
    KeepAll,
    /// Directory changes reached the medium but un-fsynced file data is torn: only the
    /// first half of it survives (the "rename before data" ordering some file systems allow).
    TornData,
}

/// An in-memory medium with a page cache: file data (by inode) and directory entries
/// are durable only once synced. It counts operations and can cut the power at a
/// chosen one; [`SimStorage::reboot`] then gives the medium as a restart would find it.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    live_dir: BTreeMap<String, u64>,
    live_data: BTreeMap<u64, Vec<u8>>,
    durable_dir: BTreeMap<String, u64>,
    durable_data: BTreeMap<u64, Vec<u8>>,
    next_inode: u64,
    ops: u64,
    cut_at: Option<u64>,
    dead: bool,
}

impl SimStorage {
    /// An empty medium that never loses power.
    pub fn new() -> Self {
        Self::default()
    }

    /// Operations performed (or attempted) so far; cut points are `0..ops()`.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Cuts the power when the operation with index `op` (counted from 0 since this
    /// medium was created or rebooted, as [`SimStorage::ops`] counts) is attempted: that
    /// operation and every later one fail with [`StorageError::PowerCut`].
    pub fn cut_power_at(&mut self, op: u64) {
        self.cut_at = Some(op);
    }

    /// Whether the power has been cut.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// The medium as the next boot finds it, given what survived the cut; the
    /// operation count restarts at 0 and no cut is armed.
    pub fn reboot(&self, mode: CutMode) -> SimStorage {
        let (dir, data) = match mode {
            CutMode::LoseUnsynced => {
                let data = self.durable_dir.values().map(|i| (*i, self.durable_data.get(i).cloned().unwrap_or_default())).collect();
                (self.durable_dir.clone(), data)
            }
            CutMode::KeepAll => (self.live_dir.clone(), self.live_data.clone()),
            CutMode::TornData => {
                let data = self
                    .live_dir
                    .values()
                    .map(|i| {
                        let live = self.live_data.get(i).cloned().unwrap_or_default();
                        let d = match self.durable_data.get(i) {
                            Some(d) if *d == live => live,
                            _ => live[..live.len() / 2].to_vec(),
                        };
                        (*i, d)
                    })
                    .collect::<BTreeMap<_, _>>();
                (self.live_dir.clone(), data)
            }
        };
        SimStorage {
            live_dir: dir.clone(),
            live_data: data.clone(),
            durable_dir: dir,
            durable_data: data,
            next_inode: self.next_inode,
            ops: 0,
            cut_at: None,
            dead: false,
        }
    }

    fn step(&mut self) -> Result<(), StorageError> {
        let n = self.ops;
        self.ops += 1;
        if self.dead || self.cut_at == Some(n) {
            self.dead = true;
            return Err(StorageError::PowerCut(n));
        }
        Ok(())
    }

    fn missing(op: &'static str, name: &str) -> StorageError {
        StorageError::Io { op, name: name.into(), reason: "no such file".into() }
    }

    /// Flips one bit of `name`'s durable and live data (bit rot, for tests).
    pub fn corrupt(&mut self, name: &str, byte: usize) {
        if let Some(i) = self.live_dir.get(name).copied() {
            for d in [self.live_data.get_mut(&i), self.durable_data.get_mut(&i)].into_iter().flatten() {
                if let Some(b) = d.get_mut(byte) {
                    *b ^= 0x10;
                }
            }
        }
    }
}

impl Storage for SimStorage {
    fn write(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        check_name("write", name)?;
        self.step()?;
        let inode = match self.live_dir.get(name) {
            Some(i) => *i,
            None => {
                self.next_inode += 1;
                self.live_dir.insert(name.to_string(), self.next_inode);
                self.next_inode
            }
        };
        self.live_data.insert(inode, data.to_vec());
        Ok(())
    }
    fn fsync(&mut self, name: &str) -> Result<(), StorageError> {
        self.step()?;
        let i = *self.live_dir.get(name).ok_or_else(|| Self::missing("fsync", name))?;
        let d = self.live_data.get(&i).cloned().unwrap_or_default();
        self.durable_data.insert(i, d);
        Ok(())
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        check_name("rename", to)?;
        self.step()?;
        let i = self.live_dir.remove(from).ok_or_else(|| Self::missing("rename", from))?;
        self.live_dir.insert(to.to_string(), i);
        Ok(())
    }
    fn fsync_dir(&mut self) -> Result<(), StorageError> {
        self.step()?;
        self.durable_dir = self.live_dir.clone();
        Ok(())
    }
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.step()?;
        Ok(self.live_dir.get(name).map(|i| self.live_data.get(i).cloned().unwrap_or_default()))
    }
    fn remove(&mut self, name: &str) -> Result<(), StorageError> {
        self.step()?;
        self.live_dir.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_data_and_entries_are_lost() {
        let mut s = SimStorage::new();
        s.write("a", b"one").unwrap();
        let r = s.reboot(CutMode::LoseUnsynced);
        assert!(r.live_dir.is_empty(), "a create without fsync_dir must not survive");
        s.fsync_dir().unwrap();
        let mut r = s.reboot(CutMode::LoseUnsynced);
        assert_eq!(r.read("a").unwrap(), Some(Vec::new()), "entry durable, data not fsynced");
        s.fsync("a").unwrap();
        let mut r = s.reboot(CutMode::LoseUnsynced);
        assert_eq!(r.read("a").unwrap(), Some(b"one".to_vec()));
    }

    #[test]
    fn write_durable_is_old_or_new_at_every_cut() {
        let mut base = SimStorage::new();
        write_durable(&mut base, "f", b"old contents").unwrap();
        let base = base.reboot(CutMode::LoseUnsynced);
        let mut probe = base.clone();
        write_durable(&mut probe, "f", b"new contents!").unwrap();
        for cut in 0..probe.ops() {
            for mode in [CutMode::LoseUnsynced, CutMode::KeepAll, CutMode::TornData] {
                let mut s = base.clone();
                s.cut_power_at(cut);
                assert!(matches!(write_durable(&mut s, "f", b"new contents!"), Err(StorageError::PowerCut(_))));
                let got = s.reboot(mode).read("f").unwrap().unwrap();
                assert!(got == b"old contents" || got == b"new contents!", "cut {cut} {mode:?}: {got:?}");
            }
        }
    }
}
