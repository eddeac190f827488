//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and streaming
//! digesters.

use std::fmt;
use std::str::FromStr;

use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256, Sha512};

use super::error::RegistryError;

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256 (the default).
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Name as it appears in digests and storage paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algo: Algorithm,
    hex: String,
}

impl Digest {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algo
    }

    /// The lower-case hex encoding.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Digest of `data` with `algo`.
    pub fn of(algo: Algorithm, data: &[u8]) -> Self {
        let mut d = Digester::new(algo);
        d.update(data);
        d.finish()
    }

    /// SHA-256 digest of `data`.
    pub fn sha256(data: &[u8]) -> Self {
        Self::of(Algorithm::Sha256, data)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid =
            |why: &str| RegistryError::digest_invalid(format!("invalid digest {s:?}: {why}"));
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("missing algorithm"))?;
        let algo = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm")),
        };
        if hex.len() != algo.hex_len() {
            return Err(invalid("wrong length"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("not lower-case hex"));
        }
        Ok(Digest {
            algo,
            hex: hex.to_string(),
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An incremental hasher for one algorithm whose state can be saved and
/// restored (so resumable uploads survive restarts).
#[derive(Clone)]
pub enum Digester {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-512 state.
    Sha512(Sha512),
}

impl Digester {
    /// A fresh hasher.
    pub fn new(algo: Algorithm) -> Self {
        match algo {
            Algorithm::Sha256 => Digester::Sha256(Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(Sha512::new()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Digester::Sha256(_) => Algorithm::Sha256,
            Digester::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algo, hex) = match self {
            Digester::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Digester::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algo, hex }
    }

    /// Serialises the internal state.
    pub fn save(&self) -> Vec<u8> {
        match self {
            Digester::Sha256(h) => h.serialize().to_vec(),
            Digester::Sha512(h) => h.serialize().to_vec(),
        }
    }

    /// Restores a state saved by [`Digester::save`]; `None` if it is not one.
    pub fn restore(algo: Algorithm, state: &[u8]) -> Option<Self> {
        match algo {
            Algorithm::Sha256 => Sha256::deserialize(state.try_into().ok()?)
                .ok()
                .map(Digester::Sha256),
            Algorithm::Sha512 => Sha512::deserialize(state.try_into().ok()?)
                .ok()
                .map(Digester::Sha512),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let d = Digest::sha256(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        let d512 = Digest::of(Algorithm::Sha512, b"abc");
        assert!(d512.hex().starts_with("ddaf35a193617aba"));
        assert_eq!(d512.to_string().parse::<Digest>().unwrap(), d512);
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha256:../../etc/passwd",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn save_restore() {
        for algo in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut h = Digester::new(algo);
            h.update(&[7u8; 1000]);
            let saved = h.save();
            let mut r = Digester::restore(algo, &saved).unwrap();
            h.update(b"tail");
            r.update(b"tail");
            assert_eq!(h.finish(), r.finish());
            assert!(Digester::restore(algo, &saved[1..]).is_none());
        }
    }
}
