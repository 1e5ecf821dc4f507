//! The model artifact as the OTA path sees it: a sequence of named tensors.
//!
//! The real `.vplan` belongs to the `kernels` crate (being written in parallel). Until
//! it lands, OTA ships and tests against this small tensor archive, which has the same
//! shape that matters to updates (a header, then named tensors of known element type,
//! then an integrity trailer). [`TensorArchive::parse`] is also how the delta encoder
//! finds tensor boundaries; a file it cannot parse is diffed as one opaque blob.
//!
//! ```text
//! "VTAR"  u32 format version (1)  u32 tensor count
//! per tensor: u16 name length, name (UTF-8), u8 dtype, u64 byte length, bytes
//! trailer: sha256 of everything before it (32 bytes)
//! ```
//! All integers little-endian. dtype: 0 = i8, 1 = u8, 2 = i32, 3 = f32, 4 = f16.

use sha2::{Digest, Sha256};

/// Magic bytes at offset 0.
pub const MAGIC: &[u8; 4] = b"VTAR";
/// Format version written and accepted.
pub const FORMAT_VERSION: u32 = 1;
/// Most tensors accepted (bounds parsing work on hostile input).
pub const MAX_TENSORS: u32 = 65_536;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 32-bit integer.
    I32,
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::F16 => 2,
            DType::I32 | DType::F32 => 4,
        }
    }
    fn code(self) -> u8 {
        match self {
            DType::I8 => 0,
            DType::U8 => 1,
            DType::I32 => 2,
            DType::F32 => 3,
            DType::F16 => 4,
        }
    }
    fn from_code(c: u8) -> Option<DType> {
        Some(match c {
            0 => DType::I8,
            1 => DType::U8,
            2 => DType::I32,
            3 => DType::F32,
            4 => DType::F16,
            _ => return None,
        })
    }
}

/// Why bytes are not a valid archive, with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tensor archive, byte {offset}: {reason}")]
pub struct ArtifactError {
    /// Where reading stopped.
    pub offset: usize,
    /// What is wrong there.
    pub reason: String,
}

/// Where one tensor lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpan {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Offset of the tensor's record header (name length field).
    pub record_offset: usize,
    /// Offset of the tensor's data.
    pub data_offset: usize,
    /// Data length in bytes.
    pub len: usize,
}

/// A parsed (borrowed) archive: the tensor table over the original bytes.
#[derive(Debug, Clone)]
pub struct TensorArchive<'a> {
    bytes: &'a [u8],
    tensors: Vec<TensorSpan>,
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ArtifactError> {
        let end = self.i.checked_add(n).filter(|e| *e <= self.b.len()).ok_or_else(|| ArtifactError {
            offset: self.i,
            reason: format!("{what}: needs {n} bytes, {} left", self.b.len().saturating_sub(self.i)),
        })?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }
    fn u16(&mut self, what: &str) -> Result<u16, ArtifactError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap_or([0; 2])))
    }
    fn u32(&mut self, what: &str) -> Result<u32, ArtifactError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap_or([0; 4])))
    }
    fn u64(&mut self, what: &str) -> Result<u64, ArtifactError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap_or([0; 8])))
    }
}

