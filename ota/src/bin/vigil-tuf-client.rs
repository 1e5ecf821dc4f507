//! `vigil-tuf-client`: the TUF conformance suite's client-under-test interface over
//! `ota::tuf`.
//!
//! ```text
//! vigil-tuf-client --metadata-dir DIR init TRUSTED_ROOT
//! vigil-tuf-client --metadata-dir DIR --metadata-url URL refresh
//! vigil-tuf-client --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH ...] \
//!     --target-base-url URL --target-dir DIR download
//! ```
//!
//! Exit status 0 when the command fully succeeded, 1 otherwise, with the reason on
//! stderr. HTTP is a minimal blocking HTTP/1.1 GET over plain TCP (the suite serves on
//! loopback), reading at most the length each file is allowed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use ota::tuf::transport::{DirStore, Http, write_atomic};
use ota::tuf::updater::quote;
use ota::tuf::{Limits, Updater};

#[derive(Parser, Debug)]
#[command(name = "vigil-tuf-client", about = "TUF client (conformance suite client-under-test interface)")]
struct Cli {
    /// Directory holding the trusted metadata (root.json, timestamp.json, ...).
    #[arg(long, global = true)]
    metadata_dir: Option<PathBuf>,
    /// Base URL of the repository's metadata.
    #[arg(long, global = true)]
    metadata_url: Option<String>,
    /// Target path to download (repeatable; processed in order).
    #[arg(long, global = true)]
    target_name: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long, global = true)]
    target_base_url: Option<String>,
    /// Directory where verified targets are stored.
    #[arg(long, global = true)]
    target_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Trust TRUSTED_ROOT: copy it into the metadata directory as root.json.
    Init {
        /// The initial trusted root metadata file.
        trusted_root: PathBuf,
    },
    /// Run the top-level update workflow.
    Refresh,
    /// Refresh, then download and verify each --target-name.
    Download,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-tuf-client: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn need<'a, T>(v: &'a Option<T>, flag: &str) -> Result<&'a T, String> {
    v.as_ref().ok_or_else(|| format!("{flag} is required"))
}

fn run(cli: Cli) -> Result<(), String> {
    // The update's start time, fixed once: every expiry check uses it.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| format!("system clock before 1970: {e}"))?
        .as_secs() as i64;
    let dir = need(&cli.metadata_dir, "--metadata-dir")?.clone();
    match cli.cmd {
        Cmd::Init { trusted_root } => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let data = std::fs::read(&trusted_root).map_err(|e| format!("reading {}: {e}", trusted_root.display()))?;
            write_atomic(&dir.join("root.json"), &data)?;
            Ok(())
        }
        Cmd::Refresh => {
            let url = need(&cli.metadata_url, "--metadata-url")?;
            let mut up = updater(url, None, &dir, now)?;
            up.refresh().map_err(|e| e.to_string())
        }
        Cmd::Download => {
            let url = need(&cli.metadata_url, "--metadata-url")?;
            let base = need(&cli.target_base_url, "--target-base-url")?;
            let tdir = need(&cli.target_dir, "--target-dir")?;
            if cli.target_name.is_empty() {
                return Err("--target-name is required".into());
            }
            std::fs::create_dir_all(tdir).map_err(|e| format!("creating {}: {e}", tdir.display()))?;
            let mut up = updater(url, Some(base), &dir, now)?;
            up.refresh().map_err(|e| e.to_string())?;
            for name in &cli.target_name {
                let info = up.target_info(name).map_err(|e| e.to_string())?;
                let file = tdir.join(quote(name));
                if let Ok(existing) = std::fs::read(&file)
                    && info.verify(&existing).is_ok()
                {
                    continue; // already present with matching length and hashes
                }
                let data = up.download_target(&info).map_err(|e| e.to_string())?;
                write_atomic(&file, &data)?;
            }
            Ok(())
        }
    }
}

fn updater(metadata_url: &str, target_url: Option<&String>, dir: &Path, now: i64) -> Result<Updater<Http, DirStore>, String> {
    let remote = Http::new(metadata_url, target_url.map(String::as_str));
    Updater::new(remote, DirStore::new(dir), now, Limits::default()).map_err(|e| e.to_string())
}

