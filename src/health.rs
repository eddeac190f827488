//! Health checks behind `/debug/health`, as Distribution's: they run in the
//! background every `health.storagedriver.interval`; a check failing
//! `threshold` times in a row is reported until it succeeds once. The
//! endpoint answers 200 `{}` when every check passes, else 503 with a JSON
//! object naming each failing check and its last error.
//!
//! The checks: the storage driver answers (`stat /`, Distribution's
//! `storagedriver_<name>`); each local directory disco writes to accepts a
//! small synced write (`disk <dir>`: full or read-only disks); each Kubo node
//! answers (`kubo <url>`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::RwLock;

use crate::config::StorageHealthConfig;
use crate::ipfs::Ipfs;
use crate::storage::Driver;

/// Longest a single check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One named check.
pub struct Check {
    name: String,
    probe: Probe,
}

impl Check {
    /// A check from a name and an async probe.
    pub fn new<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            probe: Arc::new(move || Box::pin(f())),
        }
    }

    /// The storage driver answers: `stat /` succeeds (a fresh, empty
    /// storage's "not found" counts as an answer).
    pub fn driver(driver: Driver) -> Self {
        Self::new(format!("storagedriver_{}", driver.name()), move || {
            let d = driver.clone();
            async move {
                match d.stat("/").await {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
    }

    /// `dir` accepts a write: a small file is written, synced and removed
    /// (fails on a full or read-only file system).
    pub fn disk(dir: PathBuf) -> Self {
        Self::new(format!("disk {}", dir.display()), move || {
            let dir = dir.clone();
            async move {
                tokio::task::spawn_blocking(move || write_probe(&dir))
                    .await
                    .map_err(|e| format!("probe task failed: {e}"))?
            }
        })
    }

    /// A Kubo node answers its `id` call.
    pub fn kubo(url: String, node: Arc<dyn Ipfs>) -> Self {
        Self::new(format!("kubo {url}"), move || {
            let node = node.clone();
            async move { node.id().await.map(|_| ()).map_err(|e| e.to_string()) }
        })
    }
}

fn write_probe(dir: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(format!(".disco-health-{}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(dir)?;
        let mut f = std::fs::File::create(&path)?;
        f.write_all(b"disco health probe\n")?;
        f.sync_data()
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| format!("cannot write to {}: {e}", dir.display()))
}

/// The state of every check, updated by a background task.
#[derive(Clone, Default)]
pub struct Health {
    failing: Arc<RwLock<BTreeMap<String, String>>>,
}

impl Health {
    /// Starts running `checks` in the background (nothing when disabled).
    pub fn start(checks: Vec<Check>, cfg: &StorageHealthConfig) -> Self {
        let health = Health::default();
        if !cfg.enabled || checks.is_empty() {
            return health;
        }
        let interval = cfg.interval.max(Duration::from_secs(1));
        let threshold = cfg.threshold.max(1);
        let failing = health.failing.clone();
        tokio::spawn(async move {
            let mut streaks = vec![0u32; checks.len()];
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let results = futures::future::join_all(checks.iter().map(|c| {
                    let probe = (c.probe)();
                    async move {
                        match tokio::time::timeout(CHECK_TIMEOUT.min(interval * 3), probe).await {
                            Ok(r) => r,
                            Err(_) => Err("check timed out".into()),
                        }
                    }
                }))
                .await;
                for ((check, streak), result) in checks.iter().zip(&mut streaks).zip(results) {
                    update(&failing, &check.name, streak, threshold, result);
                }
            }
        });
        health
    }

    /// The failing checks and their errors (empty when healthy).
    pub fn failing(&self) -> BTreeMap<String, String> {
        self.failing.read().clone()
    }
}

fn update(
    failing: &RwLock<BTreeMap<String, String>>,
    name: &str,
    streak: &mut u32,
    threshold: u32,
    result: Result<(), String>,
) {
    match result {
        Ok(()) => {
            *streak = 0;
            if failing.write().remove(name).is_some() {
                tracing::info!(check = name, "health check passes again");
            }
        }
        Err(e) => {
            *streak = streak.saturating_add(1);
            if *streak >= threshold {
                let previous = failing.write().insert(name.to_string(), e.clone());
                if previous.is_none() {
                    tracing::error!(check = name, error = %e, "health check failing");
                }
            } else {
                tracing::warn!(check = name, error = %e, failures = *streak, "health check failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_fails_after_threshold_and_recovers_at_once() {
        let failing = RwLock::new(BTreeMap::new());
        let mut streak = 0;
        update(&failing, "c", &mut streak, 2, Err("down".into()));
        assert!(failing.read().is_empty());
        update(&failing, "c", &mut streak, 2, Err("down".into()));
        assert_eq!(failing.read().get("c").map(String::as_str), Some("down"));
        update(&failing, "c", &mut streak, 2, Ok(()));
        assert!(failing.read().is_empty());
    }

    #[test]
    fn the_disk_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        write_probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
