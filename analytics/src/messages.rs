//! DAP-09 wire messages the client sends and the in-process aggregators read, encoded with
//! `prio`'s TLS-style codec (draft-ietf-ppm-dap-09, section 4).
//!
//! ```text
//! struct { ReportID report_id; Time time; } ReportMetadata;            // 16 + 8 bytes
//! struct { u8 config_id; opaque enc<0..2^16-1>; opaque payload<0..2^32-1>; } HpkeCiphertext;
//! struct { ReportMetadata report_metadata; opaque public_share<0..2^32-1>;
//!          HpkeCiphertext leader_encrypted_input_share;
//!          HpkeCiphertext helper_encrypted_input_share; } Report;
//! struct { Extension extensions<0..2^16-1>; opaque payload<0..2^32-1>; } PlaintextInputShare;
//! struct { TaskID task_id; ReportMetadata report_metadata; opaque public_share<0..2^32-1>; } InputShareAad;
//! struct { u8 id; u16 kem_id; u16 kdf_id; u16 aead_id; opaque public_key<1..2^16-1>; } HpkeConfig;
//! HpkeConfig HpkeConfigList<0..2^16-1>;
//! ```
//!
//! Written here rather than taken from `janus_messages`, whose dependency tree (url/ICU,
//! derive crates) costs more build time than these few structs; the layout is pinned by a
//! known-answer test.

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prio::codec::{CodecError, Decode, Encode, decode_u16_items, decode_u32_items, encode_u16_items, encode_u32_items};

/// Media type of an upload.
pub const REPORT_MEDIA_TYPE: &str = "application/dap-report";
/// Media type of an HPKE config list.
pub const HPKE_CONFIG_LIST_MEDIA_TYPE: &str = "application/dap-hpke-config-list";
/// HPKE KEM id: DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
/// HPKE KDF id: HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// HPKE AEAD id: AES-128-GCM.
pub const AEAD_AES_128_GCM: u16 = 0x0001;

/// A DAP task id (32 bytes; base64url without padding in text).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskId(pub [u8; 32]);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({self})")
    }
}

impl FromStr for TaskId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let b = URL_SAFE_NO_PAD.decode(s).map_err(|e| format!("not base64url without padding: {e}"))?;
        let a: [u8; 32] = b.as_slice().try_into().map_err(|_| format!("{} bytes, want 32", b.len()))?;
        Ok(Self(a))
    }
}

impl Encode for TaskId {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        bytes.extend_from_slice(&self.0);
        Ok(())
    }
}

fn read_array<const N: usize>(bytes: &mut Cursor<&[u8]>) -> Result<[u8; N], CodecError> {
    let mut a = [0u8; N];
    std::io::Read::read_exact(bytes, &mut a)?;
    Ok(a)
}

impl Decode for TaskId {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self(read_array(bytes)?))
    }
}

/// Report id and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportMetadata {
    /// Report id (also the VDAF nonce).
    pub report_id: [u8; 16],
    /// Seconds since the epoch, a multiple of the task's time precision.
    pub time: u64,
}

impl Encode for ReportMetadata {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        bytes.extend_from_slice(&self.report_id);
        self.time.encode(bytes)
    }
}

impl Decode for ReportMetadata {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self { report_id: read_array(bytes)?, time: u64::decode(bytes)? })
    }
}

/// An HPKE-sealed input share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpkeCiphertext {
    /// Which of the aggregator's HPKE configs sealed it.
    pub config_id: u8,
    /// Encapsulated key.
    pub enc: Vec<u8>,
    /// Ciphertext.
    pub payload: Vec<u8>,
}

impl Encode for HpkeCiphertext {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        self.config_id.encode(bytes)?;
        encode_u16_items(bytes, &(), &self.enc)?;
        encode_u32_items(bytes, &(), &self.payload)
    }
}

impl Decode for HpkeCiphertext {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self { config_id: u8::decode(bytes)?, enc: decode_u16_items(&(), bytes)?, payload: decode_u32_items(&(), bytes)? })
    }
}

/// The upload message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Id and time.
    pub metadata: ReportMetadata,
    /// Encoded Prio3 public share.
    pub public_share: Vec<u8>,
    /// Sealed to the leader.
    pub leader_share: HpkeCiphertext,
    /// Sealed to the helper.
    pub helper_share: HpkeCiphertext,
}

impl Encode for Report {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        self.metadata.encode(bytes)?;
        encode_u32_items(bytes, &(), &self.public_share)?;
        self.leader_share.encode(bytes)?;
        self.helper_share.encode(bytes)
    }
}

impl Decode for Report {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self {
            metadata: ReportMetadata::decode(bytes)?,
            public_share: decode_u32_items(&(), bytes)?,
            leader_share: HpkeCiphertext::decode(bytes)?,
            helper_share: HpkeCiphertext::decode(bytes)?,
        })
    }
}

