//! The inventory a collection works on: one walk of the repositories
//! (tags, revisions, layer links, with their modification times) and one
//! of the blob store.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::registry::{Digest, Registry, RepoName, Result, paths};
use crate::storage::{FileInfo, WalkControl};

/// A tag: its target and when its `current` link was written.
#[derive(Debug, Clone, PartialEq)]
pub struct TagInv {
    /// The manifest `current/link` names.
    pub digest: Digest,
    /// When the link was written, if the storage knows.
    pub modified: Option<SystemTime>,
}

/// One repository.
#[derive(Debug, Clone, Default)]
pub struct RepoInv {
    /// Tags with a readable `current` link.
    pub tags: BTreeMap<String, TagInv>,
    /// Tag history entries (`tags/<tag>/index/<alg>/<hex>`), by digest.
    pub tag_index: BTreeMap<Digest, Vec<String>>,
    /// Manifest revisions and when their link was written.
    pub revisions: BTreeMap<Digest, Option<SystemTime>>,
    /// Layer links and when they were written.
    pub layers: BTreeMap<Digest, Option<SystemTime>>,
}

/// A stored blob.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlobInv {
    /// Size in bytes.
    pub size: u64,
    /// When it was written, if the storage knows.
    pub modified: Option<SystemTime>,
}

/// Everything a collection looks at.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Repositories by name.
    pub repos: BTreeMap<RepoName, RepoInv>,
    /// Blobs in the global store.
    pub blobs: BTreeMap<Digest, BlobInv>,
}

/// Where a path under `repositories/` points.
enum Entry {
    Layer(Digest),
    Revision(Digest),
    TagCurrent(String),
    TagIndex(String, Digest),
}

fn digest_of(alg: &str, hex: &str) -> Option<Digest> {
    format!("{alg}:{hex}").parse().ok()
}

/// Splits `<name>/_.../link` into the repository and what the link is.
fn classify(rel: &str) -> Option<(RepoName, Entry)> {
    let parts: Vec<&str> = rel.split('/').collect();
    let at = parts.iter().position(|p| p.starts_with('_'))?;
    let name = RepoName::parse(&parts[..at].join("/")).ok()?;
    let entry = match &parts[at..] {
        ["_layers", alg, hex, "link"] => Entry::Layer(digest_of(alg, hex)?),
        ["_manifests", "revisions", alg, hex, "link"] => Entry::Revision(digest_of(alg, hex)?),
        ["_manifests", "tags", tag, "current", "link"] => Entry::TagCurrent(tag.to_string()),
        ["_manifests", "tags", tag, "index", alg, hex, "link"] => {
            Entry::TagIndex(tag.to_string(), digest_of(alg, hex)?)
        }
        _ => return None,
    };
    Some((name, entry))
}

impl Registry {
    /// Walks the storage into an [`Inventory`].
    pub(crate) async fn gc_inventory(&self) -> Result<Inventory> {
        let mut files: Vec<FileInfo> = Vec::new();
        let prefix = format!("{}/", paths::REPOSITORIES);
        let walked = self
            .driver
            .walk(paths::REPOSITORIES, &mut |info| {
                let last = info.path.rsplit('/').next().unwrap_or_default();
                if info.is_dir {
                    // Uploads and the referrers index hold no marks.
                    if last == "_uploads" || last == "_referrers" {
                        return WalkControl::SkipDir;
                    }
                } else if last == "link" {
                    files.push(info.clone());
                }
                WalkControl::Continue
            })
            .await;
        match walked {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let mut inv = Inventory::default();
        for info in files {
            let Some(rel) = info.path.strip_prefix(&prefix) else {
                continue;
            };
            let Some((name, entry)) = classify(rel) else {
                continue;
            };
            let repo = inv.repos.entry(name).or_default();
            match entry {
                Entry::Layer(d) => {
                    repo.layers.insert(d, info.modified);
                }
                Entry::Revision(d) => {
                    repo.revisions.insert(d, info.modified);
                }
                Entry::TagIndex(tag, d) => repo.tag_index.entry(d).or_default().push(tag),
                Entry::TagCurrent(tag) => {
                    if let Some(d) = self.read_link(&info.path).await? {
                        repo.tags.insert(
                            tag,
                            TagInv {
                                digest: d,
                                modified: info.modified,
                            },
                        );
                    }
                }
            }
        }
        let blobs_root = format!("{}/blobs", paths::ROOT);
        let mut blobs: Vec<FileInfo> = Vec::new();
        let walked = self
            .driver
            .walk(&blobs_root, &mut |info| {
                if !info.is_dir && info.path.ends_with("/data") {
                    blobs.push(info.clone());
                }
                WalkControl::Continue
            })
            .await;
        match walked {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        for info in blobs {
            let rel = info.path[blobs_root.len()..].trim_start_matches('/');
            let parts: Vec<&str> = rel.split('/').collect();
            if let [alg, _, hex, "data"] = parts.as_slice()
                && let Some(d) = digest_of(alg, hex)
            {
                inv.blobs.insert(
                    d,
                    BlobInv {
                        size: info.size,
                        modified: info.modified,
                    },
                );
            }
        }
        Ok(inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_layout_paths() {
        let h = "a".repeat(64);
        let (n, e) = classify(&format!("library/app/_layers/sha256/{h}/link")).unwrap();
        assert_eq!(n.as_str(), "library/app");
        assert!(matches!(e, Entry::Layer(_)));
        let (_, e) = classify("app/_manifests/tags/v1/current/link").unwrap();
        assert!(matches!(e, Entry::TagCurrent(t) if t == "v1"));
        let (_, e) = classify(&format!("app/_manifests/tags/v1/index/sha256/{h}/link")).unwrap();
        assert!(matches!(e, Entry::TagIndex(t, _) if t == "v1"));
        assert!(classify(&format!("app/_manifests/revisions/sha256/{h}/link")).is_some());
        assert!(classify("app/disco.json").is_none());
        assert!(classify("app/_layers/sha256/zz/link").is_none());
    }
}
