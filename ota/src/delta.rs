//! Tensor-aware delta patches between two versions of a model artifact.
//!
//! Both files are cut into segments: for a [`TensorArchive`], the archive header, each
//! tensor's record header, each tensor's data and the trailer; any other file is one
//! opaque segment. Each target segment becomes one operation:
//!
//! * `COPY` a byte range of the base, when the base has the same bytes under the same
//!   name (unchanged tensors are referenced, never sent; adjacent copies merge);
//! * `XOR` or `SUB` against the base tensor of the same name and length: the element-wise
//!   byte XOR or wrapping byte difference, split into byte planes for multi-byte
//!   element types (all low bytes, then all second bytes, ...), compressed with zstd;
//!   the encoder keeps whichever of the two is smaller;
//! * `PACK` for int8 tensors whose differences are all small (|d| <= 8): the zigzagged
//!   differences packed several to a byte in radix k (e.g. three per byte for k = 5),
//!   then zstd: a fine-tune moves most quantised weights by 0 or one step;
//! * `RAW` bytes compressed with zstd, when there is no usable base tensor or it is no smaller.
//!
//! ```text
//! "VDLT" u32 version (1) base sha256 [32] target sha256 [32] u64 target length u32 op count
//! op: u8 kind; COPY: u64 base offset, u64 length
//!              XOR/SUB: u64 base offset, u64 length, u8 element size, u64 payload length, payload
//!              PACK: u64 base offset, u64 length, u8 element size (1), u64 payload length, u8 k, zstd(packed)
//!              RAW: u64 length, u64 payload length, payload
//! ```
//!
//! [`apply`] refuses a patch made for another base, bounds every length by the stated
//! target length, and checks the result's sha256 before returning it; the OTA client
//! then verifies it again against the TUF targets metadata of the full artifact.

use sha2::{Digest, Sha256};

use crate::artifact::TensorArchive;

/// Magic bytes of a delta patch.
pub const MAGIC: &[u8; 4] = b"VDLT";
/// Patch format version.
pub const FORMAT_VERSION: u32 = 1;
/// Largest target accepted when applying (bounds memory on hostile patches; patches
/// are also length- and hash-checked against signed metadata before they are applied).
pub const MAX_TARGET_LEN: u64 = 1 << 30;
/// zstd level used for patch payloads.
pub const ZSTD_LEVEL: i32 = 19;

const OP_COPY: u8 = 0;
const OP_XOR: u8 = 1;
const OP_SUB: u8 = 2;
const OP_RAW: u8 = 3;
const OP_PACK: u8 = 4;

/// Zigzag of a wrapping byte difference read as i8: 0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ...
fn zigzag(d: u8) -> u8 {
    let d = d as i8;
    ((d << 1) ^ (d >> 7)) as u8
}

fn unzigzag(z: u8) -> u8 {
    ((z >> 1) as i8 ^ -((z & 1) as i8)) as u8
}

/// Digits per byte for radix `k` (largest m with k^m <= 256).
fn digits_per_byte(k: u32) -> usize {
    let mut m = 0;
    let mut p = 1u32;
    while p * k <= 256 {
        p *= k;
        m += 1;
    }
    m.max(1)
}

/// Packs small zigzagged differences `m` to a byte in radix `k`, so the entropy coder
/// sees one symbol per several weights (zstd's Huffman stage cannot code a symbol in
/// under one bit, and most differences of a fine-tune are 0).
fn pack(z: &[u8], k: u32) -> Vec<u8> {
    let m = digits_per_byte(k);
    z.chunks(m)
        .map(|c| {
            let mut v = 0u32;
            for &d in c.iter().rev() {
                v = v * k + u32::from(d);
            }
            v as u8
        })
        .collect()
}

