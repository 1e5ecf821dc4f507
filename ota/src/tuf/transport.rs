//! The I/O adapters for [`super::Updater`]: a directory [`DirStore`] for trusted
//! metadata and a minimal blocking HTTP/1.1 [`Http`] remote for plain `http://` URLs.
//! This is the only part of `ota::tuf` that touches files or sockets; the verification
//! core never calls it directly.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::updater::{FetchError, FetchKind, Remote, Store, quote};

/// Writes `data` to `path` power-cut safely: temporary file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
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

/// Trusted metadata kept as `DIR/ROLE.json` (role names already URL-encoded by the updater).
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// A store over `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirStore { dir: dir.into() }
    }
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

/// Minimal blocking HTTP/1.1 client for plain `http://` URLs (loopback tests, demos,
/// and repositories behind a local proxy). Every read is capped at the length the
/// updater allows; a 403 or 404 is [`FetchError::NotFound`].
#[derive(Debug, Clone)]
pub struct Http {
    metadata_base: String,
    target_base: Option<String>,
    timeout: Duration,
}

impl Http {
    /// A remote with a metadata base URL and, for downloads, a target base URL.
    pub fn new(metadata_base: &str, target_base: Option<&str>) -> Self {
        Http { metadata_base: with_slash(metadata_base), target_base: target_base.map(with_slash), timeout: Duration::from_secs(30) }
    }
}

fn with_slash(u: &str) -> String {
    if u.ends_with('/') { u.to_string() } else { format!("{u}/") }
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
        http_get(&format!("{base}{path}"), max_len, self.timeout)
    }
}

/// GETs `url`, reading at most `max_len` body bytes.
pub fn http_get(url: &str, max_len: u64, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    let other = |m: String| FetchError::Other(format!("{url}: {m}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| other("only http:// URLs are supported".into()))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:80") };
    let mut s = TcpStream::connect(&addr).map_err(|e| other(format!("connect {addr}: {e}")))?;
    let timeout = Some(timeout);
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
