//! What a collection did (or, dry, would do): the JSON answer of
//! `POST /disco/v1/gc?registry=true` and the text `disco gc --registry`
//! prints.

use serde::Serialize;
use serde_json::Value;

use super::mark::Plan;
use super::sweep::Swept;
use crate::registry::{Digest, RepoName};

/// A deleted tag.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct TagEntry {
    /// Repository.
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// Its target.
    pub digest: String,
}

/// A deleted manifest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestEntry {
    /// Repository.
    pub repository: String,
    /// Digest.
    pub digest: String,
}

/// A deleted blob.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlobEntry {
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// The report of one collection.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Nothing was deleted; the lists say what would have been.
    pub dry_run: bool,
    /// Untagged manifests were collected.
    pub delete_untagged: bool,
    /// Manifests and blobs marked.
    pub marked: usize,
    /// Tags deleted by retention policies.
    pub tags: Vec<TagEntry>,
    /// Manifests deleted.
    pub manifests: Vec<ManifestEntry>,
    /// Content-addressed repositories deleted.
    pub repositories: Vec<String>,
    /// Blobs deleted.
    pub blobs: Vec<BlobEntry>,
    /// Bytes of the blobs deleted.
    pub bytes_freed: u64,
    /// Unreferenced blobs kept because they are younger than the grace.
    pub young_blobs: usize,
    /// Candidates kept by the last re-check (linked meanwhile).
    pub skipped: usize,
    /// What `dryrun` retention policies would delete.
    pub policy_dry_run: Vec<String>,
    /// Deletions that failed (see the log).
    pub errors: usize,
    /// Wall time.
    pub duration_ms: u64,
    /// The block collection that followed, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Value>,
}

impl TagEntry {
    fn new(repository: &RepoName, tag: &str, digest: &Digest) -> Self {
        TagEntry {
            repository: repository.to_string(),
            tag: tag.to_string(),
            digest: digest.to_string(),
        }
    }
}

impl ManifestEntry {
    fn new(repository: &RepoName, digest: &Digest) -> Self {
        ManifestEntry {
            repository: repository.to_string(),
            digest: digest.to_string(),
        }
    }
}

impl BlobEntry {
    fn new(digest: &Digest, size: u64) -> Self {
        BlobEntry {
            digest: digest.to_string(),
            size,
        }
    }
}

impl GcReport {
    /// The report of a dry run: the plan as is.
    pub fn planned(plan: &Plan) -> Self {
        let mut r = GcReport {
            dry_run: true,
            marked: plan.marked.len(),
            young_blobs: plan.young_blobs,
            ..Default::default()
        };
        r.tags = plan
            .tags
            .iter()
            .map(|(n, t, d)| TagEntry::new(n, t, d))
            .collect();
        r.manifests = plan
            .manifests
            .iter()
            .map(|(n, d, _)| ManifestEntry::new(n, d))
            .collect();
        r.repositories = plan
            .repositories
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        r.blobs = plan
            .blobs
            .iter()
            .map(|(d, s)| BlobEntry::new(d, *s))
            .collect();
        r.policy_dry_run = plan
            .policy_dryrun
            .iter()
            .map(|(n, what)| format!("{n}: {what}"))
            .collect();
        r.finish();
        r
    }

    /// The report of a sweep.
    pub fn swept(plan: &Plan, s: &Swept) -> Self {
        let mut r = Self::planned(plan);
        r.dry_run = false;
        r.tags = s
            .tags
            .iter()
            .map(|(n, t, d)| TagEntry::new(n, t, d))
            .collect();
        r.manifests = s
            .manifests
            .iter()
            .map(|(n, d)| ManifestEntry::new(n, d))
            .collect();
        r.repositories = s.repositories.iter().map(|n| n.to_string()).collect();
        r.blobs = s
            .blobs
            .iter()
            .map(|(d, size)| BlobEntry::new(d, *size))
            .collect();
        r.skipped = s.skipped;
        r.errors = s.errors;
        r.finish();
        r
    }

    fn finish(&mut self) {
        self.tags.sort();
        self.manifests.sort();
        self.repositories.sort();
        self.blobs.sort();
        self.bytes_freed = self.blobs.iter().map(|b| b.size).sum();
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Text of a report in its JSON form, one deletion a line, then totals.
pub fn format_text(v: &Value) -> String {
    let dry = v.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    let verb = if dry { "would delete" } else { "deleted" };
    let list = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = String::new();
    for t in list("tags") {
        out.push_str(&format!(
            "{verb} tag {}:{} ({})\n",
            s(&t, "repository"),
            s(&t, "tag"),
            s(&t, "digest")
        ));
    }
    for m in list("manifests") {
        out.push_str(&format!(
            "{verb} manifest {}@{}\n",
            s(&m, "repository"),
            s(&m, "digest")
        ));
    }
    for r in list("repositories") {
        out.push_str(&format!("{verb} repository {}\n", r.as_str().unwrap_or("")));
    }
    for b in list("blobs") {
        let size = b.get("size").and_then(Value::as_u64).unwrap_or(0);
        out.push_str(&format!("{verb} blob {} ({size} bytes)\n", s(&b, "digest")));
    }
    for p in list("policyDryRun") {
        out.push_str(&format!(
            "retention (dry run) would delete {}\n",
            p.as_str().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "{} {} tags, {} manifests, {} repositories, {} blobs: {} bytes\n",
        if dry {
            "dry run: would delete"
        } else {
            "deleted"
        },
        list("tags").len(),
        list("manifests").len(),
        list("repositories").len(),
        list("blobs").len(),
        n("bytesFreed"),
    ));
    out.push_str(&format!(
        "marked: {}; unreferenced but within the grace period: {}; kept by re-check: {}; errors: {}; duration: {} ms\n",
        n("marked"),
        n("youngBlobs"),
        n("skipped"),
        n("errors"),
        n("durationMs")
    ));
    if let Some(b) = v.get("blocks") {
        let bn = |k: &str| b.get(k).and_then(Value::as_u64).unwrap_or(0);
        out.push_str(&format!(
            "blocks: {} removed, {} bytes freed, {} kept\n",
            bn("removed"),
            bn("freedBytes"),
            bn("marked")
        ));
    }
    out
}