fn unpack(p: &[u8], k: u32, n: usize) -> Option<Vec<u8>> {
    let m = digits_per_byte(k);
    if p.len() != n.div_ceil(m) {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for &b in p {
        let mut v = u32::from(b);
        for _ in 0..m {
            if out.len() == n {
                break;
            }
            out.push((v % k) as u8);
            v /= k;
        }
        if v != 0 {
            return None;
        }
    }
    Some(out)
}

/// Why a patch could not be made or applied, with the offset where relevant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The patch bytes are malformed.
    #[error("delta patch, byte {offset}: {reason}")]
    Malformed {
        /// Offset into the patch.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The patch was made against different base bytes.
    #[error("delta patch base mismatch: made for sha256 {expected}, installed base is {got}")]
    WrongBase {
        /// The base hash the patch names.
        expected: String,
        /// The hash of the base offered.
        got: String,
    },
    /// The reconstructed file does not hash to the stated target.
    #[error("delta patch result does not match: {0}")]
    ResultMismatch(String),
    /// zstd failed.
    #[error("zstd: {0}")]
    Zstd(String),
}

#[derive(Debug, Clone)]
struct Segment {
    name: String,
    start: usize,
    len: usize,
    elem: usize,
}

fn segments(bytes: &[u8]) -> Vec<Segment> {
    let Ok(a) = TensorArchive::parse(bytes) else {
        return vec![Segment { name: "<file>".into(), start: 0, len: bytes.len(), elem: 1 }];
    };
    let mut out = Vec::new();
    let mut pos = 0;
    for t in a.tensors() {
        out.push(Segment { name: format!("<hdr>{}", t.name), start: pos, len: t.data_offset - pos, elem: 1 });
        out.push(Segment { name: t.name.clone(), start: t.data_offset, len: t.len, elem: t.dtype.size() });
        pos = t.data_offset + t.len;
    }
    out.push(Segment { name: "<trailer>".into(), start: pos, len: bytes.len() - pos, elem: 1 });
    out
}

fn planes(d: &[u8], elem: usize) -> Vec<u8> {
    if elem <= 1 {
        return d.to_vec();
    }
    let n = d.len() / elem;
    let mut out = Vec::with_capacity(d.len());
    for j in 0..elem {
        out.extend((0..n).map(|i| d[i * elem + j]));
    }
    out
}

fn unplanes(p: &[u8], elem: usize) -> Vec<u8> {
    if elem <= 1 {
        return p.to_vec();
    }
    let n = p.len() / elem;
    let mut out = vec![0u8; p.len()];
    for j in 0..elem {
        for i in 0..n {
            out[i * elem + j] = p[j * n + i];
        }
    }
    out
}

fn zc(d: &[u8]) -> Result<Vec<u8>, DeltaError> {
    zstd::bulk::compress(d, ZSTD_LEVEL).map_err(|e| DeltaError::Zstd(e.to_string()))
}

/// Per-operation figures of a patch, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Bytes referenced from the base unchanged.
    pub copied: u64,
    /// Tensors sent as XOR.
    pub xor: u32,
    /// Tensors sent as byte differences.
    pub sub: u32,
    /// Int8 tensors sent as radix-packed small differences.
    pub packed: u32,
    /// Segments sent raw.
    pub raw: u32,
}

