//! CID prefixes: the version, codec and hash function bitswap 1.1.0+ sends
//! with each block, from which the receiver recomputes the block's CID.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256, Sha512};

use crate::ipfs::block::{IDENTITY, SHA2_512};
use crate::ipfs::unixfs::dagpb::{DecodeError, get_varint, put_varint};
use crate::ipfs::{DAG_PB, SHA2_256};

/// Largest identity multihash accepted (as Kubo).
const MAX_IDENTITY_LEN: u64 = 128;

/// `<version><codec><multihash code><digest length>` as varints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// CID version (0 or 1).
    pub version: u64,
    /// Multicodec of the content.
    pub codec: u64,
    /// Multihash function code.
    pub mh_code: u64,
    /// Digest length in bytes.
    pub mh_len: u64,
}

/// Why a block's CID could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The hash function is not one disco implements.
    #[error("unsupported multihash code {0:#x}")]
    UnsupportedHash(u64),
    /// The prefix is inconsistent (bad version, digest length).
    #[error("invalid CID prefix")]
    Invalid,
}

impl Prefix {
    /// The prefix of a CIDv0 (dag-pb, sha2-256).
    pub const V0_DAG_PB: Prefix = Prefix {
        version: 0,
        codec: DAG_PB,
        mh_code: SHA2_256,
        mh_len: 32,
    };

    /// The prefix of `cid`.
    pub fn of(cid: &Cid) -> Self {
        Prefix {
            version: u64::from(cid.version()),
            codec: cid.codec(),
            mh_code: cid.hash().code(),
            mh_len: u64::from(cid.hash().size()),
        }
    }

    /// Wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8);
        for v in [self.version, self.codec, self.mh_code, self.mh_len] {
            put_varint(&mut out, v);
        }
        out
    }

    /// Parses the wire form.
    pub fn from_bytes(mut buf: &[u8]) -> Result<Self, DecodeError> {
        let p = Prefix {
            version: get_varint(&mut buf)?,
            codec: get_varint(&mut buf)?,
            mh_code: get_varint(&mut buf)?,
            mh_len: get_varint(&mut buf)?,
        };
        if !buf.is_empty() {
            return Err(DecodeError("trailing bytes after CID prefix"));
        }
        Ok(p)
    }

    /// Hashes `data` and returns the CID it has under this prefix.
    pub fn cid_of(&self, data: &[u8]) -> Result<Cid, PrefixError> {
        let mh = match (self.mh_code, self.mh_len) {
            (SHA2_256, 32) => Multihash::wrap(SHA2_256, &Sha256::digest(data)),
            (SHA2_512, 64) => Multihash::wrap(SHA2_512, &Sha512::digest(data)),
            (IDENTITY, len) if len == data.len() as u64 && len <= MAX_IDENTITY_LEN => {
                Multihash::wrap(IDENTITY, data)
            }
            (SHA2_256 | SHA2_512 | IDENTITY, _) => return Err(PrefixError::Invalid),
            (other, _) => return Err(PrefixError::UnsupportedHash(other)),
        }
        .map_err(|_| PrefixError::Invalid)?;
        match self.version {
            0 if self.codec == DAG_PB && self.mh_code == SHA2_256 => {
                Cid::new_v0(mh).map_err(|_| PrefixError::Invalid)
            }
            1 => Ok(Cid::new_v1(self.codec, mh)),
            _ => Err(PrefixError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::RAW;
    use crate::ipfs::block::raw_cid;

    #[test]
    fn v0_prefix_bytes() {
        assert_eq!(Prefix::V0_DAG_PB.to_bytes(), vec![0x00, 0x70, 0x12, 0x20]);
        let v0: Cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
            .parse()
            .unwrap();
        assert_eq!(Prefix::of(&v0), Prefix::V0_DAG_PB);
    }

    #[test]
    fn raw_prefix_recomputes_cid() {
        let cid = raw_cid(b"hello world\n");
        let p = Prefix::of(&cid);
        assert_eq!(p.to_bytes(), vec![0x01, 0x55, 0x12, 0x20]);
        assert_eq!(Prefix::from_bytes(&p.to_bytes()).unwrap(), p);
        assert_eq!(p.cid_of(b"hello world\n").unwrap(), cid);
        assert_ne!(p.cid_of(b"hello world!").unwrap(), cid);
        assert_eq!(p.codec, RAW);
    }

    #[test]
    fn unsupported_and_invalid() {
        let blake3 = Prefix {
            version: 1,
            codec: RAW,
            mh_code: 0x1e,
            mh_len: 32,
        };
        assert_eq!(blake3.cid_of(b"x"), Err(PrefixError::UnsupportedHash(0x1e)));
        let bad_len = Prefix {
            mh_len: 20,
            ..Prefix::of(&raw_cid(b"x"))
        };
        assert_eq!(bad_len.cid_of(b"x"), Err(PrefixError::Invalid));
        let bad_v0 = Prefix {
            version: 0,
            codec: RAW,
            mh_code: SHA2_256,
            mh_len: 32,
        };
        assert_eq!(bad_v0.cid_of(b"x"), Err(PrefixError::Invalid));
    }
}
