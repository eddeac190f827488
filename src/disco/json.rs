//! `disco.json`: the list of every blob an image repository needs, with
//! its CID, in the original disco's format:
//!
//! ```json
//! {"blobs":[{"digest":"<hex>","cid":"<cidv1>"},...]}
//! ```
//!
//! disco writes it byte-stable: entries sorted by their `digest` text, no
//! whitespace, CIDs as CIDv1 base32. A sha256 digest is written as bare
//! hex (as the original disco does); a sha512 digest as `sha512:<hex>`.
//! Reading accepts bare hex of either length and `<algorithm>:<hex>`.

use std::collections::BTreeMap;

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::ipfs::{DAG_PB, RAW, cid_v1_string};
use crate::registry::{Algorithm, Digest};

/// Largest `disco.json` read, in bytes.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;
/// Most blobs one image may list.
pub const MAX_BLOBS: usize = 100_000;

/// One blob of an image and the root CID of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// The blob's digest.
    pub digest: Digest,
    /// The UnixFS file holding its bytes.
    pub cid: Cid,
}

/// The parsed (or to be written) `disco.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoJson {
    /// Blobs, sorted by their written digest text, one per digest.
    pub blobs: Vec<BlobRef>,
}

/// Why a `disco.json` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid disco.json: {0}")]
pub struct JsonError(pub String);

#[derive(Serialize, Deserialize)]
struct Entry {
    digest: String,
    cid: String,
}

#[derive(Serialize)]
struct Out<'a> {
    blobs: &'a [Entry],
}

#[derive(Deserialize)]
struct In {
    blobs: Option<Vec<Entry>>,
}

/// The `digest` text disco writes for `d`.
pub fn digest_text(d: &Digest) -> String {
    match d.algorithm() {
        Algorithm::Sha256 => d.hex().to_string(),
        Algorithm::Sha512 => d.to_string(),
    }
}

/// Parses a `digest` field: bare hex (64 → sha256, 128 → sha512) or
/// `<algorithm>:<hex>`.
pub fn parse_digest_text(s: &str) -> Option<Digest> {
    if s.contains(':') {
        return s.parse().ok();
    }
    match s.len() {
        64 => format!("sha256:{s}").parse().ok(),
        128 => format!("sha512:{s}").parse().ok(),
        _ => None,
    }
}

impl DiscoJson {
    /// A list of blobs; sorted and de-duplicated. Fails if one digest is
    /// given two different CIDs.
    pub fn new(blobs: impl IntoIterator<Item = BlobRef>) -> Result<Self, JsonError> {
        let mut by_text: BTreeMap<String, BlobRef> = BTreeMap::new();
        for b in blobs {
            let text = digest_text(&b.digest);
            match by_text.get(&text) {
                Some(prev) if !crate::ipfs::same_cid(&prev.cid, &b.cid) => {
                    return Err(JsonError(format!(
                        "blob {} is listed with two CIDs ({} and {})",
                        b.digest, prev.cid, b.cid
                    )));
                }
                Some(_) => {}
                None => {
                    by_text.insert(text, b);
                }
            }
        }
        Ok(DiscoJson {
            blobs: by_text.into_values().collect(),
        })
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let entries: Vec<Entry> = self
            .blobs
            .iter()
            .map(|b| Entry {
                digest: digest_text(&b.digest),
                cid: cid_v1_string(&b.cid),
            })
            .collect();
        // Serialising strings and a slice cannot fail.
        serde_json::to_vec(&Out { blobs: &entries }).unwrap_or_default()
    }