/// Makes a patch that turns `base` into `target`.
pub fn diff(base: &[u8], target: &[u8]) -> Result<(Vec<u8>, DeltaStats), DeltaError> {
    let bsegs = segments(base);
    let tsegs = segments(target);
    let mut ops: Vec<u8> = Vec::new();
    let mut n_ops: u32 = 0;
    let mut stats = DeltaStats::default();
    // Pending COPY (base offset, length) to merge adjacent ranges.
    let mut pending: Option<(u64, u64)> = None;
    let flush = |ops: &mut Vec<u8>, n: &mut u32, p: &mut Option<(u64, u64)>| {
        if let Some((o, l)) = p.take() {
            ops.push(OP_COPY);
            ops.extend_from_slice(&o.to_le_bytes());
            ops.extend_from_slice(&l.to_le_bytes());
            *n += 1;
        }
    };
    for t in &tsegs {
        let tb = &target[t.start..t.start + t.len];
        let same_name = bsegs.iter().find(|b| b.name == t.name);
        if let Some(b) = same_name {
            let bb = &base[b.start..b.start + b.len];
            if bb == tb {
                stats.copied += t.len as u64;
                pending = match pending {
                    Some((o, l)) if o + l == b.start as u64 => Some((o, l + t.len as u64)),
                    other => {
                        let mut p = other;
                        flush(&mut ops, &mut n_ops, &mut p);
                        Some((b.start as u64, t.len as u64))
                    }
                };
                continue;
            }
        }
        flush(&mut ops, &mut n_ops, &mut pending);
        let raw = zc(tb)?;
        let mut best: (u8, Vec<u8>, usize) = (OP_RAW, raw, 0);
        if let Some(b) = same_name.filter(|b| b.len == t.len && t.len > 0) {
            let bb = &base[b.start..b.start + b.len];
            let x: Vec<u8> = tb.iter().zip(bb).map(|(a, c)| a ^ c).collect();
            let s: Vec<u8> = tb.iter().zip(bb).map(|(a, c)| a.wrapping_sub(*c)).collect();
            if t.elem == 1 {
                let z: Vec<u8> = s.iter().map(|&d| zigzag(d)).collect();
                let k = u32::from(z.iter().copied().max().unwrap_or(0)) + 1;
                if k <= 16 {
                    let mut payload = vec![k as u8];
                    payload.extend(zc(&pack(&z, k))?);
                    if payload.len() < best.1.len() {
                        best = (OP_PACK, payload, b.start);
                    }
                }
            }
            for (kind, d) in [(OP_XOR, x), (OP_SUB, s)] {
                let z = zc(&planes(&d, t.elem))?;
                if z.len() < best.1.len() {
                    best = (kind, z, b.start);
                }
            }
        }
        let (kind, payload, boff) = best;
        let elem = if kind == OP_PACK { 1 } else { t.elem as u8 };
        ops.push(kind);
        match kind {
            OP_RAW => {
                stats.raw += 1;
                ops.extend_from_slice(&(t.len as u64).to_le_bytes());
            }
            _ => {
                match kind {
                    OP_XOR => stats.xor += 1,
                    OP_SUB => stats.sub += 1,
                    _ => stats.packed += 1,
                }
                ops.extend_from_slice(&(boff as u64).to_le_bytes());
                ops.extend_from_slice(&(t.len as u64).to_le_bytes());
                ops.push(elem);
            }
        }
        ops.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        ops.extend_from_slice(&payload);
        n_ops += 1;
    }
    flush(&mut ops, &mut n_ops, &mut pending);
    let mut out = Vec::with_capacity(ops.len() + 84);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(base));
    out.extend_from_slice(&Sha256::digest(target));
    out.extend_from_slice(&(target.len() as u64).to_le_bytes());
    out.extend_from_slice(&n_ops.to_le_bytes());
    out.extend_from_slice(&ops);
    Ok((out, stats))
}

struct R<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], DeltaError> {
        let end = usize::try_from(n).ok().and_then(|n| self.i.checked_add(n)).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| DeltaError::Malformed { offset: self.i, reason: format!("{what}: needs {n} bytes, {} left", self.b.len() - self.i) })?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }
    fn u64(&mut self, what: &str) -> Result<u64, DeltaError> {
        let s = self.take(8, what)?;
        Ok(u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
    }
    fn u32(&mut self, what: &str) -> Result<u32, DeltaError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
    }
}

fn base_range(base: &[u8], off: u64, len: u64, at: usize) -> Result<&[u8], DeltaError> {
    let end = off.checked_add(len).filter(|e| *e <= base.len() as u64);
    let end = end.ok_or_else(|| DeltaError::Malformed { offset: at, reason: format!("base range {off}+{len} outside the base ({} bytes)", base.len()) })?;
    Ok(&base[off as usize..end as usize])
}

