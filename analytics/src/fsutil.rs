//! Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.

use std::io::Write;
use std::path::Path;

use crate::AnalyticsError;

/// Suffix of temporary files; a crash can leave them behind and readers ignore them.
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` atomically: after a crash at any instant `path` holds either
/// its old content or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AnalyticsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| AnalyticsError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| AnalyticsError::io(&tmp, e))?;
    f.sync_all().map_err(|e| AnalyticsError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| AnalyticsError::io(path, e))?;
    sync_dir(dir)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), AnalyticsError> {
    let d = std::fs::File::open(dir).map_err(|e| AnalyticsError::io(dir, e))?;
    d.sync_all().map_err(|e| AnalyticsError::io(dir, e))
}
