//! The `.vplan` file: a versioned, checksummed binary form of a [`Plan`].
//!
//! # Layout (version 1, all integers little-endian)
//!
//! ```text
//! offset 0     Header (#[repr(C)], 168 bytes): magic "VIGLPLAN", version, section table,
//!              file length, sha256
//! ...          sections, each 8-byte aligned, in this order:
//!              info      one InfoRecord   (metadata, preprocessing, heads)
//!              tensors   TensorRecord x tensor_count
//!              ops       OpRecord x op_count
//!              lists     ListRecord x list_count (Concat inputs)
//!              strings   UTF-8 bytes (names), referenced by (offset, len)
//!              blob      constant data (weights, biases, requant, tables), viewed in place
//! ```
//!
//! The sha256 covers every byte of the file except the 32 bytes of the `sha256` field itself.
//! [`load`] reads the file once into an 8-byte-aligned buffer, checks magic, version, length
//! and checksum, reads the small tables through `zerocopy`, and *views* the blob inside that
//! buffer: weights are never copied per tensor. The result is then [`Plan::validate`]d, so a
//! loaded plan is safe to hand to any backend.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ir::ConvGeom;
use crate::plan::{AddParams, Blob, BlobRange, ChannelRef, ConvOp, Encoding, HeadSpec, Op, Plan, PlanError, PlanMeta, Preprocess, Rescale, TensorDesc, TensorId, Tier};
use crate::quant::Requant;

/// File magic.
pub const MAGIC: [u8; 8] = *b"VIGLPLAN";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

/// A section of the file: byte offset and length.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Section {
    /// Byte offset from the start of the file (8-aligned).
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The fixed header at offset 0.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Header {
    /// `VIGLPLAN`.
    pub magic: [u8; 8],
    /// Format version.
    pub version: u32,
    /// `size_of::<Header>()`.
    pub header_len: u32,
    /// Number of tensor records.
    pub tensor_count: u32,
    /// Number of op records.
    pub op_count: u32,
    /// Number of list records.
    pub list_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Info section.
    pub info: Section,
    /// Tensor table.
    pub tensors: Section,
    /// Op table.
    pub ops: Section,
    /// List table.
    pub lists: Section,
    /// Strings.
    pub strings: Section,
    /// Constant blob.
    pub blob: Section,
    /// Total file length in bytes.
    pub file_len: u64,
    /// sha256 of the file with this field excluded.
    pub sha256: [u8; 32],
}

const SHA_OFFSET: usize = std::mem::offset_of!(Header, sha256);

/// Metadata, preprocessing and heads.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct InfoRecord {
    /// Variant name (strings section offset, len).
    pub variant: [u32; 2],
    /// [`Tier`] code.
    pub tier: u32,
    /// Model input tensor.
    pub input: u32,
    /// Model version.
    pub model_version: u64,
    /// Ops per frame.
    pub ops_per_frame: u64,
    /// Arena bytes per frame.
    pub arena_bytes: u64,
    /// Measured latency (µs).
    pub latency_us: u32,
    /// Energy estimate (mJ).
    pub energy_mj: f32,
    /// Camera frame width, height.
    pub src: [u32; 2],
    /// Heatmap tensor, first channel, classes.
    pub heatmap: [u32; 3],
    /// Offset x/y, size w/h, depth: (tensor, channel) pairs.
    pub head_channels: [[u32; 2]; 5],
    /// Stride, max candidates.
    pub stride_k: [u32; 2],
    /// Threshold (as i32).
    pub threshold: i32,
    /// Encodings of score, offset, size, depth: (kind 0 linear / 1 log / 2 sigmoid, unit bits).
    pub encodings: [[u32; 2]; 4],
    /// Reserved, zero.
    pub reserved: [u32; 2],
    /// Preprocessing tables, R G B.
    pub lut: [[i8; 256]; 3],
}

/// One tensor.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TensorRecord {
    /// Name (strings offset, len).
    pub name: [u32; 2],
    /// h, w, c.
    pub shape: [u32; 3],
    /// Zero point.
    pub zero_point: i32,
    /// Scale.
    pub scale: f32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Arena offset.
    pub offset: u64,
}

