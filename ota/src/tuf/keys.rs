//! Public keys and signature verification in securesystemslib's encodings.
//!
//! | keytype   | scheme                 | `keyval.public`      | signature (hex)      |
//! |-----------|------------------------|----------------------|----------------------|
//! | `ed25519` | `ed25519`              | 32 bytes, hex        | 64 bytes             |
//! | `ecdsa`   | `ecdsa-sha2-nistp256`  | SubjectPublicKeyInfo PEM | ASN.1 DER (r, s) |
//! | `rsa`     | `rsassa-pss-sha256`    | SubjectPublicKeyInfo PEM | RSASSA-PSS, MGF1-SHA256, salt = 32 or maximum |
//! | `rsa`     | `rsa-pkcs1v15-sha256`  | SubjectPublicKeyInfo PEM | RSASSA-PKCS1-v1_5    |
//!
//! A key of any other type or scheme parses (a root may list keys this client cannot
//! use) but never verifies a signature.

use super::error::TufError;
use super::json::Json;
use sha2::{Digest, Sha256};

/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const MAX_RSA_BITS: usize = 8192;

/// A public key from root or delegating targets metadata.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA over NIST P-256 with SHA-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// RSA with SHA-256.
    Rsa {
        /// The key.
        key: Box<rsa::RsaPublicKey>,
        /// Padding scheme.
        scheme: RsaScheme,
    },
    /// A key this client does not support; it never verifies.
    Unsupported {
        /// `keytype` as written.
        keytype: String,
        /// `scheme` as written.
        scheme: String,
    },
}

/// RSA signature padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaScheme {
    /// `rsassa-pss-sha256`
    PssSha256,
    /// `rsa-pkcs1v15-sha256`
    Pkcs1v15Sha256,
}

fn str_field<'a>(v: &'a Json, name: &str, what: &str) -> Result<&'a str, TufError> {
    match v.get(name) {
        Some(Json::Str(s)) => Ok(s),
        Some(other) => Err(TufError::malformed(what, format!("field {name:?} must be a string, found {}", other.kind()))),
        None => Err(TufError::malformed(what, format!("missing field {name:?}"))),
    }
}