impl<'a> TensorArchive<'a> {
    /// Parses the tensor table and checks the trailer hash.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArtifactError> {
        let mut r = Reader { b: bytes, i: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(ArtifactError { offset: 0, reason: "bad magic (not a VTAR tensor archive)".into() });
        }
        let v = r.u32("format version")?;
        if v != FORMAT_VERSION {
            return Err(ArtifactError { offset: 4, reason: format!("format version {v} not supported (expected {FORMAT_VERSION})") });
        }
        let n = r.u32("tensor count")?;
        if n > MAX_TENSORS {
            return Err(ArtifactError { offset: 8, reason: format!("tensor count {n} exceeds {MAX_TENSORS}") });
        }
        let mut tensors = Vec::with_capacity(n as usize);
        for t in 0..n {
            let record_offset = r.i;
            let nl = r.u16("tensor name length")? as usize;
            let name_off = r.i;
            let name = std::str::from_utf8(r.take(nl, "tensor name")?)
                .map_err(|_| ArtifactError { offset: name_off, reason: format!("tensor {t}: name is not UTF-8") })?
                .to_string();
            let dt_off = r.i;
            let code = r.take(1, "dtype")?[0];
            let dtype = DType::from_code(code).ok_or_else(|| ArtifactError { offset: dt_off, reason: format!("tensor {name:?}: unknown dtype {code}") })?;
            let len_off = r.i;
            let len = usize::try_from(r.u64("tensor length")?).map_err(|_| ArtifactError { offset: len_off, reason: "tensor length too large".into() })?;
            if len % dtype.size() != 0 {
                return Err(ArtifactError { offset: len_off, reason: format!("tensor {name:?}: {len} bytes is not a whole number of {dtype:?} elements") });
            }
            let data_offset = r.i;
            r.take(len, &format!("tensor {name:?} data"))?;
            tensors.push(TensorSpan { name, dtype, record_offset, data_offset, len });
        }
        let body_end = r.i;
        let trailer = r.take(32, "sha256 trailer")?;
        if r.i != bytes.len() {
            return Err(ArtifactError { offset: r.i, reason: "trailing bytes after the sha256 trailer".into() });
        }
        if Sha256::digest(&bytes[..body_end]).as_slice() != trailer {
            return Err(ArtifactError { offset: body_end, reason: "sha256 trailer does not match the contents".into() });
        }
        Ok(TensorArchive { bytes, tensors })
    }

    /// The tensors in file order.
    pub fn tensors(&self) -> &[TensorSpan] {
        &self.tensors
    }

    /// The data of tensor `t`.
    pub fn data(&self, t: &TensorSpan) -> &'a [u8] {
        &self.bytes[t.data_offset..t.data_offset + t.len]
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&TensorSpan> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Writes an archive from `(name, dtype, bytes)` tensors.
pub fn write_archive(tensors: &[(&str, DType, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    for (name, dtype, data) in tensors {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(dtype.code());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    let h = Sha256::digest(&out);
    out.extend_from_slice(&h);
    out
}

/// The smoke test run on a verified artifact in the inactive slot before the switch.
///
/// The production implementation loads the `.vplan` with the `kernels` runtime, runs one
/// inference on a fixed input and checks the outputs are finite and of the expected
/// shape; it plugs in here (implement this trait next to the runtime and pass it to
/// [`crate::client::Verified::smoke_test`]). `ota` itself does not depend on `kernels`.
pub trait SmokeTest {
    /// `Ok` when `artifact` loads and runs; otherwise the reason.
    fn run(&self, artifact: &[u8]) -> Result<(), String>;
}

/// The stand-in smoke test over [`TensorArchive`]: the archive parses, its trailer hash
/// matches, it has at least one tensor, every listed required tensor is present and
/// non-empty, and every floating-point tensor is finite (a NaN scale is the classic
/// broken quantisation).
#[derive(Debug, Clone, Default)]
pub struct ArchiveSmokeTest {
    /// Tensors that must be present.
    pub required: Vec<String>,
}

impl SmokeTest for ArchiveSmokeTest {
    fn run(&self, artifact: &[u8]) -> Result<(), String> {
        let a = TensorArchive::parse(artifact).map_err(|e| e.to_string())?;
        if a.tensors().is_empty() {
            return Err("artifact has no tensors".into());
        }
        for r in &self.required {
            match a.get(r) {
                None => return Err(format!("required tensor {r:?} missing")),
                Some(t) if t.len == 0 => return Err(format!("required tensor {r:?} is empty")),
                Some(_) => {}
            }
        }
        for t in a.tensors() {
            if t.dtype == DType::F32 {
                for (i, c) in a.data(t).chunks_exact(4).enumerate() {
                    let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    if !v.is_finite() {
                        return Err(format!("tensor {:?} element {i} is not finite ({v})", t.name));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_offsets() {
        let w = [1i8, -2, 3].map(|v| v as u8);
        let s = 0.5f32.to_le_bytes();
        let a = write_archive(&[("w", DType::I8, &w), ("s", DType::F32, &s)]);
        let p = TensorArchive::parse(&a).unwrap();
        assert_eq!(p.tensors().len(), 2);
        assert_eq!(p.data(p.get("s").unwrap()), &s);
        assert!(ArchiveSmokeTest { required: vec!["w".into()] }.run(&a).is_ok());
        assert!(ArchiveSmokeTest { required: vec!["head".into()] }.run(&a).unwrap_err().contains("\"head\""));
        let mut bad = a.clone();
        bad[20] ^= 1;
        let e = TensorArchive::parse(&bad).unwrap_err();
        assert!(e.reason.contains("trailer") || e.offset > 0, "{e}");
        let e = TensorArchive::parse(&a[..a.len() - 40]).unwrap_err();
        assert!(e.to_string().contains("byte"), "{e}");
        let nan = f32::NAN.to_le_bytes();
        let b = write_archive(&[("s", DType::F32, &nan)]);
        assert!(ArchiveSmokeTest::default().run(&b).unwrap_err().contains("not finite"));
    }
}
