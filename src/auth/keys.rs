//! Keys trusted to sign bearer tokens: the certificates of
//! `auth.token.rootcertbundle` (a token's `x5c` chain must end at one of
//! them; their keys are also trusted by `kid`) and the keys of
//! `auth.token.jwks` (trusted by `kid`).
//!
//! A certificate's key is known under two key IDs: its RFC 7638 JWK
//! thumbprint (SHA-256, base64url; Distribution 3) and its libtrust key ID
//! (Distribution 2 and the token services written for it).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Most certificates in a token's `x5c`.
const MAX_CHAIN: usize = 8;

/// A public key that can verify token signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA: modulus and exponent, big-endian, no leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// ECDSA on P-256 (`ES256`) or P-384 (`ES384`): the point's coordinates.
    Ec { p384: bool, x: Vec<u8>, y: Vec<u8> },
    /// Ed25519 (`EdDSA`).
    Ed25519 { x: Vec<u8> },
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[start..].to_vec()
}

impl PublicKey {
    /// The key of a DER SubjectPublicKeyInfo.
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, String> {
        let alg = &spki.algorithm.algorithm;
        if *alg == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(ParsedKey::RSA(k)) => Ok(PublicKey::Rsa {
                    n: strip_zeros(k.modulus),
                    e: strip_zeros(k.exponent),
                }),
                _ => Err("invalid RSA key".into()),
            }
        } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or("EC key without a named curve")?;
            let (p384, len) = if curve == OID_EC_P256 {
                (false, 32)
            } else if curve == OID_NIST_EC_P384 {
                (true, 48)
            } else {
                return Err(format!("unsupported EC curve {curve}"));
            };
            let point = &spki.subject_public_key.data;
            if point.len() != 1 + 2 * len || point[0] != 4 {
                return Err("EC key is not an uncompressed point".into());
            }
            Ok(PublicKey::Ec {
                p384,
                x: point[1..1 + len].to_vec(),
                y: point[1 + len..].to_vec(),
            })
        } else if *alg == OID_SIG_ED25519 {
            let x = spki.subject_public_key.data.to_vec();
            if x.len() != 32 {
                return Err("invalid Ed25519 key".into());
            }
            Ok(PublicKey::Ed25519 { x })
        } else {
            Err(format!("unsupported key algorithm {alg}"))
        }
    }

    /// The key of a JWK (`kty` RSA, EC or OKP).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, String> {
        let field = |name: &str| -> Result<Vec<u8>, String> {
            let s = jwk
                .get(name)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("JWK lacks {name:?}"))?;
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| format!("JWK {name:?} is not base64url"))
        };
        let text = |name: &str| jwk.get(name).and_then(|v| v.as_str()).unwrap_or("");
        match text("kty") {
            "RSA" => Ok(PublicKey::Rsa {
                n: strip_zeros(&field("n")?),
                e: strip_zeros(&field("e")?),
            }),
            "EC" => {
                let (p384, len) = match text("crv") {
                    "P-256" => (false, 32),
                    "P-384" => (true, 48),
                    c => return Err(format!("unsupported EC curve {c:?}")),
                };
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != len || y.len() != len {
                    return Err("EC coordinates of the wrong length".into());
                }
                Ok(PublicKey::Ec { p384, x, y })
            }
            "OKP" if text("crv") == "Ed25519" => {
                let x = field("x")?;
                if x.len() != 32 {
                    return Err("invalid Ed25519 key".into());
                }
                Ok(PublicKey::Ed25519 { x })
            }
            k => Err(format!("unsupported key type {k:?}")),
        }
    }

    /// True if tokens signed with `alg` may be verified with this key (no
    /// HMAC, no `none`, no cross-family confusion).
    pub fn allows(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            PublicKey::Rsa { .. } => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            PublicKey::Ec { p384: false, .. } => alg == ES256,
            PublicKey::Ec { p384: true, .. } => alg == ES384,
            PublicKey::Ed25519 { .. } => alg == EdDSA,
        }
    }

    /// The verification key.
    pub fn decoding_key(&self) -> Result<DecodingKey, String> {
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        match self {
            PublicKey::Rsa { n, e } => Ok(DecodingKey::from_rsa_raw_components(n, e)),
            PublicKey::Ec { x, y, .. } => DecodingKey::from_ec_components(&b(x), &b(y)),
            PublicKey::Ed25519 { x } => DecodingKey::from_ed_components(&b(x)),
        }
        .map_err(|e| e.to_string())
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url without padding).
    pub fn thumbprint(&self) -> String {
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        // Members in lexicographic order, no whitespace.
        let canonical = match self {
            PublicKey::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b(e), b(n))
            }
            PublicKey::Ec { p384, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                if *p384 { "P-384" } else { "P-256" },
                b(x),
                b(y)
            ),
            PublicKey::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b(x))
            }
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// The libtrust key ID of a DER SubjectPublicKeyInfo: the first 240 bits of
/// its SHA-256, base32, in 12 groups of 4 joined by `:`.
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hash = Sha256::digest(spki_der);
    let text = base32(&hash[..30]);
    text.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 (upper case), without padding.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &byte in data {
        buf = (buf << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Accepts any extended key usage (Distribution's `ExtKeyUsageAny`): the
/// chain's purpose is signing tokens, which no standard EKU names.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// The trust material of token auth.
#[derive(Default)]
pub struct TrustedKeys {
    roots: Vec<CertificateDer<'static>>,
    by_kid: HashMap<String, PublicKey>,
}

impl TrustedKeys {
    /// Loads the certificate bundle and JWK Set; at least one key must
    /// result.
    pub fn load(rootcertbundle: Option<&Path>, jwks: Option<&Path>) -> Result<Self, String> {
        let mut keys = TrustedKeys::default();
        if let Some(path) = rootcertbundle {
            let pem = std::fs::read(path)
                .map_err(|e| format!("token root certificate bundle {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    format!("token root certificate bundle {}: {e}", path.display())
                })?;
                let (_, parsed) = X509Certificate::from_der(&cert).map_err(|e| {
                    format!("token root certificate bundle {}: {e}", path.display())
                })?;
                let spki = parsed.public_key();
                let key = PublicKey::from_spki(spki).map_err(|e| {
                    format!("token root certificate bundle {}: {e}", path.display())
                })?;
                keys.by_kid.insert(libtrust_key_id(spki.raw), key.clone());
                keys.by_kid.insert(key.thumbprint(), key);
                keys.roots.push(cert.into_owned());
            }
            if keys.roots.is_empty() {
                return Err(format!(
                    "token root certificate bundle {}: no certificate found",
                    path.display()
                ));
            }
        }
        if let Some(path) = jwks {
            let text = std::fs::read(path)
                .map_err(|e| format!("token JWK Set {}: {e}", path.display()))?;
            let set: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| format!("token JWK Set {}: {e}", path.display()))?;
            let list = set
                .get("keys")
                .and_then(|k| k.as_array())
                .ok_or_else(|| format!("token JWK Set {}: no \"keys\" array", path.display()))?;
            for (i, jwk) in list.iter().enumerate() {
                let key = PublicKey::from_jwk(jwk)
                    .map_err(|e| format!("token JWK Set {}, key {i}: {e}", path.display()))?;
                let kid = jwk
                    .get("kid")
                    .and_then(|k| k.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| key.thumbprint());
                keys.by_kid.insert(kid, key);
            }
        }
        if keys.by_kid.is_empty() {
            return Err("token auth requires at least one trusted signing key".into());
        }
        Ok(keys)
    }

    /// The trusted key named `kid`.
    pub fn by_kid(&self, kid: &str) -> Option<&PublicKey> {
        self.by_kid.get(kid)
    }

    /// Verifies a token's `x5c` chain (base64 DER, leaf first) up to a root
    /// certificate, and returns the leaf's key.
    pub fn verify_chain(&self, x5c: &[String]) -> Result<PublicKey, String> {
        if x5c.is_empty() || x5c.len() > MAX_CHAIN {
            return Err(format!("x5c must hold 1 to {MAX_CHAIN} certificates"));
        }
        let ders: Vec<CertificateDer<'static>> = x5c
            .iter()
            .map(|c| {
                STANDARD
                    .decode(c)
                    .map(CertificateDer::from)
                    .map_err(|_| "x5c certificate is not base64".to_string())
            })
            .collect::<Result<_, _>>()?;
        let leaf = &ders[0];
        let (_, parsed) =
            X509Certificate::from_der(leaf).map_err(|e| format!("x5c leaf certificate: {e}"))?;
        let key = PublicKey::from_spki(parsed.public_key())?;
        // A root certificate itself is trusted as is (as Go's verifier does
        // for a certificate in the root pool).
        if self.roots.iter().any(|r| r.as_ref() == leaf.as_ref()) {
            if !parsed.validity().is_valid() {
                return Err("x5c certificate expired or not yet valid".into());
            }
            return Ok(key);
        }
        let anchors: Vec<_> = self
            .roots
            .iter()
            .filter_map(|r| webpki::anchor_from_trusted_cert(r).ok())
            .collect();
        let ee = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| format!("x5c leaf certificate: {e}"))?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &ders[1..],
            UnixTime::now(),
            AnyUsage,
            None,
            None,
        )
        .map_err(|e| format!("x5c chain does not verify to a trusted root: {e}"))?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn rfc7638_thumbprint() {
        // The example key of RFC 7638, section 3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
        });
        let key = PublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert!(key.allows(Algorithm::RS256));
        assert!(!key.allows(Algorithm::HS256));
        assert!(!key.allows(Algorithm::ES256));
    }

    #[test]
    fn bad_jwks_are_refused() {
        for jwk in [
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
            serde_json::json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "RSA", "n": "!!", "e": "AQAB"}),
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        ] {
            assert!(PublicKey::from_jwk(&jwk).is_err(), "{jwk}");
        }
    }
}
