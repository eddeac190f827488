//! The image repository's DAG, built in memory so its CID is a pure
//! function of the image: a CNCF Distribution repository holding only that
//! image, as canonical UnixFS (raw-leaf files, CIDv1 dag-pb directories
//! with links sorted by name, Kubo's sharding rule):
//!
//! ```text
//! _layers/<alg>/<hex>/link                      every config and layer
//! _manifests/revisions/<alg>/<hex>/link         the manifest and its children
//! _manifests/tags/latest/current/link           the manifest
//! _manifests/tags/latest/index/<alg>/<hex>/link the manifest
//! disco.json                                    every blob with its CID
//! ```
//!
//! Link files hold `<alg>:<hex>` with no newline, as the registry writes
//! them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use parking_lot::Mutex;

use crate::ipfs::Result;
use crate::ipfs::unixfs::dir::{DirLink, build_directory};
use crate::ipfs::unixfs::{BlockSink, FileImporter};
use crate::registry::Digest;

/// Name of the blob list in an image repository.
pub const DISCO_JSON: &str = "disco.json";
/// The tag an image repository holds its manifest under.
pub const LATEST: &str = "latest";

/// What an image repository holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFiles {
    /// The image's manifest (tag `latest`).
    pub manifest: Digest,
    /// Every manifest with a revision link: the manifest and, for an index,
    /// its children.
    pub manifests: Vec<Digest>,
    /// Every config and layer (`_layers` links).
    pub layers: Vec<Digest>,
}

/// The built DAG: its root and every block (each once).
#[derive(Debug, Clone)]
pub struct RepoDag {
    /// The repository directory's CID (CIDv1 dag-pb).
    pub root: Cid,
    /// Every block of the DAG, with its CID.
    pub blocks: Vec<(Cid, Bytes)>,
}

/// Collects blocks once each, in insertion order.
#[derive(Default)]
struct Collect {
    inner: Mutex<Collected>,
}

#[derive(Default)]
struct Collected {
    blocks: Vec<(Cid, Bytes)>,
    seen: HashSet<Cid>,
}

impl BlockSink for Collect {
    fn put(&self, cid: &Cid, data: &Bytes) -> Result<()> {
        let mut g = self.inner.lock();
        if g.seen.insert(*cid) {
            g.blocks.push((*cid, data.clone()));
        }
        Ok(())
    }
}

/// A directory being assembled: files and subdirectories by name.
#[derive(Default)]
struct Dir {
    files: BTreeMap<String, Bytes>,
    dirs: BTreeMap<String, Dir>,
}

impl Dir {
    fn file(&mut self, path: &[&str], content: Bytes) {
        match path {
            [] => {}
            [name] => {
                self.files.insert((*name).to_string(), content);
            }
            [first, rest @ ..] => self
                .dirs
                .entry((*first).to_string())
                .or_default()
                .file(rest, content),
        }
    }
}

fn link(d: &Digest) -> Bytes {
    Bytes::from(d.to_string())
}

/// The repository's files: path components and content.
fn tree(files: &ImageFiles, disco_json: Bytes) -> Dir {
    let mut root = Dir::default();
    for d in &files.layers {
        root.file(
            &["_layers", d.algorithm().as_str(), d.hex(), "link"],
            link(d),
        );
    }
    for d in &files.manifests {
        root.file(
            &[
                "_manifests",
                "revisions",
                d.algorithm().as_str(),
                d.hex(),
                "link",
            ],
            link(d),
        );
    }
    let m = &files.manifest;
    root.file(&["_manifests", "tags", LATEST, "current", "link"], link(m));
    root.file(
        &[
            "_manifests",
            "tags",
            LATEST,
            "index",
            m.algorithm().as_str(),
            m.hex(),
            "link",
        ],
        link(m),
    );
    root.file(&[DISCO_JSON], disco_json);
    root
}

async fn encode(dir: Dir, sink: Arc<Collect>) -> Result<(Cid, u64)> {
    let mut links = Vec::with_capacity(dir.files.len() + dir.dirs.len());
    for (name, content) in dir.files {
        let mut imp = FileImporter::new(sink.clone(), 1);
        imp.push(content).await?;
        let f = imp.finish().await?;
        links.push(DirLink {
            name,
            cid: f.cid,
            tsize: f.cumulative_size,
        });
    }
    for (name, sub) in dir.dirs {
        let (cid, tsize) = Box::pin(encode(sub, sink.clone())).await?;
        links.push(DirLink { name, cid, tsize });
    }
    build_directory(links, &*sink)
}