/// One op. Field use per kind is documented on [`OpKind`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OpRecord {
    /// [`OpKind`] code.
    pub kind: u32,
    /// Output tensor.
    pub output: u32,
    /// Up to two input tensors.
    pub inputs: [u32; 2],
    /// Concat: first list record and count.
    pub list: [u32; 2],
    /// Integer parameters.
    pub params: [i32; 16],
    /// Blob ranges.
    pub ranges: [BlobRange; 3],
}

/// Op kinds and how they use [`OpRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum OpKind {
    /// params: in_c, out_c, kh, kw, stride_h, stride_w, pad x4, groups, act_min, act_max;
    /// ranges: weights, bias, requant.
    Conv = 1,
    /// params: kh, kw, stride_h, stride_w, pad x4.
    MaxPool = 2,
    /// inputs: a, b; params: left_shift, a (mult, shift), b (mult, shift), out (mult, shift),
    /// act_min, act_max.
    Add = 3,
    /// list: the inputs with their rescales.
    Concat = 4,
    /// inputs: input.
    ResizeNearest = 5,
    /// inputs: input; ranges: table.
    Lut = 6,
}

/// One Concat input.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ListRecord {
    /// Tensor.
    pub tensor: u32,
    /// Rescale input zero point.
    pub input_zp: i32,
    /// Rescale multiplier.
    pub multiplier: i32,
    /// Rescale shift.
    pub shift: i32,
}

