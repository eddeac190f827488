//! Pins, persisted in `pins` (one `<cid> recursive|direct` per line,
//! replaced atomically on change).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cid::Cid;
use parking_lot::Mutex;

use super::mfs::write_atomic;
use crate::ipfs::{IpfsError, Result, to_v1};

/// The pin set.
pub(crate) struct Pins {
    file: PathBuf,
    pins: Mutex<BTreeMap<Cid, bool>>,
}

impl Pins {
    /// Loads `dir/pins`.
    pub fn open(dir: &Path) -> Result<Self> {
        let file = dir.join("pins");
        let mut pins = BTreeMap::new();
        match fs::read_to_string(&file) {
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let mut parts = line.split_whitespace();
                    let cid: Cid = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| {
                        IpfsError::Other(format!("bad line in {}: {line:?}", file.display()))
                    })?;
                    pins.insert(cid, parts.next() != Some("direct"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IpfsError::Other(format!("reading {}: {e}", file.display()))),
        }
        Ok(Pins {
            file,
            pins: Mutex::new(pins),
        })
    }

    fn save(&self, pins: &BTreeMap<Cid, bool>) -> Result<()> {
        let text: String = pins
            .iter()
            .map(|(c, r)| format!("{c} {}\n", if *r { "recursive" } else { "direct" }))
            .collect();
        write_atomic(&self.file, text.as_bytes())
    }

    /// Adds (or upgrades) a pin.
    pub fn add(&self, cid: &Cid, recursive: bool) -> Result<()> {
        let mut pins = self.pins.lock();
        let cid = to_v1(cid);
        let entry = pins.entry(cid).or_insert(recursive);
        *entry |= recursive;
        self.save(&pins)
    }

    /// Removes a pin; `NotFound` if not pinned.
    pub fn remove(&self, cid: &Cid) -> Result<()> {
        let mut pins = self.pins.lock();
        if pins.remove(&to_v1(cid)).is_none() {
            return Err(IpfsError::NotFound(format!("{cid} is not pinned")));
        }
        self.save(&pins)
    }

    /// All pins as `(cid, recursive)`.
    pub fn list(&self) -> Vec<(Cid, bool)> {
        self.pins.lock().iter().map(|(c, r)| (*c, *r)).collect()
    }
}
