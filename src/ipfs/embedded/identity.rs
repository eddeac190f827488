//! The node's persistent ed25519 identity (`identity.key` in the data
//! directory, libp2p protobuf encoding, mode 0600).

use std::fs;
use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;

use crate::ipfs::{IpfsError, Result};

/// The key's file name in the data directory.
pub(crate) const FILE: &str = "identity.key";

/// Loads the key at `path`, creating it on first start.
pub(crate) fn load_or_create(path: &Path) -> Result<Keypair> {
    let err = |e: String| IpfsError::Other(format!("node identity {}: {e}", path.display()));
    match fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            let tmp = path.with_extension("tmp");
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp).map_err(|e| err(e.to_string()))?;
            f.write_all(&bytes).map_err(|e| err(e.to_string()))?;
            f.sync_all().map_err(|e| err(e.to_string()))?;
            fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}
