//! JSON answers of the Kubo RPC API, parsed liberally: sizes may be numbers
//! or strings, CIDs come in any multibase (or CIDv0) and are parsed, lists
//! may be `null`.

use serde::{Deserialize, Deserializer};

use crate::ipfs::{Cid, EntryKind, IpfsError, MfsEntry, MfsStat, Result};

/// A `u64` given as a JSON number or a decimal string; missing/null is 0.
pub fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u64),
        Float(f64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(0),
        Some(Raw::Num(n)) => Ok(n),
        Some(Raw::Float(f)) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(f as u64),
        Some(Raw::Float(f)) => Err(serde::de::Error::custom(format!("bad size {f}"))),
        Some(Raw::Text(t)) => t
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("bad size {t:?}"))),
    }
}

/// Parses a CID as a node printed it (base58btc CIDv0, or CIDv1 in any
/// multibase).
pub fn parse_cid(text: &str) -> Result<Cid> {
    let t = text.trim();
    let t = t.strip_prefix("/ipfs/").unwrap_or(t);
    Cid::try_from(t).map_err(|e| IpfsError::Other(format!("node answered a bad CID {t:?}: {e}")))
}

/// `files/stat`.
#[derive(Debug, Deserialize)]
pub struct StatResp {
    #[serde(rename = "Hash")]
    pub hash: String,
    #[serde(rename = "Size", deserialize_with = "lenient_u64", default)]
    pub size: u64,
    #[serde(rename = "CumulativeSize", deserialize_with = "lenient_u64", default)]
    pub cumulative_size: u64,
    #[serde(rename = "Type", default)]
    pub kind: Option<String>,
}

impl StatResp {
    /// The typed form.
    pub fn into_stat(self) -> Result<MfsStat> {
        let kind = match self.kind.as_deref() {
            Some("directory") | Some("hamt-sharded-directory") => EntryKind::Directory,
            _ => EntryKind::File,
        };
        Ok(MfsStat {
            cid: parse_cid(&self.hash)?,
            size: if kind == EntryKind::Directory {
                0
            } else {
                self.size
            },
            cumulative_size: self.cumulative_size,
            kind,
        })
    }
}

/// An entry kind given as Kubo's number (0 file, 1 directory) or a word.
fn lenient_kind<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<EntryKind, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(i64),
        Text(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        Some(Raw::Num(1)) => EntryKind::Directory,
        Some(Raw::Text(t)) if t.contains("dir") => EntryKind::Directory,
        _ => EntryKind::File,
    })
}

/// One `files/ls` entry.
#[derive(Debug, Deserialize)]
pub struct LsEntry {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(
        rename = "Type",
        deserialize_with = "lenient_kind",
        default = "file_kind"
    )]
    pub kind: EntryKind,
    #[serde(rename = "Size", deserialize_with = "lenient_u64", default)]
    pub size: u64,
    #[serde(rename = "Hash", default)]
    pub hash: String,
}

fn file_kind() -> EntryKind {
    EntryKind::File
}

/// `files/ls` (Kubo answers `"Entries": null` for an empty directory).
#[derive(Debug, Deserialize)]
pub struct LsResp {
    #[serde(rename = "Entries", default)]
    pub entries: Option<Vec<LsEntry>>,
}

impl LsResp {
    /// Typed entries, sorted by name.
    pub fn into_entries(self) -> Result<Vec<MfsEntry>> {
        let mut out = Vec::new();
        for e in self.entries.unwrap_or_default() {
            out.push(MfsEntry {
                cid: parse_cid(&e.hash)?,
                size: if e.kind == EntryKind::Directory {
                    0
                } else {
                    e.size
                },
                kind: e.kind,
                name: e.name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// One object of the `add` output stream (progress objects have no `Hash`).
#[derive(Debug, Deserialize)]
pub struct AddEvent {
    #[serde(rename = "Hash", default)]
    pub hash: Option<String>,
    #[serde(rename = "Size", deserialize_with = "lenient_u64", default)]
    pub size: u64,
}

/// `block/put` and `block/stat`.
#[derive(Debug, Deserialize)]
pub struct BlockResp {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Size", deserialize_with = "lenient_u64", default)]
    pub size: u64,
}

/// `files/flush`.
#[derive(Debug, Deserialize)]
pub struct FlushResp {
    #[serde(rename = "Cid", alias = "Hash")]
    pub cid: String,
}

/// `id`.
#[derive(Debug, Deserialize)]
pub struct IdResp {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Addresses", default)]
    pub addresses: Option<Vec<String>>,
    #[serde(rename = "AgentVersion", default)]
    pub agent: Option<String>,
}

/// One object of the `refs` output stream.
#[derive(Debug, Deserialize)]
pub struct RefEvent {
    #[serde(rename = "Ref", default)]
    pub reference: String,
    #[serde(rename = "Err", default)]
    pub err: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_forms() {
        // js-ipfs: CIDv1 in base58btc, numeric sizes.
        let s: StatResp = serde_json::from_str(
            r#"{"Type":"file","Blocks":2,"Size":262145,"Hash":"zdj7Wj7gtPF8KfVP2steidk1WyyYCjK6xUFsBvF1uwVxypNhP","CumulativeSize":262249,"WithLocality":false,"Mode":"0644"}"#,
        )
        .unwrap();
        let st = s.into_stat().unwrap();
        assert_eq!(
            st.cid.to_string(),
            "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"
        );
        assert_eq!(
            (st.size, st.cumulative_size, st.kind),
            (262145, 262249, EntryKind::File)
        );
        // Sizes as strings, base32 CID.
        let s: StatResp = serde_json::from_str(
            r#"{"Type":"directory","Size":"0","Hash":"bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354","CumulativeSize":"4"}"#,
        )
        .unwrap();
        let st = s.into_stat().unwrap();
        assert_eq!(
            (st.size, st.cumulative_size, st.kind),
            (0, 4, EntryKind::Directory)
        );
        assert!(serde_json::from_str::<StatResp>(r#"{"Hash":"x","Size":"abc"}"#).is_err());
    }

    #[test]
    fn ls_forms() {
        let l: LsResp = serde_json::from_str(r#"{"Entries":null}"#).unwrap();
        assert!(l.into_entries().unwrap().is_empty());
        let l: LsResp = serde_json::from_str(
            r#"{"Entries":[{"Name":"f","Type":0,"Size":"12","Hash":"QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"},{"Name":"d","Type":1,"Size":0,"Hash":"QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn","Mode":"0755"}]}"#,
        )
        .unwrap();
        let e = l.into_entries().unwrap();
        assert_eq!(e[0].name, "d");
        assert_eq!(e[0].kind, EntryKind::Directory);
        assert_eq!(
            (e[1].name.as_str(), e[1].size, e[1].kind),
            ("f", 12, EntryKind::File)
        );
    }
}
