//! Tag listing.

use futures::StreamExt;

use super::error::{ErrorCode, RegistryError, Result};
use super::name::{RepoName, valid_tag};
use super::{Registry, paths};

impl Registry {
    /// All tags of `name`, sorted; `NAME_UNKNOWN` if the repository does
    /// not exist.
    pub async fn list_tags(&self, name: &RepoName) -> Result<Vec<String>> {
        match self.list_tags_once(name).await {
            Err(e) if e.code == ErrorCode::NameUnknown => {}
            r => return r,
        }
        // A repository hooks can materialise (an image by CID) is listed
        // once it is there.
        for hook in &self.hooks {
            match hook.repository_missing(self, name).await {
                Ok(true) => return self.list_tags_once(name).await,
                Ok(false) => {}
                Err(e) if e.code == ErrorCode::ManifestUnknown => {
                    return Err(RegistryError::name_unknown(name.as_str())
                        .with_detail(serde_json::json!({ "reason": e.message })));
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::name_unknown(name.as_str()))
    }

    async fn list_tags_once(&self, name: &RepoName) -> Result<Vec<String>> {
        let tags: Vec<String> = match self.driver.list(&paths::tags_dir(name)).await {
            Ok(children) => children
                .into_iter()
                .filter_map(|p| p.rsplit('/').next().map(str::to_string))
                .filter(|t| valid_tag(t))
                .collect(),
            Err(e) if e.is_not_found() => {
                if self.repo_exists(name).await? {
                    Vec::new()
                } else {
                    return Err(RegistryError::name_unknown(name.as_str()));
                }
            }
            Err(e) => return Err(e.into()),
        };
        // A crash can leave a tag directory whose link was never written
        // (directories are created before the atomic link write): list only
        // tags that resolve.
        let checks = tags.into_iter().map(|t| async move {
            let ok = matches!(
                self.read_link(&paths::tag_current_link(name, &t)).await,
                Ok(Some(_))
            );
            ok.then_some(t)
        });
        let mut tags: Vec<String> = futures::stream::iter(checks)
            .buffer_unordered(16)
            .filter_map(|t| async { t })
            .collect()
            .await;
        tags.sort_unstable();
        Ok(tags)
    }
}

/// One page of a sorted list: entries strictly after `last`, at most `n`
/// (all if `None`). Returns the page and whether more entries follow.
pub fn paginate(all: &[String], n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let start = match last {
        Some(l) => all.partition_point(|x| x.as_str() <= l),
        None => 0,
    };
    let rest = &all[start..];
    match n {
        Some(n) if n < rest.len() => (rest[..n].to_vec(), true),
        _ => (rest.to_vec(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::paginate;

    #[test]
    fn pages() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            paginate(&all, Some(2), None),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            paginate(&all, Some(2), Some("b")),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(
            paginate(&all, None, Some("bb")),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(paginate(&all, Some(0), None), (vec![], true));
        assert_eq!(paginate(&all, Some(10), Some("d")), (vec![], false));
    }
}