/// Why a `.vplan` cannot be loaded. Each variant names the field or offset at fault.
#[derive(Debug, thiserror::Error)]
pub enum VplanError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a `.vplan`.
    #[error("bad magic at offset 0: found {found:02x?}, expected \"VIGLPLAN\"")]
    BadMagic {
        /// Bytes found.
        found: [u8; 8],
    },
    /// Written by an incompatible version.
    #[error("unsupported .vplan version {found} (field `version` at offset 8); this build reads version {supported}")]
    Version {
        /// Found.
        found: u32,
        /// Supported.
        supported: u32,
    },
    /// The file is shorter than a field or section needs.
    #[error("truncated: {field} needs bytes up to offset {needed}, file has {len}")]
    Truncated {
        /// Field or section.
        field: String,
        /// End offset needed.
        needed: u64,
        /// File length.
        len: u64,
    },
    /// Checksum mismatch.
    #[error("sha256 mismatch (field `sha256` at offset {SHA_OFFSET}): header says {expected}, contents hash to {actual}")]
    Checksum {
        /// Stored.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// A field holds an impossible value.
    #[error("{field}: {reason}")]
    Field {
        /// Field path.
        field: String,
        /// Why.
        reason: String,
    },
    /// The decoded plan is malformed.
    #[error("decoded plan is invalid: {0}")]
    Plan(#[from] PlanError),
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn checksum(file: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&file[..SHA_OFFSET]);
    h.update(&file[SHA_OFFSET + 32..]);
    h.finalize().into()
}

fn enc_code(e: Encoding) -> [u32; 2] {
    match e {
        Encoding::Linear { unit } => [0, unit.to_bits()],
        Encoding::Log { unit } => [1, unit.to_bits()],
        Encoding::Sigmoid => [2, 0],
    }
}

fn enc_decode(c: [u32; 2], field: &str) -> Result<Encoding, VplanError> {
    match c[0] {
        0 => Ok(Encoding::Linear { unit: f32::from_bits(c[1]) }),
        1 => Ok(Encoding::Log { unit: f32::from_bits(c[1]) }),
        2 => Ok(Encoding::Sigmoid),
        k => Err(VplanError::Field { field: field.into(), reason: format!("unknown encoding kind {k}") }),
    }
}

struct Strings(Vec<u8>);

impl Strings {
    fn add(&mut self, s: &str) -> [u32; 2] {
        let off = self.0.len() as u32;
        self.0.extend_from_slice(s.as_bytes());
        [off, s.len() as u32]
    }
}

fn req(r: Requant) -> [i32; 2] {
    [r.multiplier, r.shift]
}

/// Serialises a plan to `.vplan` bytes.
pub fn to_bytes(plan: &Plan) -> Vec<u8> {
    let mut strings = Strings(Vec::new());
    let h = &plan.heads;
    let cr = |c: ChannelRef| [c.tensor.0, c.channel];
    let info = InfoRecord {
        variant: strings.add(&plan.meta.variant),
        tier: plan.meta.tier as u32,
        input: plan.input.0,
        model_version: plan.meta.model_version,
        ops_per_frame: plan.meta.ops_per_frame,
        arena_bytes: plan.arena_bytes,
        latency_us: plan.meta.latency_us,
        energy_mj: plan.meta.energy_mj,
        src: [plan.preprocess.src_w, plan.preprocess.src_h],
        heatmap: [h.heatmap.0, h.heatmap_channel, h.num_classes],
        head_channels: [cr(h.offset[0]), cr(h.offset[1]), cr(h.size[0]), cr(h.size[1]), cr(h.depth)],
        stride_k: [h.stride, h.max_candidates],
        threshold: i32::from(h.threshold),
        encodings: [enc_code(h.score_enc), enc_code(h.offset_enc), enc_code(h.size_enc), enc_code(h.depth_enc)],
        reserved: [0; 2],
        lut: plan.preprocess.lut,
    };
    let tensors: Vec<TensorRecord> = plan
        .tensors
        .iter()
        .map(|t| TensorRecord { name: strings.add(&t.name), shape: [t.h, t.w, t.c], zero_point: t.zero_point, scale: t.scale, reserved: 0, offset: t.offset })
        .collect();
    let mut lists = Vec::new();
    let ops: Vec<OpRecord> = plan
        .ops
        .iter()
        .map(|op| {
            let mut r = OpRecord { output: op.output().0, ..OpRecord::default() };
            match op {
                Op::Conv(c) => {
                    let g = &c.geom;
                    r.kind = OpKind::Conv as u32;
                    r.inputs[0] = c.input.0;
                    let p = [g.in_c, g.out_c, g.kh, g.kw, g.stride_h, g.stride_w, g.pad[0], g.pad[1], g.pad[2], g.pad[3], g.groups];
                    for (d, s) in r.params.iter_mut().zip(p) {
                        *d = s as i32;
                    }
                    r.params[11] = i32::from(c.act_min);
                    r.params[12] = i32::from(c.act_max);
                    r.ranges = [c.weights, c.bias, c.requant];
                }
                Op::MaxPool { input, kh, kw, stride_h, stride_w, pad, .. } => {
                    r.kind = OpKind::MaxPool as u32;
                    r.inputs[0] = input.0;
                    let p = [*kh, *kw, *stride_h, *stride_w, pad[0], pad[1], pad[2], pad[3]];
                    for (d, s) in r.params.iter_mut().zip(p) {
                        *d = s as i32;
                    }
                }
                Op::Add { a, b, params, .. } => {
                    r.kind = OpKind::Add as u32;
                    r.inputs = [a.0, b.0];
                    let [am, ash] = req(params.a_mult);
                    let [bm, bsh] = req(params.b_mult);
                    let [om, osh] = req(params.out_mult);
                    let p = [params.left_shift as i32, am, ash, bm, bsh, om, osh, i32::from(params.act_min), i32::from(params.act_max)];
                    r.params[..p.len()].copy_from_slice(&p);
                }
                Op::Concat { inputs, rescale, .. } => {
                    r.kind = OpKind::Concat as u32;
                    r.list = [lists.len() as u32, inputs.len() as u32];
                    for (t, s) in inputs.iter().zip(rescale) {
                        lists.push(ListRecord { tensor: t.0, input_zp: s.input_zp, multiplier: s.requant.multiplier, shift: s.requant.shift });
                    }
                }
                Op::ResizeNearest { input, .. } => {
                    r.kind = OpKind::ResizeNearest as u32;
                    r.inputs[0] = input.0;
                }
                Op::Lut { input, table, .. } => {
                    r.kind = OpKind::Lut as u32;
                    r.inputs[0] = input.0;
                    r.ranges[0] = *table;
                }
            }
            r
        })
        .collect();

    let mut file = vec![0u8; size_of::<Header>()];
    let section = |file: &mut Vec<u8>, bytes: &[u8]| {
        let offset = file.len().next_multiple_of(8);
        file.resize(offset, 0);
        file.extend_from_slice(bytes);
        Section { offset: offset as u64, len: bytes.len() as u64 }
    };
    let info_s = section(&mut file, info.as_bytes());
    let tensors_s = section(&mut file, tensors.as_bytes());
    let ops_s = section(&mut file, ops.as_bytes());
    let lists_s = section(&mut file, lists.as_bytes());
    let strings_s = section(&mut file, &strings.0);
    let blob_s = section(&mut file, plan.blob.bytes());
    let header = Header {
        magic: MAGIC,
        version: VERSION,
        header_len: size_of::<Header>() as u32,
        tensor_count: tensors.len() as u32,
        op_count: ops.len() as u32,
        list_count: lists.len() as u32,
        reserved: 0,
        info: info_s,
        tensors: tensors_s,
        ops: ops_s,
        lists: lists_s,
        strings: strings_s,
        blob: blob_s,
        file_len: file.len() as u64,
        sha256: [0; 32],
    };
    file[..size_of::<Header>()].copy_from_slice(header.as_bytes());
    let sum = checksum(&file);
    file[SHA_OFFSET..SHA_OFFSET + 32].copy_from_slice(&sum);
    file
}

/// Writes a plan to a `.vplan` file.
pub fn save(plan: &Plan, path: &Path) -> Result<(), VplanError> {
    std::fs::write(path, to_bytes(plan)).map_err(|source| VplanError::Io { path: path.display().to_string(), source })
}

/// Reads a `.vplan` file once and decodes it (see [`from_aligned`]).
pub fn load(path: &Path) -> Result<Plan, VplanError> {
    let io = |source| VplanError::Io { path: path.display().to_string(), source };
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len() as usize;
    let mut buf = vec![0u64; len.div_ceil(8)];
    f.read_exact(&mut buf.as_mut_bytes()[..len]).map_err(io)?;
    from_aligned(Arc::new(buf), len)
}

/// Decodes `.vplan` bytes (copies them once into an aligned buffer).
pub fn from_bytes(bytes: &[u8]) -> Result<Plan, VplanError> {
    let mut buf = vec![0u64; bytes.len().div_ceil(8)];
    buf.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
    from_aligned(Arc::new(buf), bytes.len())
}

fn section<'a, T: FromBytes + Immutable + KnownLayout>(file: &'a [u8], s: Section, count: usize, name: &str) -> Result<&'a [T], VplanError> {
    let len = file.len() as u64;
    let end = s.offset.checked_add(s.len).ok_or_else(|| VplanError::Field { field: format!("header.{name}"), reason: "offset + len overflows".into() })?;
    if end > len {
        return Err(VplanError::Truncated { field: format!("section `{name}` at offset {}", s.offset), needed: end, len });
    }
    if s.len != (count * size_of::<T>()) as u64 {
        return Err(VplanError::Field { field: format!("header.{name}.len"), reason: format!("{} bytes for {count} records of {} bytes", s.len, size_of::<T>()) });
    }
    <[T]>::ref_from_bytes(&file[s.offset as usize..end as usize])
        .map_err(|_| VplanError::Field { field: format!("header.{name}.offset"), reason: format!("offset {} is not aligned for its records", s.offset) })
}

