//! Blocks and their CIDs: hashing and verification.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256, Sha512};

use super::{DAG_PB, RAW, SHA2_256};

/// Multihash code of sha2-512.
pub const SHA2_512: u64 = 0x13;
/// Multihash code of the identity "hash" (inline data).
pub const IDENTITY: u64 = 0x00;

/// The sha2-256 multihash of `data`.
pub fn sha256_multihash(data: &[u8]) -> Multihash<64> {
    Multihash::wrap(SHA2_256, &Sha256::digest(data)).expect("32-byte digest fits")
}

/// The CIDv1 of `data` with the given codec and a sha2-256 multihash.
pub fn cid_v1(codec: u64, data: &[u8]) -> Cid {
    Cid::new_v1(codec, sha256_multihash(data))
}

/// The CIDv1 of a raw block.
pub fn raw_cid(data: &[u8]) -> Cid {
    cid_v1(RAW, data)
}

/// The CIDv1 of a dag-pb block.
pub fn dag_pb_cid(data: &[u8]) -> Cid {
    cid_v1(DAG_PB, data)
}

/// Why a block was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The CID uses a hash function disco does not implement.
    #[error("unsupported multihash code {0:#x}")]
    UnsupportedHash(u64),
    /// The bytes do not hash to the CID.
    #[error("block does not match its CID")]
    Mismatch,
}

/// Checks that `data` hashes to `cid`'s multihash (sha2-256, sha2-512 or
/// identity).
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), VerifyError> {
    let mh = cid.hash();
    let ok = match mh.code() {
        SHA2_256 => mh.digest() == Sha256::digest(data).as_slice(),
        SHA2_512 => mh.digest() == Sha512::digest(data).as_slice(),
        IDENTITY => mh.digest() == data,
        other => return Err(VerifyError::UnsupportedHash(other)),
    };
    if ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_cids_match_kubo() {
        // Vectors from ipfs-vectors.md (`ipfs add --cid-version=1`).
        assert_eq!(
            raw_cid(b"").to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(
            raw_cid(b"hello world\n").to_string(),
            "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
        );
    }

    #[test]
    fn verify_detects_mismatch() {
        let cid = raw_cid(b"abc");
        assert_eq!(verify(&cid, b"abc"), Ok(()));
        assert_eq!(verify(&cid, b"abd"), Err(VerifyError::Mismatch));
        let v0: Cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
            .parse()
            .unwrap();
        assert_eq!(verify(&v0, b"abc"), Err(VerifyError::Mismatch));
    }
}
