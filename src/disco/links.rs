//! The digest repository (`repositories/<manifest hex>`): the image's
//! revision and layer links plus tags `latest` and `<cid>`, written
//! through the storage driver. The `<cid>` tag is written last, so its
//! presence means the repository is complete; it is also the durable
//! record of the digest → CID mapping.

use bytes::Bytes;
use cid::Cid;
use futures::{StreamExt, TryStreamExt, stream};

use super::error::Result;
use super::layout::{ImageFiles, LATEST};
use super::names::parse_cid_v1;
use crate::ipfs::cid_v1_string;
use crate::registry::{Digest, RepoName, paths};
use crate::storage::Driver;

/// Link writes in flight at once.
const CONCURRENCY: usize = 8;

/// The digest repository's name for a manifest digest.
pub fn digest_repo(manifest: &Digest) -> Result<RepoName> {
    Ok(RepoName::parse(manifest.hex())?)
}

async fn read_link(driver: &Driver, path: &str) -> Result<Option<Digest>> {
    match driver.get_content(path).await {
        Ok(b) => Ok(std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.trim().parse().ok())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn write_link(driver: &Driver, path: String, d: &Digest) -> Result<()> {
    driver
        .put_content(&path, Bytes::from(d.to_string()))
        .await?;
    Ok(())
}

/// Writes the digest repository of the image `files` published as `cid`;
/// does nothing if its `<cid>` tag already names the manifest.
pub async fn write_digest_repo(driver: &Driver, files: &ImageFiles, cid: &Cid) -> Result<()> {
    let repo = digest_repo(&files.manifest)?;
    let cid_tag = cid_v1_string(cid);
    if read_link(driver, &paths::tag_current_link(&repo, &cid_tag))
        .await?
        .as_ref()
        == Some(&files.manifest)
    {
        return Ok(());
    }
    let m = &files.manifest;
    let mut links: Vec<(String, Digest)> = Vec::new();
    for d in &files.manifests {
        links.push((paths::revision_link(&repo, d), d.clone()));
    }
    for d in &files.layers {
        links.push((paths::layer_link(&repo, d), d.clone()));
    }
    links.push((paths::tag_index_link(&repo, LATEST, m), m.clone()));
    links.push((paths::tag_current_link(&repo, LATEST), m.clone()));
    links.push((paths::tag_index_link(&repo, &cid_tag, m), m.clone()));
    stream::iter(links)
        .map(|(p, d)| async move { write_link(driver, p, &d).await })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    write_link(
        driver,
        paths::tag_current_link(&repo, &cid_tag),
        &files.manifest,
    )
    .await
}

/// The CIDs recorded for `manifest`: tags of its digest repository that
/// are CIDv1s and name it, sorted.
pub async fn recorded_cids(driver: &Driver, manifest: &Digest) -> Result<Vec<Cid>> {
    let repo = digest_repo(manifest)?;
    let children = match driver.list(&paths::tags_dir(&repo)).await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for child in children {
        let Some(tag) = child.rsplit('/').next() else {
            continue;
        };
        let Some(cid) = parse_cid_v1(tag) else {
            continue;
        };
        if read_link(driver, &paths::tag_current_link(&repo, tag))
            .await?
            .as_ref()
            == Some(manifest)
        {
            out.push(cid);
        }
    }
    out.sort_by_key(cid_v1_string);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ipfs::block::raw_cid;
    use crate::registry::manifests::Reference;
    use crate::registry::{Options, Registry};
    use crate::storage::inmemory::InMemoryDriver;

    #[tokio::test]
    async fn digest_repository_is_a_pullable_repository() {
        let driver: Driver = Arc::new(InMemoryDriver::new());
        let config = Bytes::from_static(b"{}");
        let reg = Registry::new(driver.clone(), Options::default());
        let cd = Digest::sha256(&config);
        let manifest = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{cd}\",\"size\":2}},\"layers\":[]}}"
        );
        let md = Digest::sha256(manifest.as_bytes());
        for (d, b) in [(&cd, config.clone()), (&md, Bytes::from(manifest.clone()))] {
            driver.put_content(&paths::blob_data(d), b).await.unwrap();
        }
        let files = ImageFiles {
            manifest: md.clone(),
            manifests: vec![md.clone()],
            layers: vec![cd.clone()],
        };
        let cid = raw_cid(b"any");
        assert!(recorded_cids(&driver, &md).await.unwrap().is_empty());
        write_digest_repo(&driver, &files, &cid).await.unwrap();
        let repo = digest_repo(&md).unwrap();
        let mut tags = reg.list_tags(&repo).await.unwrap();
        tags.sort();
        let mut want = vec!["latest".to_string(), cid.to_string()];
        want.sort();
        assert_eq!(tags, want);
        for tag in want {
            let got = reg.get_manifest(&repo, &Reference::Tag(tag)).await.unwrap();
            assert_eq!(got.bytes, manifest.as_bytes());
        }
        assert_eq!(reg.stat_blob(&repo, &cd).await.unwrap(), 2);
        assert_eq!(recorded_cids(&driver, &md).await.unwrap(), vec![cid]);
    }
}