/// The base sha256 (hex) a patch was made for, read from its header.
pub fn base_sha256(patch: &[u8]) -> Result<String, DeltaError> {
    let mut r = R { b: patch, i: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(DeltaError::Malformed { offset: 0, reason: "bad magic (not a VDLT patch)".into() });
    }
    r.u32("format version")?;
    Ok(hex::encode(r.take(32, "base sha256")?))
}

/// Applies `patch` to `base` and returns the target, verified against the patch's
/// stated length and sha256.
pub fn apply(base: &[u8], patch: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let mut r = R { b: patch, i: 0 };
    if r.take(4, "magic")? != MAGIC {
        return Err(DeltaError::Malformed { offset: 0, reason: "bad magic (not a VDLT patch)".into() });
    }
    let v = r.u32("format version")?;
    if v != FORMAT_VERSION {
        return Err(DeltaError::Malformed { offset: 4, reason: format!("format version {v} not supported") });
    }
    let want_base = r.take(32, "base sha256")?;
    let got_base = Sha256::digest(base);
    if want_base != got_base.as_slice() {
        return Err(DeltaError::WrongBase { expected: hex::encode(want_base), got: hex::encode(got_base) });
    }
    let want_target: [u8; 32] = r.take(32, "target sha256")?.try_into().unwrap_or([0; 32]);
    let tlen_off = r.i;
    let tlen = r.u64("target length")?;
    if tlen > MAX_TARGET_LEN {
        return Err(DeltaError::Malformed { offset: tlen_off, reason: format!("target length {tlen} exceeds {MAX_TARGET_LEN}") });
    }
    let n = r.u32("op count")?;
    let mut out: Vec<u8> = Vec::with_capacity(tlen as usize);
    let room = |out: &Vec<u8>, len: u64, at: usize| -> Result<(), DeltaError> {
        if out.len() as u64 + len > tlen {
            return Err(DeltaError::Malformed { offset: at, reason: format!("operation overruns the stated target length {tlen}") });
        }
        Ok(())
    };
    for _ in 0..n {
        let at = r.i;
        let kind = r.take(1, "op kind")?[0];
        match kind {
            OP_COPY => {
                let off = r.u64("copy offset")?;
                let len = r.u64("copy length")?;
                room(&out, len, at)?;
                out.extend_from_slice(base_range(base, off, len, at)?);
            }
            OP_XOR | OP_SUB => {
                let off = r.u64("base offset")?;
                let len = r.u64("length")?;
                let elem = r.take(1, "element size")?[0] as usize;
                let plen = r.u64("payload length")?;
                let payload = r.take(plen, "payload")?;
                room(&out, len, at)?;
                let b = base_range(base, off, len, at)?;
                let d = zstd::bulk::decompress(payload, len as usize).map_err(|e| DeltaError::Zstd(format!("op at byte {at}: {e}")))?;
                if d.len() as u64 != len || (elem > 1 && !(len as usize).is_multiple_of(elem)) {
                    return Err(DeltaError::Malformed { offset: at, reason: "payload does not decode to the stated length".into() });
                }
                let d = unplanes(&d, elem);
                if kind == OP_XOR {
                    out.extend(d.iter().zip(b).map(|(x, c)| x ^ c));
                } else {
                    out.extend(d.iter().zip(b).map(|(x, c)| x.wrapping_add(*c)));
                }
            }
            OP_PACK => {
                let off = r.u64("base offset")?;
                let len = r.u64("length")?;
                let _elem = r.take(1, "element size")?[0];
                let plen = r.u64("payload length")?;
                let payload = r.take(plen, "payload")?;
                room(&out, len, at)?;
                let b = base_range(base, off, len, at)?;
                let (&k, z) = payload.split_first().ok_or_else(|| DeltaError::Malformed { offset: at, reason: "empty packed payload".into() })?;
                if !(2..=16).contains(&k) {
                    return Err(DeltaError::Malformed { offset: at, reason: format!("packed radix {k} outside 2..=16") });
                }
                let m = digits_per_byte(u32::from(k));
                let packed = zstd::bulk::decompress(z, (len as usize).div_ceil(m)).map_err(|e| DeltaError::Zstd(format!("op at byte {at}: {e}")))?;
                let d = unpack(&packed, u32::from(k), len as usize).ok_or_else(|| DeltaError::Malformed { offset: at, reason: "packed payload does not decode to the stated length".into() })?;
                out.extend(d.iter().zip(b).map(|(z, c)| unzigzag(*z).wrapping_add(*c)));
            }
            OP_RAW => {
                let len = r.u64("raw length")?;
                let plen = r.u64("payload length")?;
                let payload = r.take(plen, "payload")?;
                room(&out, len, at)?;
                let d = zstd::bulk::decompress(payload, len as usize).map_err(|e| DeltaError::Zstd(format!("op at byte {at}: {e}")))?;
                if d.len() as u64 != len {
                    return Err(DeltaError::Malformed { offset: at, reason: "payload does not decode to the stated length".into() });
                }
                out.extend_from_slice(&d);
            }
            k => return Err(DeltaError::Malformed { offset: at, reason: format!("unknown op kind {k}") }),
        }
    }
    if r.i != patch.len() {
        return Err(DeltaError::Malformed { offset: r.i, reason: "trailing bytes after the last op".into() });
    }
    if out.len() as u64 != tlen {
        return Err(DeltaError::ResultMismatch(format!("length {} instead of {tlen}", out.len())));
    }
    let got = Sha256::digest(&out);
    if got.as_slice() != want_target {
        return Err(DeltaError::ResultMismatch(format!("sha256 {} instead of {}", hex::encode(got), hex::encode(want_target))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{DType, write_archive};

    #[test]
    fn zigzag_and_packing_round_trip() {
        for d in 0..=255u8 {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        assert_eq!([0u8, 0xff, 1, 0xfe, 2].map(zigzag), [0, 1, 2, 3, 4]);
        assert_eq!(digits_per_byte(5), 3);
        assert_eq!(digits_per_byte(2), 8);
        assert_eq!(digits_per_byte(16), 2);
        let z: Vec<u8> = (0..1001u32).map(|i| (i * 7 % 5) as u8).collect();
        assert_eq!(unpack(&pack(&z, 5), 5, z.len()).unwrap(), z);
        assert!(unpack(&[250], 5, 3).is_none(), "a digit overflow must be refused");
    }

    #[test]
    fn round_trip_tensor_and_opaque() {
        let w: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
        let s: Vec<u8> = (0..64).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
        let a = write_archive(&[("w", DType::I8, &w), ("s", DType::F32, &s), ("head", DType::I8, &w[..100])]);
        let mut w2 = w.clone();
        w2[10] = w2[10].wrapping_add(1);
        let b = write_archive(&[("w", DType::I8, &w2), ("s", DType::F32, &s), ("head", DType::I8, &w[..100]), ("new", DType::U8, b"xyz")]);
        let (p, st) = diff(&a, &b).unwrap();
        assert_eq!(apply(&a, &p).unwrap(), b);
        assert!(st.copied > 256, "unchanged tensors must be referenced: {st:?}");
        // Changed: header (count), tensor w, the new tensor and the trailer; the rest is copied.
        assert!(st.xor + st.sub + st.packed + st.raw <= 5, "{st:?}");
        assert!(p.len() * 4 < b.len(), "patch {} for a {}-byte file with one changed weight", p.len(), b.len());
        // Opaque files still round-trip.
        let (p2, _) = diff(b"hello world", b"hello there world").unwrap();
        assert_eq!(apply(b"hello world", &p2).unwrap(), b"hello there world");
        // Wrong base and corrupted patches are refused, not panicked on.
        assert!(matches!(apply(&b, &p), Err(DeltaError::WrongBase { .. })));
        for cut in [0, 10, 80, p.len() / 2, p.len() - 1] {
            assert!(apply(&a, &p[..cut]).is_err());
        }
        let mut bad = p.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(apply(&a, &bad).is_err());
    }
}
