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

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use ota::tuf::updater::quote;
use ota::tuf::{FetchError, FetchKind, Limits, Remote, Store, Updater};

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
    let remote = Http { metadata_base: with_slash(metadata_url), target_base: target_url.map(|u| with_slash(u)) };
    Updater::new(remote, DirStore { dir: dir.to_path_buf() }, now, Limits::default()).map_err(|e| e.to_string())
}

fn with_slash(u: &str) -> String {
    if u.ends_with('/') { u.to_string() } else { format!("{u}/") }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp-vigil");
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent()
            && let Ok(d) = std::fs::File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    res.map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Trusted metadata as `DIR/ROLE.json`.
struct DirStore {
    dir: PathBuf,
}

impl Store for DirStore {
    fn load(&mut self, role: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(format!("{role}.json"))).ok()
    }
    fn save(&mut self, role: &str, data: &[u8]) -> Result<(), String> {
        write_atomic(&self.dir.join(format!("{role}.json")), data)
    }
    fn remove(&mut self, role: &str) -> Result<(), String> {
        match std::fs::remove_file(self.dir.join(format!("{role}.json"))) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Minimal blocking HTTP/1.1 client for plain `http://` URLs.
struct Http {
    metadata_base: String,
    target_base: Option<String>,
}

const MAX_HEADER_BYTES: usize = 64 * 1024;

impl Remote for Http {
    fn fetch(&mut self, kind: FetchKind, path: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let base = match kind {
            FetchKind::Metadata => &self.metadata_base,
            FetchKind::Target => self.target_base.as_ref().ok_or_else(|| FetchError::Other("no --target-base-url".into()))?,
        };
        // Target paths may hold characters that are not valid in a URL path.
        let path = match kind {
            FetchKind::Metadata => path.to_string(),
            FetchKind::Target => path.split('/').map(quote).collect::<Vec<_>>().join("/"),
        };
        http_get(&format!("{base}{path}"), max_len)
    }
}

fn http_get(url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
    let other = |m: String| FetchError::Other(format!("{url}: {m}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| other("only http:// URLs are supported".into()))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:80") };
    let mut s = TcpStream::connect(&addr).map_err(|e| other(format!("connect {addr}: {e}")))?;
    let timeout = Some(Duration::from_secs(30));
    s.set_read_timeout(timeout).map_err(|e| other(e.to_string()))?;
    s.set_write_timeout(timeout).map_err(|e| other(e.to_string()))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nAccept-Encoding: identity\r\nUser-Agent: vigil-tuf-client/{}\r\n\r\n", env!("CARGO_PKG_VERSION"));
    s.write_all(req.as_bytes()).map_err(|e| other(format!("send: {e}")))?;

    // Headers.
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Err(other("response headers too long".into()));
        }
        let n = s.read(&mut chunk).map_err(|e| other(format!("read: {e}")))?;
        if n == 0 {
            return Err(other("connection closed before headers ended".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| other("bad status line".into()))?;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                content_length = Some(v.parse().map_err(|_| other("bad Content-Length".into()))?);
            } else if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    if status == 403 || status == 404 {
        return Err(FetchError::NotFound);
    }
    if status != 200 {
        return Err(other(format!("HTTP status {status}")));
    }
    if content_length.is_some_and(|l| l > max_len) {
        return Err(FetchError::TooLong);
    }
    // Body: never hold more than the cap (+ chunk framing) in memory.
    let cap = max_len.saturating_add(1);
    let framing_allowance: u64 = if chunked { 64 * 1024 } else { 0 };
    let mut body: Vec<u8> = buf[header_end..].to_vec();
    loop {
        if body.len() as u64 > cap.saturating_add(framing_allowance) {
            return Err(FetchError::TooLong);
        }
        if let Some(l) = content_length
            && body.len() as u64 >= l
        {
            break;
        }
        let n = s.read(&mut chunk).map_err(|e| other(format!("read: {e}")))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if chunked {
        body = dechunk(&body).ok_or_else(|| other("bad chunked encoding".into()))?;
    }
    if let Some(l) = content_length {
        if (body.len() as u64) < l {
            return Err(other(format!("body ended after {} of {l} bytes", body.len())));
        }
        body.truncate(l as usize);
    }
    if body.len() as u64 > max_len {
        return Err(FetchError::TooLong);
    }
    Ok(body)
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let i = b.windows(2).position(|w| w == b"\r\n")?;
        let size_txt = std::str::from_utf8(&b[..i]).ok()?;
        let size = usize::from_str_radix(size_txt.split(';').next()?.trim(), 16).ok()?;
        b = &b[i + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}
