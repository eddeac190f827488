//! Basic authentication against an Apache htpasswd file, read as
//! Distribution reads it: one `user:hash` per line, blank lines and lines
//! starting with `#` skipped, bcrypt hashes only (`htpasswd -B`).
//!
//! bcrypt is slow on purpose, so verified credentials are remembered for a
//! short time, keyed by a SHA-256 of the file's generation, the user and
//! the password (the password itself is never kept). The cache is dropped
//! whenever the file changes. bcrypt runs on the blocking pool, a few at a
//! time, and unknown users cost one bcrypt too (no user enumeration by
//! timing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use super::reload::FileStamp;

/// How long a verified user:password pair is trusted without bcrypt.
const GOOD_TTL: Duration = Duration::from_secs(60);
/// How long a wrong pair is answered without bcrypt (a client retrying
/// with a stale password).
const BAD_TTL: Duration = Duration::from_secs(5);
/// Most remembered pairs; the cache is cleared when full.
const CACHE_ENTRIES: usize = 4096;
/// bcrypt verifications at once.
const BCRYPT_CONCURRENCY: usize = 2;

/// Why an htpasswd file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// The file cannot be read.
    #[error("htpasswd file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a bcrypt entry.
    #[error("htpasswd file {path}, line {line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Parses htpasswd text; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<HashMap<String, String>, HtpasswdError> {
    let mut out = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| HtpasswdError::Line {
            path: path.display().to_string(),
            line: i + 1,
            message,
        };
        let Some((user, hash)) = line.split_once(':') else {
            return Err(bad("expected user:hash".into()));
        };
        if user.is_empty() {
            return Err(bad("empty user name".into()));
        }
        if !is_bcrypt(hash) {
            return Err(bad(format!(
                "user {user:?}: only bcrypt hashes are supported (create entries with `htpasswd -B`)"
            )));
        }
        out.insert(user.to_string(), hash.to_string());
    }
    Ok(out)
}

/// True for a modular-crypt bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$`,
/// cost, 53 characters of salt and hash).
fn is_bcrypt(h: &str) -> bool {
    let b = h.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

struct Loaded {
    users: HashMap<String, String>,
    generation: u64,
    stamp: FileStamp,
    /// A hash of the same cost as the file's, verified for unknown users.
    decoy: String,
}

/// A watched htpasswd file with its credential cache.
pub struct Htpasswd {
    path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
    cache: Mutex<HashMap<[u8; 32], (Instant, bool)>>,
    bcrypt: Semaphore,
}

fn decoy_for(users: &HashMap<String, String>) -> String {
    let cost = users
        .values()
        .next()
        .and_then(|h| h[4..6].parse::<u32>().ok())
        .unwrap_or(bcrypt::DEFAULT_COST)
        .clamp(4, 16);
    bcrypt::hash("disco decoy password", cost).unwrap_or_default()
}

impl Htpasswd {
    /// Reads and parses the file; a missing or malformed file is an error.
    pub fn open(path: &Path) -> Result<Self, HtpasswdError> {
        let (users, stamp) = read(path)?;
        let decoy = decoy_for(&users);
        Ok(Self {
            path: path.to_path_buf(),
            loaded: RwLock::new(Arc::new(Loaded {
                users,
                generation: 0,
                stamp,
                decoy,
            })),
            cache: Mutex::new(HashMap::new()),
            bcrypt: Semaphore::new(BCRYPT_CONCURRENCY),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.loaded.read().users.len()
    }

    /// True with no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads the file if it changed (or `force`). A file that became
    /// unreadable or malformed keeps the previous users in effect and is
    /// reported; `Ok(true)` when new contents were loaded.
    pub fn reload(&self, force: bool) -> Result<bool, HtpasswdError> {
        let current = self.loaded.read().clone();
        let stamp = FileStamp::of(&self.path);
        if !force && stamp == current.stamp {
            return Ok(false);
        }
        let (users, stamp) = read(&self.path)?;
        let decoy = decoy_for(&users);
        *self.loaded.write() = Arc::new(Loaded {
            users,
            generation: current.generation + 1,
            stamp,
            decoy,
        });
        self.cache.lock().clear();
        Ok(true)
    }

    /// `user`'s entry (its password hash), if the file has the user.
    pub fn entry(&self, user: &str) -> Option<String> {
        self.loaded.read().users.get(user).cloned()
    }

    /// True if `password` is `user`'s.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let loaded = self.loaded.read().clone();
        let key = cache_key(loaded.generation, user, password);
        let now = Instant::now();
        if let Some(&(until, ok)) = self.cache.lock().get(&key)
            && until > now
        {
            return ok;
        }
        let (hash, known) = match loaded.users.get(user) {
            Some(h) => (h.clone(), true),
            None => (loaded.decoy.clone(), false),
        };
        let ok = {
            let Ok(_permit) = self.bcrypt.acquire().await else {
                return false;
            };
            let password = password.to_string();
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
        } && known;
        let ttl = if ok { GOOD_TTL } else { BAD_TTL };
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        // Only if the file did not change meanwhile.
        if self.loaded.read().generation == loaded.generation {
            cache.insert(key, (Instant::now() + ttl, ok));
        }
        ok
    }
}

fn read(path: &Path) -> Result<(HashMap<String, String>, FileStamp), HtpasswdError> {
    let stamp = FileStamp::of(path);
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok((parse(path, &text)?, stamp))
}

fn cache_key(generation: u64, user: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(generation.to_le_bytes());
    h.update((user.len() as u64).to_le_bytes());
    h.update(user.as_bytes());
    h.update(password.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, password: &str) -> String {
        format!("{user}:{}\n", bcrypt::hash(password, 4).unwrap())
    }

    #[test]
    fn parses_like_distribution() {
        let text = format!(
            "# comment\n\n{}  {}",
            entry("alice", "a"),
            entry("bob", "b")
        );
        let users = parse(Path::new("f"), &text).unwrap();
        assert_eq!(users.len(), 2);
        assert!(bcrypt::verify("a", &users["alice"]).unwrap());
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let good = entry("alice", "a");
        for (text, line, what) in [
            (format!("{good}nocolon\n"), 2, "user:hash"),
            (format!("\n\n{good}bob:{{SHA}}abc=\n"), 4, "bcrypt"),
            (format!(":{}", &good[6..]), 1, "empty user"),
            ("carol:$apr1$x$y\n".to_string(), 1, "bcrypt"),
        ] {
            let e = parse(Path::new("/etc/disco/htpasswd"), &text)
                .unwrap_err()
                .to_string();
            assert!(e.contains("/etc/disco/htpasswd"), "{e}");
            assert!(e.contains(&format!("line {line}")), "{e}");
            assert!(e.contains(what), "{e}");
        }
    }

    #[tokio::test]
    async fn verify_caches_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, entry("alice", "secret")).unwrap();
        let h = Htpasswd::open(&path).unwrap();
        assert!(h.verify("alice", "secret").await);
        assert!(h.verify("alice", "secret").await);
        assert!(!h.verify("alice", "wrong").await);
        assert!(!h.verify("mallory", "secret").await);
        assert!(!h.verify("alice", "").await);
        // A new password takes effect on reload, and the cache is dropped.
        std::fs::write(&path, entry("alice", "changed")).unwrap();
        assert!(h.reload(true).unwrap());
        assert!(!h.verify("alice", "secret").await);
        assert!(h.verify("alice", "changed").await);
        // A broken file keeps the previous users.
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(h.reload(true).is_err());
        assert!(h.verify("alice", "changed").await);
    }
}