/// A report extension (none are sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// Extension type.
    pub extension_type: u16,
    /// Data.
    pub data: Vec<u8>,
}

impl Encode for Extension {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        self.extension_type.encode(bytes)?;
        encode_u16_items(bytes, &(), &self.data)
    }
}

impl Decode for Extension {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self { extension_type: u16::decode(bytes)?, data: decode_u16_items(&(), bytes)? })
    }
}

/// What is sealed to each aggregator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaintextInputShare {
    /// Extensions.
    pub extensions: Vec<Extension>,
    /// Encoded Prio3 input share.
    pub payload: Vec<u8>,
}

impl Encode for PlaintextInputShare {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_u16_items(bytes, &(), &self.extensions)?;
        encode_u32_items(bytes, &(), &self.payload)
    }
}

impl Decode for PlaintextInputShare {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self { extensions: decode_u16_items(&(), bytes)?, payload: decode_u32_items(&(), bytes)? })
    }
}

/// Associated data of the input-share encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputShareAad {
    /// Task.
    pub task_id: TaskId,
    /// Report id and time.
    pub metadata: ReportMetadata,
    /// Encoded public share.
    pub public_share: Vec<u8>,
}

impl Encode for InputShareAad {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        self.task_id.encode(bytes)?;
        self.metadata.encode(bytes)?;
        encode_u32_items(bytes, &(), &self.public_share)
    }
}

/// An aggregator's HPKE public configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpkeConfig {
    /// Config id.
    pub id: u8,
    /// KEM id.
    pub kem_id: u16,
    /// KDF id.
    pub kdf_id: u16,
    /// AEAD id.
    pub aead_id: u16,
    /// Public key.
    pub public_key: Vec<u8>,
}

impl Encode for HpkeConfig {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        self.id.encode(bytes)?;
        self.kem_id.encode(bytes)?;
        self.kdf_id.encode(bytes)?;
        self.aead_id.encode(bytes)?;
        encode_u16_items(bytes, &(), &self.public_key)
    }
}

impl Decode for HpkeConfig {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self {
            id: u8::decode(bytes)?,
            kem_id: u16::decode(bytes)?,
            kdf_id: u16::decode(bytes)?,
            aead_id: u16::decode(bytes)?,
            public_key: decode_u16_items(&(), bytes)?,
        })
    }
}

/// The body of `GET {aggregator}/hpke_config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpkeConfigList(pub Vec<HpkeConfig>);

impl Encode for HpkeConfigList {
    fn encode(&self, bytes: &mut Vec<u8>) -> Result<(), CodecError> {
        encode_u16_items(bytes, &(), &self.0)
    }
}

impl Decode for HpkeConfigList {
    fn decode(bytes: &mut Cursor<&[u8]>) -> Result<Self, CodecError> {
        Ok(Self(decode_u16_items(&(), bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_layout_known_answer() {
        let ct = |id: u8, e: u8, p: u8| HpkeCiphertext { config_id: id, enc: vec![e; 2], payload: vec![p; 3] };
        let r = Report {
            metadata: ReportMetadata { report_id: [0xAA; 16], time: 0x0102_0304_0506_0708 },
            public_share: vec![0xBB],
            leader_share: ct(1, 0xC1, 0xD1),
            helper_share: ct(2, 0xC2, 0xD2),
        };
        let mut want = vec![0xAA; 16];
        want.extend([1, 2, 3, 4, 5, 6, 7, 8]); // time, big-endian u64
        want.extend([0, 0, 0, 1, 0xBB]); // public_share<0..2^32-1>
        want.extend([1, 0, 2, 0xC1, 0xC1, 0, 0, 0, 3, 0xD1, 0xD1, 0xD1]);
        want.extend([2, 0, 2, 0xC2, 0xC2, 0, 0, 0, 3, 0xD2, 0xD2, 0xD2]);
        let got = r.get_encoded().unwrap();
        assert_eq!(got, want);
        assert_eq!(Report::get_decoded(&got).unwrap(), r);
        // Trailing bytes are an error, so a body can hold exactly one report and nothing else.
        let mut longer = got.clone();
        longer.push(0);
        assert!(Report::get_decoded(&longer).is_err());
    }

    #[test]
    fn hpke_config_list_and_task_id_round_trip() {
        let l = HpkeConfigList(vec![HpkeConfig { id: 7, kem_id: 0x20, kdf_id: 1, aead_id: 1, public_key: vec![9; 32] }]);
        let b = l.get_encoded().unwrap();
        assert_eq!(&b[..10], &[0, 41, 7, 0, 0x20, 0, 1, 0, 1, 0]);
        assert_eq!(HpkeConfigList::get_decoded(&b).unwrap(), l);
        let t = TaskId([5; 32]);
        assert_eq!(t.to_string().parse::<TaskId>().unwrap(), t);
        assert!("AAAA".parse::<TaskId>().unwrap_err().contains("want 32"));
    }
}