impl PublicKey {
    /// Parses a key object (`keytype`, `scheme`, `keyval.public`); `what` names it in errors.
    pub fn from_json(v: &Json, what: &str) -> Result<PublicKey, TufError> {
        if !matches!(v, Json::Object(_)) {
            return Err(TufError::malformed(what, "key must be an object"));
        }
        let keytype = str_field(v, "keytype", what)?;
        let scheme = str_field(v, "scheme", what)?;
        let keyval = v.get("keyval").ok_or_else(|| TufError::malformed(what, "missing field \"keyval\""))?;
        if !matches!(keyval, Json::Object(_)) {
            return Err(TufError::malformed(what, "keyval must be an object"));
        }
        let public = str_field(keyval, "public", what)?;
        let bad = |r: String| TufError::malformed(what, r);
        match (keytype, scheme) {
            ("ed25519", "ed25519") => {
                let raw = hex::decode(public).map_err(|e| bad(format!("ed25519 public key is not hex: {e}")))?;
                let arr: [u8; 32] = raw
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad(format!("ed25519 public key must be 32 bytes, got {}", raw.len())))?;
                let k = ed25519_dalek::VerifyingKey::from_bytes(&arr)
                    .map_err(|e| bad(format!("ed25519 public key is not a curve point: {e}")))?;
                Ok(PublicKey::Ed25519(k))
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                use p256::pkcs8::DecodePublicKey;
                let k = p256::PublicKey::from_public_key_pem(public.trim())
                    .map_err(|e| bad(format!("ecdsa public key is not a P-256 SubjectPublicKeyInfo PEM: {e}")))?;
                Ok(PublicKey::EcdsaP256(p256::ecdsa::VerifyingKey::from(k)))
            }
            ("rsa", "rsassa-pss-sha256" | "rsa-pkcs1v15-sha256") => {
                use rsa::pkcs8::DecodePublicKey;
                use rsa::traits::PublicKeyParts;
                let k = rsa::RsaPublicKey::from_public_key_pem(public.trim())
                    .map_err(|e| bad(format!("rsa public key is not a SubjectPublicKeyInfo PEM: {e}")))?;
                if k.n().bits() > MAX_RSA_BITS {
                    return Err(bad(format!("rsa modulus larger than {MAX_RSA_BITS} bits")));
                }
                let scheme = if scheme == "rsassa-pss-sha256" { RsaScheme::PssSha256 } else { RsaScheme::Pkcs1v15Sha256 };
                Ok(PublicKey::Rsa { key: Box::new(k), scheme })
            }
            (kt, sc) => Ok(PublicKey::Unsupported { keytype: kt.to_string(), scheme: sc.to_string() }),
        }
    }

    /// Bytes identifying the key material, so one key listed under two key ids counts once.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            PublicKey::Ed25519(k) => {
                out.extend_from_slice(b"ed25519:");
                out.extend_from_slice(k.as_bytes());
            }
            PublicKey::EcdsaP256(k) => {
                out.extend_from_slice(b"p256:");
                out.extend_from_slice(k.to_encoded_point(true).as_bytes());
            }
            PublicKey::Rsa { key, .. } => {
                use rsa::traits::PublicKeyParts;
                out.extend_from_slice(b"rsa:");
                out.extend_from_slice(&key.n().to_bytes_be());
                out.push(b':');
                out.extend_from_slice(&key.e().to_bytes_be());
            }
            PublicKey::Unsupported { keytype, scheme } => {
                out.extend_from_slice(format!("unsupported:{keytype}:{scheme}").as_bytes());
            }
        }
        out
    }

    /// Checks `sig_hex` over `msg`; `Err` carries the reason.
    pub fn verify(&self, msg: &[u8], sig_hex: &str) -> Result<(), String> {
        let sig = hex::decode(sig_hex).map_err(|e| format!("signature is not hex: {e}"))?;
        match self {
            PublicKey::Ed25519(k) => {
                let s = ed25519_dalek::Signature::from_slice(&sig).map_err(|e| format!("bad ed25519 signature encoding: {e}"))?;
                k.verify_strict(msg, &s).map_err(|_| "ed25519 signature does not verify".to_string())
            }
            PublicKey::EcdsaP256(k) => {
                use p256::ecdsa::signature::Verifier;
                let s = p256::ecdsa::Signature::from_der(&sig).map_err(|e| format!("bad ecdsa DER signature: {e}"))?;
                k.verify(msg, &s).map_err(|_| "ecdsa signature does not verify".to_string())
            }
            PublicKey::Rsa { key, scheme } => {
                use rsa::traits::PublicKeyParts;
                let digest = Sha256::digest(msg);
                match scheme {
                    RsaScheme::Pkcs1v15Sha256 => key
                        .verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
                        .map_err(|_| "rsa-pkcs1v15-sha256 signature does not verify".to_string()),
                    RsaScheme::PssSha256 => {
                        // Signers use a salt of the digest length (securesystemslib) or the
                        // maximum (OpenSSL's default); accept exactly those two.
                        let em_len = key.n().bits().saturating_sub(1).div_ceil(8);
                        let max_salt = em_len.saturating_sub(32 + 2);
                        for salt in [32usize, max_salt] {
                            if key.verify(rsa::Pss::new_with_salt::<Sha256>(salt), &digest, &sig).is_ok() {
                                return Ok(());
                            }
                        }
                        Err("rsassa-pss-sha256 signature does not verify".to_string())
                    }
                }
            }
            PublicKey::Unsupported { keytype, scheme } => {
                Err(format!("unsupported key type {keytype:?} / scheme {scheme:?}"))
            }
        }
    }
}
