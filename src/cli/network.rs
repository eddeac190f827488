//! `disco network key` and `disco network join`: the private network's key.
//!
//! A fresh node makes its own private network (a random Kubo-format
//! `swarm.key` in its data directory). To let a second disco share
//! images with the first, give it the same key: `disco network key` on the
//! first prints it; `disco network join KEYFILE` (or `-` for standard
//! input) on the second installs it, then restart that disco.

use std::path::PathBuf;

use super::CliResult;
use crate::config::{Config, data_dir};
use crate::ipfs::embedded::net::swarmkey::{self, KEY_FILE, parse_swarm_key};
use crate::server::ipfs_config;
use crate::storage::ipfs::backend::embedded_path;

/// The key file this configuration's node uses, or why there is none.
fn key_path(config: &Config) -> Result<(PathBuf, bool), String> {
    let ipfs = ipfs_config(config)
        .ok_or("the configured storage is not IPFS: there is no IPFS node and no network key")?;
    if ipfs.router.is_some() {
        return Err(
            "storage.ipfs.router is set: the network is the Kubo nodes' own \
             (their repository's swarm.key)"
                .into(),
        );
    }
    let net = &ipfs.embedded.net;
    if let Some(p) = &net.swarmkey {
        return Ok((p.clone(), true));
    }
    if !net.is_private() {
        return Err(
            "this node runs an open network (storage.ipfs.embedded.private: false or \
             public: true): it has no key"
                .into(),
        );
    }
    Ok((embedded_path(&ipfs, &data_dir()).join(KEY_FILE), false))
}

/// `disco network key`: prints the node's network key (creating it, as the
/// first start would, if the node has none yet).
pub fn key(config: &Config) -> CliResult {
    let (path, configured) = key_path(config)?;
    let path = if configured {
        path
    } else {
        let dir = path.parent().unwrap_or(&path).to_path_buf();
        swarmkey::resolve(None, true, &dir)
            .map_err(|e| e.to_string())?
            .unwrap_or(path)
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("reading the network key {}: {e}", path.display()))?;
    parse_swarm_key(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// `disco network join`: installs `text` as this node's key. An existing
/// different key is replaced only with `force`.
pub fn join(config: &Config, text: &str, force: bool) -> CliResult {
    let (path, configured) = key_path(config)?;
    if configured {
        return Err(format!(
            "this node reads its key from storage.ipfs.embedded.swarmkey ({}): replace that file",
            path.display()
        ));
    }
    let new = parse_swarm_key(text).map_err(|e| format!("the key given: {e}"))?;
    let canonical = format!(
        "/key/swarm/psk/1.0.0/\n/base16/\n{}\n",
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .nth(2)
            .unwrap_or_default()
    );
    if let Ok(old) = std::fs::read_to_string(&path) {
        let same = parse_swarm_key(&old)
            .map(|k| k.fingerprint().to_string() == new.fingerprint().to_string())
            .unwrap_or(false);
        if same {
            return Ok(format!("{} already holds this key\n", path.display()));
        }
        if !force {
            return Err(format!(
                "{} holds a different key (this node's current network); pass --force to \
                 replace it",
                path.display()
            ));
        }
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    swarmkey::write_new(&path, &canonical).map_err(|e| e.to_string())?;
    Ok(format!(
        "network key installed at {}; restart disco to join the network (fingerprint {})\n",
        path.display(),
        new.fingerprint()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, extra: &str) -> Config {
        yaml_serde::from_str(&format!(
            "storage:\n  ipfs:\n    embedded:\n      path: {}\n{extra}",
            dir.display()
        ))
        .unwrap()
    }

    #[test]
    fn key_then_join() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let key_a = key(&config(a.path(), "")).unwrap();
        assert_eq!(key(&config(a.path(), "")).unwrap(), key_a, "stable");
        let cb = config(b.path(), "");
        let key_b = key(&cb).unwrap();
        assert_ne!(key_a, key_b);
        let err = join(&cb, &key_a, false).unwrap_err();
        assert!(err.contains("--force"), "{err}");
        join(&cb, &key_a, true).unwrap();
        assert_eq!(key(&cb).unwrap(), key_a);
        assert!(join(&cb, &key_a, false).unwrap().contains("already"));
        assert!(join(&cb, "not a key", true).is_err());
        let open = config(b.path(), "      private: false\n");
        assert!(key(&open).unwrap_err().contains("open network"));
    }
}
