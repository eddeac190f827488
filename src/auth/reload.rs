//! Re-reading credential files without a restart: every file the access
//! controller reads is checked every [`POLL`] and re-read when it changed,
//! and all are re-read on SIGHUP. A file that became invalid keeps the last
//! good contents in effect (and is logged as an error), so a half-written
//! file never opens or closes the door by accident.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Auth;

/// How often watched files are checked.
pub const POLL: Duration = Duration::from_secs(2);

/// What identifies a version of a file: modification time, size, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp(Option<(SystemTime, u64, u64)>);

impl FileStamp {
    /// The stamp of `path` now (`None` inside when it cannot be statted).
    pub fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp(
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))),
        )
    }
}

/// Starts the watcher of `auth`'s files; it ends with the runtime.
pub fn spawn(auth: Arc<Auth>) {
    let polled = auth.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let a = polled.clone();
            let _ = tokio::task::spawn_blocking(move || a.reload(false)).await;
        }
    });
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!(
                "cannot listen for SIGHUP; credential files are still re-read when they change"
            );
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading credential files");
            let a = auth.clone();
            let _ = tokio::task::spawn_blocking(move || a.reload(true)).await;
        }
    });
}
