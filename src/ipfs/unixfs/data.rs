//! The UnixFS `Data` protobuf carried in the data field of dag-pb nodes.
//!
//! Encoded in field order, as Kubo and the JS importer do: Type (1), Data
//! (2), filesize (3), blocksizes (4, unpacked), hashType (5), fanout (6).
//! `mode` (7) and `mtime` (8) are skipped on decode; disco never writes them.

use bytes::Bytes;

use super::dagpb::{
    DecodeError, get_bytes, get_key, get_varint, put_bytes_field, put_varint_field, skip_field,
};

/// UnixFS node type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// Raw file data (CIDv0-era protobuf leaves).
    Raw,
    /// Flat directory.
    Directory,
    /// File (root or internal node).
    File,
    /// Metadata (unsupported, decoded only).
    Metadata,
    /// Symbolic link.
    Symlink,
    /// HAMT-sharded directory shard.
    HamtShard,
}

impl DataType {
    fn code(self) -> u64 {
        match self {
            DataType::Raw => 0,
            DataType::Directory => 1,
            DataType::File => 2,
            DataType::Metadata => 3,
            DataType::Symlink => 4,
            DataType::HamtShard => 5,
        }
    }

    fn from_code(c: u64) -> Result<Self, DecodeError> {
        Ok(match c {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            _ => return Err(DecodeError("unknown UnixFS type")),
        })
    }
}

/// A UnixFS `Data` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixFsData {
    /// Node type.
    pub kind: DataType,
    /// Inline bytes (file data, or the HAMT bitfield).
    pub data: Option<Bytes>,
    /// Total file size under this node.
    pub filesize: Option<u64>,
    /// File bytes under each link, in link order.
    pub blocksizes: Vec<u64>,
    /// HAMT hash function (multicodec; 0x22 = murmur3-x64-64).
    pub hash_type: Option<u64>,
    /// HAMT fanout.
    pub fanout: Option<u64>,
}

impl UnixFsData {
    /// A message of the given type with nothing else set.
    pub fn new(kind: DataType) -> Self {
        UnixFsData {
            kind,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
        }
    }

    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.blocksizes.len() * 5);
        put_varint_field(&mut out, 1, self.kind.code());
        if let Some(d) = &self.data {
            put_bytes_field(&mut out, 2, d);
        }
        if let Some(s) = self.filesize {
            put_varint_field(&mut out, 3, s);
        }
        for b in &self.blocksizes {
            put_varint_field(&mut out, 4, *b);
        }
        if let Some(h) = self.hash_type {
            put_varint_field(&mut out, 5, h);
        }
        if let Some(f) = self.fanout {
            put_varint_field(&mut out, 6, f);
        }
        out
    }

    /// Decodes a message (blocksizes packed or not).
    pub fn decode(mut buf: &[u8]) -> Result<Self, DecodeError> {
        let mut kind = None;
        let mut msg = UnixFsData::new(DataType::Raw);
        while !buf.is_empty() {
            match get_key(&mut buf)? {
                (1, 0) => kind = Some(DataType::from_code(get_varint(&mut buf)?)?),
                (2, 2) => msg.data = Some(Bytes::copy_from_slice(get_bytes(&mut buf)?)),
                (3, 0) => msg.filesize = Some(get_varint(&mut buf)?),
                (4, 0) => msg.blocksizes.push(get_varint(&mut buf)?),
                (4, 2) => {
                    let mut packed = get_bytes(&mut buf)?;
                    while !packed.is_empty() {
                        msg.blocksizes.push(get_varint(&mut packed)?);
                    }
                }
                (5, 0) => msg.hash_type = Some(get_varint(&mut buf)?),
                (6, 0) => msg.fanout = Some(get_varint(&mut buf)?),
                (_, wire) => skip_field(&mut buf, wire)?,
            }
        }
        msg.kind = kind.ok_or(DecodeError("UnixFS Data without Type"))?;
        Ok(msg)
    }

    /// Bytes of file content this node stands for: `filesize` if set,
    /// otherwise inline data plus blocksizes.
    pub fn file_len(&self) -> u64 {
        self.filesize.unwrap_or_else(|| {
            self.data.as_ref().map_or(0, |d| d.len() as u64) + self.blocksizes.iter().sum::<u64>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut m = UnixFsData::new(DataType::File);
        m.filesize = Some(300000);
        m.blocksizes = vec![262144, 37856];
        let enc = m.encode();
        assert_eq!(UnixFsData::decode(&enc).unwrap(), m);
        assert_eq!(UnixFsData::new(DataType::Directory).encode(), vec![8, 1]);
        // Packed blocksizes are accepted.
        let packed = [8, 2, 0x22, 2, 1, 2];
        assert_eq!(UnixFsData::decode(&packed).unwrap().blocksizes, vec![1, 2]);
        assert!(UnixFsData::decode(&[8, 9]).is_err());
        assert!(UnixFsData::decode(&[0x10, 1]).is_err());
    }
}