/// Decodes the first `len` bytes of an 8-aligned buffer, viewing the blob in place.
pub fn from_aligned(buf: Arc<Vec<u64>>, len: usize) -> Result<Plan, VplanError> {
    let file = &buf.as_bytes()[..len];
    let flen = len as u64;
    if len < 8 {
        return Err(VplanError::Truncated { field: "magic".into(), needed: 8, len: flen });
    }
    if file[..8] != MAGIC {
        return Err(VplanError::BadMagic { found: file[..8].try_into().unwrap_or([0; 8]) });
    }
    if len < 12 {
        return Err(VplanError::Truncated { field: "version".into(), needed: 12, len: flen });
    }
    let version = u32::from_le_bytes([file[8], file[9], file[10], file[11]]);
    if version != VERSION {
        return Err(VplanError::Version { found: version, supported: VERSION });
    }
    let (header, _) = Header::ref_from_prefix(file).map_err(|_| VplanError::Truncated { field: "header".into(), needed: size_of::<Header>() as u64, len: flen })?;
    if header.file_len != flen {
        return Err(VplanError::Truncated { field: format!("file_len (header says {})", header.file_len), needed: header.file_len, len: flen });
    }
    let actual = checksum(file);
    if actual != header.sha256 {
        return Err(VplanError::Checksum { expected: hex(&header.sha256), actual: hex(&actual) });
    }
    let info = &section::<InfoRecord>(file, header.info, 1, "info")?[0];
    let trecs = section::<TensorRecord>(file, header.tensors, header.tensor_count as usize, "tensors")?;
    let orecs = section::<OpRecord>(file, header.ops, header.op_count as usize, "ops")?;
    let lrecs = section::<ListRecord>(file, header.lists, header.list_count as usize, "lists")?;
    let strings = section::<u8>(file, header.strings, header.strings.len as usize, "strings")?;
    let string = |r: [u32; 2], field: &dyn Fn() -> String| -> Result<String, VplanError> {
        let (o, l) = (r[0] as usize, r[1] as usize);
        let bytes = strings.get(o..o.saturating_add(l)).ok_or_else(|| VplanError::Field { field: field(), reason: format!("string {o}+{l} outside the strings section") })?;
        String::from_utf8(bytes.to_vec()).map_err(|_| VplanError::Field { field: field(), reason: "not UTF-8".into() })
    };
    let tier = Tier::from_code(info.tier).ok_or_else(|| VplanError::Field { field: "info.tier".into(), reason: format!("unknown tier {}", info.tier) })?;
    let mut tensors = Vec::with_capacity(trecs.len());
    for (i, t) in trecs.iter().enumerate() {
        tensors.push(TensorDesc {
            name: string(t.name, &|| format!("tensors[{i}].name"))?,
            h: t.shape[0],
            w: t.shape[1],
            c: t.shape[2],
            scale: t.scale,
            zero_point: t.zero_point,
            offset: t.offset,
        });
    }
    let i8_of = |v: i32, field: &dyn Fn() -> String| i8::try_from(v).map_err(|_| VplanError::Field { field: field(), reason: format!("{v} is outside int8") });
    let u = |v: i32| v.max(0) as usize;
    let mut ops = Vec::with_capacity(orecs.len());
    for (i, r) in orecs.iter().enumerate() {
        let p = &r.params;
        let rq = |m: i32, s: i32| Requant { multiplier: m, shift: s };
        let op = match r.kind {
            1 => Op::Conv(ConvOp {
                input: TensorId(r.inputs[0]),
                output: TensorId(r.output),
                geom: ConvGeom { in_c: u(p[0]), out_c: u(p[1]), kh: u(p[2]), kw: u(p[3]), stride_h: u(p[4]), stride_w: u(p[5]), pad: [u(p[6]), u(p[7]), u(p[8]), u(p[9])], groups: u(p[10]) },
                weights: r.ranges[0],
                bias: r.ranges[1],
                requant: r.ranges[2],
                act_min: i8_of(p[11], &|| format!("ops[{i}].act_min"))?,
                act_max: i8_of(p[12], &|| format!("ops[{i}].act_max"))?,
            }),
            2 => Op::MaxPool {
                input: TensorId(r.inputs[0]),
                output: TensorId(r.output),
                kh: u(p[0]) as u32,
                kw: u(p[1]) as u32,
                stride_h: u(p[2]) as u32,
                stride_w: u(p[3]) as u32,
                pad: [u(p[4]) as u32, u(p[5]) as u32, u(p[6]) as u32, u(p[7]) as u32],
            },
            3 => Op::Add {
                a: TensorId(r.inputs[0]),
                b: TensorId(r.inputs[1]),
                output: TensorId(r.output),
                params: AddParams {
                    left_shift: u(p[0]) as u32,
                    a_mult: rq(p[1], p[2]),
                    b_mult: rq(p[3], p[4]),
                    out_mult: rq(p[5], p[6]),
                    act_min: i8_of(p[7], &|| format!("ops[{i}].act_min"))?,
                    act_max: i8_of(p[8], &|| format!("ops[{i}].act_max"))?,
                },
            },
            4 => {
                let (first, n) = (r.list[0] as usize, r.list[1] as usize);
                let items = lrecs.get(first..first.saturating_add(n)).ok_or_else(|| VplanError::Field { field: format!("ops[{i}].list"), reason: format!("records {first}+{n} outside the list table of {}", lrecs.len()) })?;
                Op::Concat {
                    inputs: items.iter().map(|l| TensorId(l.tensor)).collect(),
                    rescale: items.iter().map(|l| Rescale { input_zp: l.input_zp, requant: rq(l.multiplier, l.shift) }).collect(),
                    output: TensorId(r.output),
                }
            }
            5 => Op::ResizeNearest { input: TensorId(r.inputs[0]), output: TensorId(r.output) },
            6 => Op::Lut { input: TensorId(r.inputs[0]), output: TensorId(r.output), table: r.ranges[0] },
            k => return Err(VplanError::Field { field: format!("ops[{i}].kind"), reason: format!("unknown op kind {k}") }),
        };
        ops.push(op);
    }
    let cref = |c: [u32; 2]| ChannelRef { tensor: TensorId(c[0]), channel: c[1] };
    let threshold = i8_of(info.threshold, &|| "info.threshold".into())?;
    let blob_end = header.blob.offset.checked_add(header.blob.len).filter(|&e| e <= flen);
    if blob_end.is_none() {
        return Err(VplanError::Truncated { field: format!("section `blob` at offset {}", header.blob.offset), needed: header.blob.offset.saturating_add(header.blob.len), len: flen });
    }
    let blob = Blob::view(buf.clone(), header.blob.offset as usize, header.blob.len as usize)
        .ok_or_else(|| VplanError::Field { field: "header.blob.offset".into(), reason: format!("offset {} is not 8-aligned", header.blob.offset) })?;
    let plan = Plan {
        meta: PlanMeta {
            variant: string(info.variant, &|| "info.variant".into())?,
            tier,
            model_version: info.model_version,
            ops_per_frame: info.ops_per_frame,
            latency_us: info.latency_us,
            energy_mj: info.energy_mj,
        },
        tensors,
        ops,
        input: TensorId(info.input),
        preprocess: Preprocess { src_w: info.src[0], src_h: info.src[1], lut: info.lut },
        heads: HeadSpec {
            heatmap: TensorId(info.heatmap[0]),
            heatmap_channel: info.heatmap[1],
            num_classes: info.heatmap[2],
            offset: [cref(info.head_channels[0]), cref(info.head_channels[1])],
            size: [cref(info.head_channels[2]), cref(info.head_channels[3])],
            depth: cref(info.head_channels[4]),
            stride: info.stride_k[0],
            threshold,
            max_candidates: info.stride_k[1],
            score_enc: enc_decode(info.encodings[0], "info.encodings[0]")?,
            offset_enc: enc_decode(info.encodings[1], "info.encodings[1]")?,
            size_enc: enc_decode(info.encodings[2], "info.encodings[2]")?,
            depth_enc: enc_decode(info.encodings[3], "info.encodings[3]")?,
        },
        arena_bytes: info.arena_bytes,
        blob,
    };
    plan.validate()?;
    Ok(plan)
}