    /// Parses and validates `disco.json` as another disco wrote it: a
    /// non-empty `blobs` list of valid digests and UnixFS CIDs (raw or
    /// dag-pb), each digest with one CID. Unknown fields are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, JsonError> {
        if bytes.len() > MAX_JSON_BYTES {
            return Err(JsonError(format!(
                "{} bytes; the limit is {MAX_JSON_BYTES}",
                bytes.len()
            )));
        }
        let raw: In = serde_json::from_slice(bytes).map_err(|e| JsonError(e.to_string()))?;
        let entries = raw
            .blobs
            .ok_or_else(|| JsonError("no \"blobs\" list".into()))?;
        if entries.is_empty() {
            return Err(JsonError("the \"blobs\" list is empty".into()));
        }
        if entries.len() > MAX_BLOBS {
            return Err(JsonError(format!(
                "{} blobs; the limit is {MAX_BLOBS}",
                entries.len()
            )));
        }
        let mut blobs = Vec::with_capacity(entries.len());
        for (i, e) in entries.into_iter().enumerate() {
            let digest = parse_digest_text(&e.digest)
                .ok_or_else(|| JsonError(format!("blob {i}: invalid digest {:?}", e.digest)))?;
            let cid = Cid::try_from(e.cid.as_str())
                .map_err(|err| JsonError(format!("blob {i}: invalid CID {:?}: {err}", e.cid)))?;
            if cid.codec() != RAW && cid.codec() != DAG_PB {
                return Err(JsonError(format!(
                    "blob {i}: CID {} is not a UnixFS file (codec {:#x})",
                    e.cid,
                    cid.codec()
                )));
            }
            blobs.push(BlobRef { digest, cid });
        }
        Self::new(blobs)
    }

    /// The CID of `digest`, if listed.
    pub fn cid_of(&self, digest: &Digest) -> Option<&Cid> {
        self.blobs
            .iter()
            .find(|b| &b.digest == digest)
            .map(|b| &b.cid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::block::raw_cid;

    fn blob(data: &[u8]) -> BlobRef {
        BlobRef {
            digest: Digest::sha256(data),
            cid: raw_cid(data),
        }
    }

    #[test]
    fn canonical_bytes_are_sorted_and_compact() {
        let (a, b) = (blob(b"a"), blob(b"b"));
        let one = DiscoJson::new([a.clone(), b.clone()]).unwrap();
        let two = DiscoJson::new([b.clone(), a.clone(), b.clone()]).unwrap();
        assert_eq!(one.to_bytes(), two.to_bytes());
        let text = String::from_utf8(one.to_bytes()).unwrap();
        // sha256("b") = 3e23e816..., sha256("a") = ca978112...
        assert_eq!(
            text,
            format!(
                "{{\"blobs\":[{{\"digest\":\"{}\",\"cid\":\"{}\"}},{{\"digest\":\"{}\",\"cid\":\"{}\"}}]}}",
                b.digest.hex(),
                b.cid,
                a.digest.hex(),
                a.cid
            )
        );
        assert!(text.starts_with("{\"blobs\":[{\"digest\":\"3e23e816"));
        assert_eq!(DiscoJson::parse(text.as_bytes()).unwrap(), one);
    }

    #[test]
    fn sha512_digests_round_trip() {
        let d = Digest::of(Algorithm::Sha512, b"x");
        let j = DiscoJson::new([BlobRef {
            digest: d.clone(),
            cid: raw_cid(b"x"),
        }])
        .unwrap();
        let text = String::from_utf8(j.to_bytes()).unwrap();
        assert!(text.contains(&format!("\"digest\":\"sha512:{}\"", d.hex())));
        assert_eq!(DiscoJson::parse(text.as_bytes()).unwrap(), j);
        let bare = text.replace("sha512:", "");
        assert_eq!(DiscoJson::parse(bare.as_bytes()).unwrap(), j);
    }

    #[test]
    fn accepts_other_cid_forms_and_unknown_fields() {
        let b = blob(b"a");
        let v0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
        let text = format!(
            "{{\"version\":2,\"blobs\":[{{\"digest\":\"sha256:{}\",\"cid\":\"{v0}\",\"size\":1}}]}}",
            b.digest.hex()
        );
        let j = DiscoJson::parse(text.as_bytes()).unwrap();
        assert_eq!(j.blobs[0].cid.to_string(), v0);
        // Written back as CIDv1.
        assert!(
            String::from_utf8(j.to_bytes())
                .unwrap()
                .contains("\"cid\":\"bafybei")
        );
    }

    #[test]
    fn rejects_malformed_input() {
        let hex = Digest::sha256(b"a").hex().to_string();
        let cid = raw_cid(b"a").to_string();
        let other = raw_cid(b"b").to_string();
        let cbor = Cid::new_v1(0x71, *raw_cid(b"a").hash()).to_string();
        for bad in [
            String::new(),
            "[]".into(),
            "{}".into(),
            "{\"blobs\":[]}".into(),
            "{\"blobs\":{}}".into(),
            format!("{{\"blobs\":[{{\"digest\":\"{hex}\"}}]}}"),
            format!("{{\"blobs\":[{{\"cid\":\"{cid}\"}}]}}"),
            format!(
                "{{\"blobs\":[{{\"digest\":\"{}\",\"cid\":\"{cid}\"}}]}}",
                &hex[1..]
            ),
            format!(
                "{{\"blobs\":[{{\"digest\":\"{}\",\"cid\":\"{cid}\"}}]}}",
                hex.to_uppercase()
            ),
            format!("{{\"blobs\":[{{\"digest\":\"md5:{hex}\",\"cid\":\"{cid}\"}}]}}"),
            format!("{{\"blobs\":[{{\"digest\":\"{hex}\",\"cid\":\"bafynotacid\"}}]}}"),
            format!("{{\"blobs\":[{{\"digest\":\"{hex}\",\"cid\":\"{cbor}\"}}]}}"),
            format!("{{\"blobs\":[{{\"digest\":{hex},\"cid\":\"{cid}\"}}]}}"),
            format!(
                "{{\"blobs\":[{{\"digest\":\"{hex}\",\"cid\":\"{cid}\"}},{{\"digest\":\"{hex}\",\"cid\":\"{other}\"}}]}}"
            ),
        ] {
            assert!(DiscoJson::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let big = vec![b' '; MAX_JSON_BYTES + 1];
        assert!(DiscoJson::parse(&big).is_err());
    }
}