/// The repository's files as (relative path, content), the
/// `_manifests/tags/latest/current/link` file last (a reader that sees the
/// tag sees a complete repository).
pub fn file_list(files: &ImageFiles, disco_json: Bytes) -> Vec<(String, Bytes)> {
    fn walk(dir: Dir, prefix: &str, out: &mut Vec<(String, Bytes)>) {
        for (name, content) in dir.files {
            out.push((format!("{prefix}{name}"), content));
        }
        for (name, sub) in dir.dirs {
            walk(sub, &format!("{prefix}{name}/"), out);
        }
    }
    let mut out = Vec::new();
    walk(tree(files, disco_json), "", &mut out);
    let tag = format!("_manifests/tags/{LATEST}/current/link");
    out.sort_by_key(|(p, _)| *p == tag);
    out
}

/// Builds the image repository for `files` with `disco_json` as its blob
/// list.
pub async fn build(files: &ImageFiles, disco_json: Bytes) -> Result<RepoDag> {
    let sink = Arc::new(Collect::default());
    let (root, _) = encode(tree(files, disco_json), sink.clone()).await?;
    let blocks = std::mem::take(&mut sink.inner.lock().blocks);
    Ok(RepoDag { root, blocks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::block::verify;
    use crate::ipfs::unixfs::MemoryBlocks;
    use crate::ipfs::unixfs::export::read_file;
    use crate::ipfs::unixfs::resolve::resolve_path;
    use futures::TryStreamExt;

    fn files() -> ImageFiles {
        ImageFiles {
            manifest: Digest::sha256(b"manifest"),
            manifests: vec![Digest::sha256(b"manifest")],
            layers: vec![Digest::sha256(b"config"), Digest::sha256(b"layer")],
        }
    }

    async fn read(mem: &Arc<MemoryBlocks>, root: Cid, path: &[&str]) -> Vec<u8> {
        let cid = resolve_path(&**mem, root, path).await.unwrap();
        let s = read_file(mem.clone(), cid, 0, None).await.unwrap();
        let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn builds_a_distribution_repository() {
        let f = files();
        let dag = build(&f, Bytes::from_static(b"{\"blobs\":[]}"))
            .await
            .unwrap();
        assert_eq!(dag.root.codec(), crate::ipfs::DAG_PB);
        assert_eq!(dag.root.version(), cid::Version::V1);
        let mem = Arc::new(MemoryBlocks::default());
        for (cid, data) in &dag.blocks {
            verify(cid, data).unwrap();
            mem.put_raw(*cid, data.clone());
        }
        let m = f.manifest.hex().to_string();
        assert_eq!(
            read(
                &mem,
                dag.root,
                &["_manifests", "tags", "latest", "current", "link"]
            )
            .await,
            f.manifest.to_string().into_bytes()
        );
        assert_eq!(
            read(
                &mem,
                dag.root,
                &[
                    "_manifests",
                    "tags",
                    "latest",
                    "index",
                    "sha256",
                    &m,
                    "link"
                ]
            )
            .await,
            f.manifest.to_string().into_bytes()
        );
        assert_eq!(
            read(
                &mem,
                dag.root,
                &["_manifests", "revisions", "sha256", &m, "link"]
            )
            .await,
            f.manifest.to_string().into_bytes()
        );
        let l = f.layers[1].clone();
        assert_eq!(
            read(&mem, dag.root, &["_layers", "sha256", l.hex(), "link"]).await,
            l.to_string().into_bytes()
        );
        assert_eq!(
            read(&mem, dag.root, &[DISCO_JSON]).await,
            b"{\"blobs\":[]}".to_vec()
        );
        // Identical link files are one block.
        let mut cids: Vec<Cid> = dag.blocks.iter().map(|(c, _)| *c).collect();
        cids.sort();
        cids.dedup();
        assert_eq!(cids.len(), dag.blocks.len());
    }

    #[tokio::test]
    async fn the_cid_is_a_function_of_the_content() {
        let f = files();
        let json = Bytes::from_static(b"{\"blobs\":[]}");
        let a = build(&f, json.clone()).await.unwrap();
        let mut shuffled = f.clone();
        shuffled.layers.reverse();
        let b = build(&shuffled, json.clone()).await.unwrap();
        assert_eq!(a.root, b.root);
        // The same tree written to disk and added with js-ipfs 0.66
        // (`add -r --cid-version 1 --raw-leaves`) has this CID.
        assert_eq!(
            a.root.to_string(),
            "bafybeifaqwi7swl63645wsf43vjioyzfaifgpoyzrycviedakjm7j56one"
        );
        let mut other = f.clone();
        other.layers.pop();
        assert_ne!(build(&other, json).await.unwrap().root, a.root);
    }
}
