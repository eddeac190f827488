//! The referrers API: manifests whose `subject` is a given digest, kept in
//! `_referrers/` links updated on manifest push and delete.

use serde_json::{Map, Value, json};

use super::digest::Digest;
use super::error::Result;
use super::manifest;
use super::name::RepoName;
use super::{Registry, paths};

impl Registry {
    /// Builds the referrers index of `name` from its manifest revisions,
    /// once (storage written by Distribution has none).
    async fn index_referrers(&self, name: &RepoName) -> Result<()> {
        let marker = paths::referrers_marker(name);
        match self.driver.stat(&marker).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let algos = match self.driver.list(&paths::revisions_dir(name)).await {
            Ok(a) => a,
            // No manifests yet: nothing to index, and a GET must not create
            // files for arbitrary repository names.
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut indexed = 0usize;
        for algo_dir in algos {
            let revisions = match self.driver.list(&algo_dir).await {
                Ok(r) => r,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            for rev in revisions {
                let Some(d) = self.read_link(&format!("{rev}/link")).await? else {
                    continue;
                };
                let Ok(stored) = self.load_manifest(&d).await else {
                    continue;
                };
                let Ok(parsed) = manifest::parse(&stored.bytes, Some(&stored.media_type)) else {
                    continue;
                };
                if let Some(subject) = parsed.subject {
                    self.write_link(&paths::referrer_link(name, &subject.digest, &d), &d)
                        .await?;
                    indexed += 1;
                }
            }
        }
        if indexed > 0 {
            tracing::info!(repository = %name, referrers = indexed, "indexed referrers of existing manifests");
        }
        self.driver
            .put_content(&marker, bytes::Bytes::from_static(b"1"))
            .await?;
        Ok(())
    }

    /// Descriptors of the manifests in `name` that refer to `subject`,
    /// sorted by digest, optionally only those of `artifact_type`.
    pub async fn referrers(
        &self,
        name: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Value>> {
        self.index_referrers(name).await?;
        let dir = paths::referrers_dir(name, subject);
        let mut links = Vec::new();
        let algos = match self.driver.list(&dir).await {
            Ok(a) => a,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        for algo_dir in algos {
            match self.driver.list(&algo_dir).await {
                Ok(entries) => links.extend(entries.into_iter().map(|e| format!("{e}/link"))),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut out: Vec<(Digest, Value)> = Vec::new();
        for link in links {
            let Some(d) = self.read_link(&link).await? else {
                continue;
            };
            // Skip stale links (manifest deleted meanwhile).
            if self
                .read_link(&paths::revision_link(name, &d))
                .await?
                .as_ref()
                != Some(&d)
            {
                continue;
            }
            let Ok(stored) = self.load_manifest(&d).await else {
                continue;
            };
            let Ok(parsed) = manifest::parse(&stored.bytes, Some(&stored.media_type)) else {
                continue;
            };
            let at = parsed.effective_artifact_type();
            if let Some(want) = artifact_type
                && at.as_deref() != Some(want)
            {
                continue;
            }
            let mut desc = Map::new();
            desc.insert("mediaType".into(), json!(stored.media_type));
            desc.insert("digest".into(), json!(d.to_string()));
            desc.insert("size".into(), json!(stored.bytes.len()));
            if let Some(at) = at {
                desc.insert("artifactType".into(), json!(at));
            }
            if let Some(a) = parsed.annotations {
                desc.insert("annotations".into(), a);
            }
            out.push((d, Value::Object(desc)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }
}
