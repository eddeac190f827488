//! Kubo-format private network keys (`swarm.key`):
//!
//! ```text
//! /key/swarm/psk/1.0.0/
//! /base16/
//! <64 hex characters>
//! ```

use std::path::Path;

use libp2p::pnet::PreSharedKey;

/// Why a swarm key was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SwarmKeyError {
    /// The file could not be read.
    #[error("cannot read swarm key {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The contents are not a Kubo swarm key.
    #[error("invalid swarm key: {0}")]
    Format(&'static str),
}

/// Parses the text of a `swarm.key`.
pub fn parse_swarm_key(text: &str) -> Result<PreSharedKey, SwarmKeyError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("/key/swarm/psk/1.0.0/") {
        return Err(SwarmKeyError::Format(
            "first line must be /key/swarm/psk/1.0.0/",
        ));
    }
    if lines.next() != Some("/base16/") {
        return Err(SwarmKeyError::Format(
            "second line must be /base16/ (the only encoding supported)",
        ));
    }
    let hex_line = lines
        .next()
        .ok_or(SwarmKeyError::Format("missing key line"))?;
    if lines.next().is_some() {
        return Err(SwarmKeyError::Format("unexpected text after the key"));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_line, &mut key)
        .map_err(|_| SwarmKeyError::Format("key must be 64 hexadecimal characters"))?;
    Ok(PreSharedKey::new(key))
}

/// Reads and parses a `swarm.key` file.
pub fn read_swarm_key(path: &Path) -> Result<PreSharedKey, SwarmKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| SwarmKeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_swarm_key(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/key/swarm/psk/1.0.0/\n/base16/\n\
        0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n";

    #[test]
    fn parses_kubo_key() {
        let k = parse_swarm_key(KEY).unwrap();
        let again = parse_swarm_key(&KEY.replace('\n', "\r\n")).unwrap();
        assert_eq!(k.fingerprint().to_string(), again.fingerprint().to_string());
        // libp2p's own parser agrees on the key.
        let theirs: PreSharedKey = KEY.trim_end().parse().unwrap();
        assert_eq!(
            k.fingerprint().to_string(),
            theirs.fingerprint().to_string()
        );
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(parse_swarm_key("").is_err());
        assert!(parse_swarm_key(&KEY.replace("base16", "base64")).is_err());
        assert!(parse_swarm_key(&KEY.replace("0123456789abcdef\n", "0123\n")).is_err());
        assert!(parse_swarm_key(&KEY.replace("01234", "zz234")).is_err());
        assert!(parse_swarm_key(&format!("{KEY}extra\n")).is_err());
    }
}
