//! Upload purging (`storage.maintenance.uploadpurging`): deletes upload
//! sessions older than a maximum age.

use std::time::{Duration, SystemTime};

use super::error::Result;
use super::{Registry, paths};
use crate::storage::WalkControl;

impl Registry {
    /// Deletes uploads started more than `age` ago (or whose start time is
    /// unreadable and whose data is that old). With `dry_run`, only counts.
    /// Returns the number of uploads purged.
    pub async fn purge_uploads(&self, age: Duration, dry_run: bool) -> Result<usize> {
        let mut upload_dirs: Vec<String> = Vec::new();
        let walked = self
            .driver
            .walk(paths::REPOSITORIES, &mut |info| {
                if !info.is_dir {
                    return WalkControl::Continue;
                }
                let Some((parent, last)) = info.path.rsplit_once('/') else {
                    return WalkControl::Continue;
                };
                if parent.ends_with("/_uploads") {
                    upload_dirs.push(info.path.clone());
                    return WalkControl::SkipDir;
                }
                if last.starts_with('_') && last != "_uploads" {
                    return WalkControl::SkipDir;
                }
                WalkControl::Continue
            })
            .await;
        match walked {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(0),
            Err(e) => return Err(e.into()),
        }
        let now = SystemTime::now();
        let mut purged = 0;
        for dir in upload_dirs {
            let started = match self.driver.get_content(&format!("{dir}/startedat")).await {
                Ok(b) => std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| humantime::parse_rfc3339_weak(s.trim()).ok()),
                Err(_) => None,
            };
            let started = match started {
                Some(t) => Some(t),
                None => self
                    .driver
                    .stat(&format!("{dir}/data"))
                    .await
                    .ok()
                    .and_then(|i| i.modified),
            };
            let old = started
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|a| a >= age);
            if !old {
                continue;
            }
            purged += 1;
            if dry_run {
                tracing::info!(upload = %dir, "would purge old upload (dry run)");
                continue;
            }
            match self.driver.delete(&dir).await {
                Ok(()) => tracing::info!(upload = %dir, "purged old upload"),
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(upload = %dir, error = %e, "could not purge upload"),
            }
        }
        Ok(purged)
    }
}
