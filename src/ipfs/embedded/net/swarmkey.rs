//! Kubo-format private network keys (`swarm.key`):
//!
//! ```text
//! /key/swarm/psk/1.0.0/
//! /base16/
//! <64 hex characters>
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    /// The generated key could not be written.
    #[error("cannot write the network key {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Name of the network key kept in the node's data directory.
pub const KEY_FILE: &str = "swarm.key";

/// A new random key in Kubo's `swarm.key` format.
pub fn generate() -> String {
    let key: [u8; 32] = rand::random();
    format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", hex::encode(key))
}

/// Writes a key file atomically, readable by its owner only; refuses to
/// replace an existing file.
pub fn write_new(path: &Path, text: &str) -> Result<(), SwarmKeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| SwarmKeyError::Write {
        path: path.display().to_string(),
        source,
    };
    parse_swarm_key(text)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    let written = f.write_all(text.as_bytes()).and_then(|_| f.sync_all());
    drop(f);
    // A hard link fails if the target exists: no race replaces a key.
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked.map_err(err)
}

/// The key file the node uses: `configured` when set; else, for a private
/// node, `<node dir>/swarm.key`, generated with a random key on first start;
/// `None` for an open or public node.
pub fn resolve(
    configured: Option<&Path>,
    private: bool,
    node_dir: &Path,
) -> Result<Option<PathBuf>, SwarmKeyError> {
    if let Some(p) = configured {
        return Ok(Some(p.to_path_buf()));
    }
    if !private {
        return Ok(None);
    }
    let path = node_dir.join(KEY_FILE);
    if !path.exists() {
        match write_new(&path, &generate()) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "generated this node's private network key: only nodes with the same key connect \
                 (`disco network key` prints it, `disco network join` installs it on another node)"
            ),
            // Another process created it meanwhile: use theirs.
            Err(SwarmKeyError::Write { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(path))
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
    fn private_nodes_get_a_key_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(None, false, dir.path()).unwrap(), None);
        let p = resolve(None, true, dir.path()).unwrap().unwrap();
        let first = std::fs::read_to_string(&p).unwrap();
        parse_swarm_key(&first).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The second start keeps the key.
        assert_eq!(resolve(None, true, dir.path()).unwrap().unwrap(), p);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), first);
        assert!(write_new(&p, &generate()).is_err());
        // Two keys differ; a configured file wins.
        assert_ne!(generate(), generate());
        let other = dir.path().join("site.key");
        assert_eq!(
            resolve(Some(&other), true, dir.path()).unwrap().unwrap(),
            other
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
