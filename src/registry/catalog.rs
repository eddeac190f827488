//! The repository catalog: every directory under `repositories/` that holds
//! `_manifests` or `_layers`.

use super::error::Result;
use super::{Registry, paths};
use crate::storage::WalkControl;

impl Registry {
    /// All repository names, sorted.
    pub async fn list_repositories(&self) -> Result<Vec<String>> {
        let prefix = format!("{}/", paths::REPOSITORIES);
        let mut names: Vec<String> = Vec::new();
        let walked = self
            .driver
            .walk(paths::REPOSITORIES, &mut |info| {
                if !info.is_dir {
                    return WalkControl::Continue;
                }
                let Some((parent, last)) = info.path.rsplit_once('/') else {
                    return WalkControl::Continue;
                };
                if last.starts_with('_') {
                    if (last == "_manifests" || last == "_layers")
                        && let Some(name) = parent.strip_prefix(&prefix)
                        && names.last().map(String::as_str) != Some(name)
                    {
                        names.push(name.to_string());
                    }
                    return WalkControl::SkipDir;
                }
                WalkControl::Continue
            })
            .await;
        match walked {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }
}
