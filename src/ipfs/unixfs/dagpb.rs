//! The dag-pb codec (`PBNode`/`PBLink` protobuf), encoded canonically as
//! the dag-pb spec requires: links first (field 2), then data (field 1);
//! within a link: hash, name, tsize.

use bytes::Bytes;
use cid::Cid;

/// One link of a dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    /// Target CID.
    pub cid: Cid,
    /// Link name (`Some("")` is encoded, `None` is not).
    pub name: Option<String>,
    /// Cumulative size of the target DAG.
    pub tsize: Option<u64>,
}

/// A dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PbNode {
    /// Links, in the order they are encoded.
    pub links: Vec<PbLink>,
    /// Opaque data (UnixFS `Data` message for UnixFS nodes).
    pub data: Option<Bytes>,
}

/// A malformed dag-pb block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dag-pb: {0}")]
pub struct DecodeError(pub &'static str);

/// Appends a protobuf varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a protobuf varint, advancing `buf`.
pub fn get_varint(buf: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(DecodeError("truncated varint"))?;
        *buf = rest;
        if i == 9 && b > 1 {
            return Err(DecodeError("varint overflow"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint too long"))
}

/// Appends a length-delimited field.
pub fn put_bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends a varint field.
pub fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, v);
}

/// Reads one field header and returns `(field number, wire type)`.
pub fn get_key(buf: &mut &[u8]) -> Result<(u32, u8), DecodeError> {
    let key = get_varint(buf)?;
    let field = u32::try_from(key >> 3).map_err(|_| DecodeError("field number too large"))?;
    Ok((field, (key & 7) as u8))
}

/// Reads a length-delimited payload.
pub fn get_bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let len = get_varint(buf)? as usize;
    if buf.len() < len {
        return Err(DecodeError("truncated field"));
    }
    let (data, rest) = buf.split_at(len);
    *buf = rest;
    Ok(data)
}

/// Skips a field of the given wire type.
pub fn skip_field(buf: &mut &[u8], wire: u8) -> Result<(), DecodeError> {
    match wire {
        0 => get_varint(buf).map(|_| ()),
        1 => advance(buf, 8),
        2 => get_bytes(buf).map(|_| ()),
        5 => advance(buf, 4),
        _ => Err(DecodeError("unsupported wire type")),
    }
}

fn advance(buf: &mut &[u8], n: usize) -> Result<(), DecodeError> {
    if buf.len() < n {
        return Err(DecodeError("truncated field"));
    }
    *buf = &buf[n..];
    Ok(())
}

impl PbLink {
    fn encode_into(&self, out: &mut Vec<u8>) {
        put_bytes_field(out, 1, &self.cid.to_bytes());
        if let Some(name) = &self.name {
            put_bytes_field(out, 2, name.as_bytes());
        }
        if let Some(t) = self.tsize {
            put_varint_field(out, 3, t);
        }
    }

    fn decode(mut buf: &[u8]) -> Result<Self, DecodeError> {
        let (mut cid, mut name, mut tsize) = (None, None, None);
        while !buf.is_empty() {
            match get_key(&mut buf)? {
                (1, 2) => {
                    let raw = get_bytes(&mut buf)?;
                    cid = Some(Cid::try_from(raw).map_err(|_| DecodeError("invalid link CID"))?);
                }
                (2, 2) => {
                    let raw = get_bytes(&mut buf)?;
                    name = Some(
                        String::from_utf8(raw.to_vec())
                            .map_err(|_| DecodeError("link name not UTF-8"))?,
                    );
                }
                (3, 0) => tsize = Some(get_varint(&mut buf)?),
                (_, wire) => skip_field(&mut buf, wire)?,
            }
        }
        Ok(PbLink {
            cid: cid.ok_or(DecodeError("link without hash"))?,
            name,
            tsize,
        })
    }
}

impl PbNode {
    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.links.len() * 48 + self.data.as_ref().map_or(0, |d| d.len() + 8),
        );
        let mut link_buf = Vec::with_capacity(64);
        for link in &self.links {
            link_buf.clear();
            link.encode_into(&mut link_buf);
            put_bytes_field(&mut out, 2, &link_buf);
        }
        if let Some(data) = &self.data {
            put_bytes_field(&mut out, 1, data);
        }
        out
    }

    /// Decodes a block (fields accepted in any order).
    pub fn decode(mut buf: &[u8]) -> Result<Self, DecodeError> {
        let mut node = PbNode::default();
        while !buf.is_empty() {
            match get_key(&mut buf)? {
                (1, 2) => node.data = Some(Bytes::copy_from_slice(get_bytes(&mut buf)?)),
                (2, 2) => node.links.push(PbLink::decode(get_bytes(&mut buf)?)?),
                _ => return Err(DecodeError("unexpected field in PBNode")),
            }
        }
        Ok(node)
    }
}

/// The CIDs a block links to: the links of a dag-pb node, none for raw or
/// identity blocks.
pub fn links_of(cid: &Cid, block: &[u8]) -> Result<Vec<Cid>, DecodeError> {
    if cid.codec() == crate::ipfs::DAG_PB {
        Ok(PbNode::decode(block)?
            .links
            .into_iter()
            .map(|l| l.cid)
            .collect())
    } else {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::block::{dag_pb_cid, raw_cid};

    #[test]
    fn round_trip() {
        let node = PbNode {
            links: vec![
                PbLink {
                    cid: raw_cid(b"a"),
                    name: Some(String::new()),
                    tsize: Some(1),
                },
                PbLink {
                    cid: raw_cid(b"b"),
                    name: Some("b".into()),
                    tsize: None,
                },
            ],
            data: Some(Bytes::from_static(&[8, 2])),
        };
        let enc = node.encode();
        assert_eq!(PbNode::decode(&enc).unwrap(), node);
        assert_eq!(links_of(&dag_pb_cid(&enc), &enc).unwrap().len(), 2);
        assert!(links_of(&raw_cid(&enc), &enc).unwrap().is_empty());
    }

    #[test]
    fn empty_directory_vector() {
        // UnixFS Data{Type: Directory} = 0x08 0x01; CID from ipfs-vectors.md.
        let node = PbNode {
            links: vec![],
            data: Some(Bytes::from_static(&[8, 1])),
        };
        assert_eq!(
            dag_pb_cid(&node.encode()).to_string(),
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(PbNode::decode(&[0xff]).is_err());
        assert!(PbNode::decode(&[0x12, 0x05, 0x0a]).is_err());
    }
}
