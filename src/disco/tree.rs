//! Reading an image repository from IPFS before cloning it: every block of
//! its DAG is fetched (bounded in number, size and time) and checked, then
//! the tree is validated strictly. Nothing is written to the registry here.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures::{StreamExt, TryStreamExt, stream};

use super::error::{DiscoError, Result};
use super::json::DiscoJson;
use super::layout::{DISCO_JSON, ImageFiles, LATEST};
use crate::ipfs::block::{IDENTITY, verify};
use crate::ipfs::unixfs::MemoryBlocks;
use crate::ipfs::unixfs::dagpb::links_of;
use crate::ipfs::unixfs::dir::{DecodedDir, NodeKind, decode_dir, node_kind};
use crate::ipfs::unixfs::export::read_file;
use crate::ipfs::unixfs::hamt::StoredLink;
use crate::ipfs::{DAG_PB, Ipfs, IpfsError, RAW};
use crate::registry::Digest;

/// Most blocks an image repository's DAG may have.
pub const MAX_BLOCKS: usize = 200_000;
/// Most bytes an image repository's DAG may have.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Deepest directory nesting accepted.
const MAX_DEPTH: usize = 12;
/// Largest link file.
const MAX_LINK: usize = 256;
/// Blocks fetched at once.
const FETCH_CONCURRENCY: usize = 32;

/// A validated image repository, as found on the network.
#[derive(Debug, Clone)]
pub struct RemoteRepo {
    /// The manifests and layers it links.
    pub files: ImageFiles,
    /// Its blob list.
    pub json: DiscoJson,
    /// Blocks in its DAG.
    pub blocks: usize,
}

/// Files of the tree by path (`a/b/c`), and its directories.
#[derive(Default)]
struct Tree {
    files: BTreeMap<String, Cid>,
    dirs: BTreeSet<String>,
}

/// Fetches every block of the DAG at `root` into memory. Missing blocks
/// wait up to `timeout` each (the caller bounds the whole).
async fn fetch_dag(ipfs: &dyn Ipfs, root: Cid, timeout: Duration) -> Result<Arc<MemoryBlocks>> {
    let mem = Arc::new(MemoryBlocks::default());
    let mut seen: HashSet<Cid> = HashSet::new();
    let mut frontier = vec![root];
    let mut bytes = 0u64;
    while !frontier.is_empty() {
        let batch: Vec<Cid> = frontier
            .drain(..)
            .filter(|c| c.hash().code() != IDENTITY && seen.insert(*c))
            .collect();
        if seen.len() > MAX_BLOCKS {
            return Err(DiscoError::invalid(
                root,
                format!("its DAG has more than {MAX_BLOCKS} blocks"),
            ));
        }
        let fetched: Vec<(Cid, Bytes)> = stream::iter(batch)
            .map(|cid| async move {
                ipfs.block_get(&cid, Some(timeout))
                    .await
                    .map(|b| (cid, b))
                    .map_err(|e| fetch_error(root, &cid, e, timeout))
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        for (cid, block) in fetched {
            verify(&cid, &block)
                .map_err(|e| DiscoError::invalid(root, format!("block {cid}: {e}")))?;
            bytes += block.len() as u64;
            if bytes > MAX_BYTES {
                return Err(DiscoError::invalid(
                    root,
                    format!("its DAG is larger than {MAX_BYTES} bytes"),
                ));
            }
            match cid.codec() {
                DAG_PB => frontier.extend(
                    links_of(&cid, &block)
                        .map_err(|e| DiscoError::invalid(root, format!("block {cid}: {e}")))?,
                ),
                RAW => {}
                other => {
                    return Err(DiscoError::invalid(
                        root,
                        format!("block {cid} has codec {other:#x}, not UnixFS"),
                    ));
                }
            }
            mem.put_raw(cid, block);
        }
    }
    Ok(mem)
}

fn fetch_error(root: Cid, cid: &Cid, e: IpfsError, timeout: Duration) -> DiscoError {
    match e {
        IpfsError::Timeout(_) | IpfsError::NotFound(_) => DiscoError::NotFound {
            what: if *cid == root {
                format!("image {root}")
            } else {
                format!("block {cid} of image {root}")
            },
            timeout,
        },
        e => DiscoError::Ipfs(e),
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && !n.contains('/') && !n.contains('\0')
}

/// Lists the whole tree held in `mem`.
fn walk(mem: &MemoryBlocks, root: Cid) -> Result<Tree> {
    let invalid = |why: String| DiscoError::invalid(root, why);
    let mut tree = Tree::default();
    let mut stack: Vec<(String, Cid, usize)> = vec![(String::new(), root, 0)];
    while let Some((path, cid, depth)) = stack.pop() {
        let block = mem
            .get(&cid)
            .ok_or_else(|| invalid(format!("block {cid} missing")))?;
        let kind = node_kind(&cid, &block).map_err(|e| invalid(e.to_string()))?;
        match kind {
            NodeKind::File if !path.is_empty() => {
                tree.files.insert(path, cid);
            }
            NodeKind::Directory | NodeKind::HamtShard => {
                if depth > MAX_DEPTH {
                    return Err(invalid(format!(
                        "directories nested deeper than {MAX_DEPTH}"
                    )));
                }
                let entries: Vec<(String, Cid)> = match decode_dir::<StoredLink>(&cid, &block)
                    .map_err(|e| invalid(e.to_string()))?
                {
                    DecodedDir::Flat(links) => links.into_iter().map(|l| (l.name, l.cid)).collect(),
                    DecodedDir::Hamt(shard) => shard
                        .into_entries(mem)
                        .map_err(|e| invalid(e.to_string()))?
                        .into_iter()
                        .map(|(n, v)| (n, v.cid))
                        .collect(),
                };
                for (name, child) in entries {
                    if !valid_name(&name) {
                        return Err(invalid(format!("invalid entry name {name:?} in {path:?}")));
                    }
                    let child_path = if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    };
                    stack.push((child_path, child, depth + 1));
                }
                if !path.is_empty() {
                    tree.dirs.insert(path);
                }
            }
            _ if path.is_empty() => return Err(invalid("the root is not a directory".into())),
            _ => return Err(invalid(format!("{path} is neither a directory nor a file"))),
        }
    }
    Ok(tree)
}

async fn read(
    mem: &Arc<MemoryBlocks>,
    root: Cid,
    path: &str,
    cid: Cid,
    max: usize,
) -> Result<Bytes> {
    let s = read_file(mem.clone(), cid, 0, Some(max as u64 + 1))
        .await
        .map_err(|e| DiscoError::invalid(root, format!("{path}: {e}")))?;
    let chunks: Vec<Bytes> = s
        .try_collect()
        .await
        .map_err(|e| DiscoError::invalid(root, format!("{path}: {e}")))?;
    let data = Bytes::from(chunks.concat());
    if data.len() > max {
        return Err(DiscoError::invalid(
            root,
            format!("{path} is larger than {max} bytes"),
        ));
    }
    Ok(data)
}

/// `<alg>/<hex>` components as a digest.
fn path_digest(alg: &str, hex: &str) -> Option<Digest> {
    format!("{alg}:{hex}").parse().ok()
}

/// What a link file's content names.
fn link_digest(data: &[u8]) -> Option<Digest> {
    std::str::from_utf8(data).ok()?.trim().parse().ok()
}

/// Fetches (within `timeout` per block) and validates the image
/// repository at `root`: `disco.json` is valid; every file under
/// `_layers` and `_manifests` is a link in Distribution's layout whose
/// content matches its path; tag `latest` exists and names a revision; and
/// every linked manifest and layer is listed in `disco.json`.
pub async fn fetch(ipfs: &dyn Ipfs, root: Cid, timeout: Duration) -> Result<RemoteRepo> {
    let mem = fetch_dag(ipfs, root, timeout).await?;
    check(&mem, root).await
}

/// Validates the image repository at `root` whose blocks are all in `mem`.
async fn check(mem: &Arc<MemoryBlocks>, root: Cid) -> Result<RemoteRepo> {
    let blocks = mem.len();
    let tree = walk(mem, root)?;
    let invalid = |why: String| DiscoError::invalid(root, why);

    let json_cid = *tree
        .files
        .get(DISCO_JSON)
        .ok_or_else(|| invalid(format!("no {DISCO_JSON}")))?;
    let json_bytes = read(mem, root, DISCO_JSON, json_cid, super::json::MAX_JSON_BYTES).await?;
    let json = DiscoJson::parse(&json_bytes).map_err(|e| invalid(e.to_string()))?;

    if tree.files.keys().any(|p| p.starts_with("_uploads/")) {
        return Err(invalid("it holds upload state (_uploads)".into()));
    }
    let mut layers = Vec::new();
    let mut manifests = Vec::new();
    let mut tags: BTreeMap<String, Digest> = BTreeMap::new();
    for (path, cid) in &tree.files {
        let parts: Vec<&str> = path.split('/').collect();
        let (expect, into): (Option<Digest>, Option<&mut Vec<Digest>>) = match parts.as_slice() {
            ["_layers", alg, hex, "link"] => (path_digest(alg, hex), Some(&mut layers)),
            ["_manifests", "revisions", alg, hex, "link"] => {
                (path_digest(alg, hex), Some(&mut manifests))
            }
            ["_manifests", "tags", _, "index", alg, hex, "link"] => (path_digest(alg, hex), None),
            ["_manifests", "tags", tag, "current", "link"] => {
                let data = read(mem, root, path, *cid, MAX_LINK).await?;
                let d = link_digest(&data)
                    .ok_or_else(|| invalid(format!("{path} does not hold a digest")))?;
                tags.insert((*tag).to_string(), d);
                continue;
            }
            ["_layers" | "_manifests", ..] => {
                return Err(invalid(format!("unexpected file {path}")));
            }
            _ => continue,
        };
        let expect =
            expect.ok_or_else(|| invalid(format!("{path}: invalid digest in the path")))?;
        let data = read(mem, root, path, *cid, MAX_LINK).await?;
        if link_digest(&data).as_ref() != Some(&expect) {
            return Err(invalid(format!("{path} does not hold {expect}")));
        }
        if let Some(list) = into {
            list.push(expect);
        }
    }
    let manifest = tags
        .get(LATEST)
        .cloned()
        .ok_or_else(|| invalid("no tag latest".into()))?;
    for (tag, d) in &tags {
        if !manifests.contains(d) {
            return Err(invalid(format!(
                "tag {tag} names {d}, which has no revision link"
            )));
        }
    }
    for d in manifests.iter().chain(&layers) {
        if json.cid_of(d).is_none() {
            return Err(invalid(format!(
                "{d} is linked but not listed in {DISCO_JSON}"
            )));
        }
    }
    Ok(RemoteRepo {
        files: ImageFiles {
            manifest,
            manifests,
            layers,
        },
        json,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disco::json::BlobRef;
    use crate::disco::layout;
    use crate::ipfs::block::raw_cid;
    use crate::ipfs::unixfs::dir::{DirLink, build_directory};

    const BLOBS: [&[u8]; 3] = [b"manifest", b"config", b"layer"];

    fn image() -> (ImageFiles, DiscoJson) {
        let files = ImageFiles {
            manifest: Digest::sha256(BLOBS[0]),
            manifests: vec![Digest::sha256(BLOBS[0])],
            layers: vec![Digest::sha256(BLOBS[1]), Digest::sha256(BLOBS[2])],
        };
        let json = DiscoJson::new(BLOBS.iter().map(|b| BlobRef {
            digest: Digest::sha256(b),
            cid: raw_cid(b),
        }))
        .unwrap();
        (files, json)
    }

    /// A test tree: files and subdirectories.
    enum Node {
        File(Vec<u8>),
        Dir(Vec<(String, Node)>),
    }

    fn file(s: impl AsRef<[u8]>) -> Node {
        Node::File(s.as_ref().to_vec())
    }

    /// Puts the nodes of `n` into `mem`; returns its CID and size.
    fn put(n: Node, mem: &MemoryBlocks) -> (Cid, u64) {
        match n {
            Node::File(data) => {
                let cid = raw_cid(&data);
                let len = data.len() as u64;
                mem.put_raw(cid, Bytes::from(data));
                (cid, len)
            }
            Node::Dir(entries) => {
                let links = entries
                    .into_iter()
                    .map(|(name, n)| {
                        let (cid, tsize) = put(n, mem);
                        DirLink { name, cid, tsize }
                    })
                    .collect();
                build_directory(links, mem).unwrap()
            }
        }
    }

    /// `path` → content, as nested directories.
    fn tree_of(files: &[(String, Vec<u8>)]) -> Node {
        fn insert(into: &mut Vec<(String, Node)>, path: &[&str], data: &[u8]) {
            match path {
                [name] => into.push((name.to_string(), file(data))),
                [first, rest @ ..] => {
                    let pos = into.iter().position(|(n, _)| n == first);
                    let idx = pos.unwrap_or_else(|| {
                        into.push((first.to_string(), Node::Dir(Vec::new())));
                        into.len() - 1
                    });
                    if let Node::Dir(children) = &mut into[idx].1 {
                        insert(children, rest, data);
                    }
                }
                [] => {}
            }
        }
        let mut root = Vec::new();
        for (p, d) in files {
            let parts: Vec<&str> = p.split('/').collect();
            insert(&mut root, &parts, d);
        }
        Node::Dir(root)
    }

    /// The files of a valid repository for `image()`.
    fn valid_files() -> Vec<(String, Vec<u8>)> {
        let (files, json) = image();
        let m = &files.manifest;
        let mut out = vec![
            ("disco.json".to_string(), json.to_bytes()),
            (
                "_manifests/tags/latest/current/link".into(),
                m.to_string().into_bytes(),
            ),
            (
                format!("_manifests/tags/latest/index/sha256/{}/link", m.hex()),
                m.to_string().into_bytes(),
            ),
            (
                format!("_manifests/revisions/sha256/{}/link", m.hex()),
                m.to_string().into_bytes(),
            ),
        ];
        for l in &files.layers {
            out.push((
                format!("_layers/sha256/{}/link", l.hex()),
                l.to_string().into_bytes(),
            ));
        }
        out
    }

    async fn check_files(files: Vec<(String, Vec<u8>)>) -> Result<RemoteRepo> {
        let mem = Arc::new(MemoryBlocks::default());
        let (root, _) = put(tree_of(&files), &mem);
        check(&mem, root).await
    }

    #[tokio::test]
    async fn a_built_repository_is_valid() {
        let (files, json) = image();
        let dag = layout::build(&files, Bytes::from(json.to_bytes()))
            .await
            .unwrap();
        let mem = Arc::new(MemoryBlocks::default());
        for (c, b) in dag.blocks {
            mem.put_raw(c, b);
        }
        let repo = check(&mem, dag.root).await.unwrap();
        assert_eq!(repo.json, json);
        assert_eq!(repo.files.manifest, files.manifest);
        assert_eq!(repo.files.manifests, files.manifests);
        let mut layers = repo.files.layers.clone();
        layers.sort();
        let mut want = files.layers.clone();
        want.sort();
        assert_eq!(layers, want);
        // The hand-built tree of the same files is the same DAG.
        let mem2 = Arc::new(MemoryBlocks::default());
        let (root2, _) = put(tree_of(&valid_files()), &mem2);
        assert_eq!(root2, dag.root);
    }

    #[tokio::test]
    async fn rejects_invalid_repositories() {
        let (files, _) = image();
        let m = files.manifest.clone();
        let l = files.layers[0].clone();
        let other = Digest::sha256(b"other");
        type Edit = Box<dyn Fn(&mut Vec<(String, Vec<u8>)>)>;
        let set = |path: String, data: Vec<u8>| -> Edit {
            Box::new(move |f: &mut Vec<(String, Vec<u8>)>| {
                f.retain(|(p, _)| *p != path);
                f.push((path.clone(), data.clone()));
            })
        };
        let remove = |path: String| -> Edit {
            Box::new(move |f: &mut Vec<(String, Vec<u8>)>| f.retain(|(p, _)| *p != path))
        };
        let cases: Vec<(&str, Edit)> = vec![
            ("no disco.json", remove("disco.json".into())),
            (
                "malformed disco.json",
                set("disco.json".into(), b"{\"blobs\":[".to_vec()),
            ),
            (
                "empty disco.json",
                set("disco.json".into(), b"{\"blobs\":[]}".to_vec()),
            ),
            (
                "no latest",
                remove("_manifests/tags/latest/current/link".into()),
            ),
            (
                "layer link content differs from its path",
                set(
                    format!("_layers/sha256/{}/link", l.hex()),
                    other.to_string().into_bytes(),
                ),
            ),
            (
                "layer not in disco.json",
                set(
                    format!("_layers/sha256/{}/link", other.hex()),
                    other.to_string().into_bytes(),
                ),
            ),
            (
                "revision not in disco.json",
                set(
                    format!("_manifests/revisions/sha256/{}/link", other.hex()),
                    other.to_string().into_bytes(),
                ),
            ),
            (
                "tag names a manifest without revision",
                set(
                    "_manifests/tags/v1/current/link".into(),
                    other.to_string().into_bytes(),
                ),
            ),
            (
                "bad digest in a path",
                set("_layers/sha256/xyz/link".into(), m.to_string().into_bytes()),
            ),
            (
                "unexpected file under _layers",
                set(format!("_layers/sha256/{}/data", l.hex()), b"x".to_vec()),
            ),
            ("upload state", set("_uploads/u/data".into(), b"x".to_vec())),
            (
                "oversized link",
                set(
                    "_manifests/tags/latest/current/link".into(),
                    vec![b' '; MAX_LINK + 1],
                ),
            ),
        ];
        assert!(check_files(valid_files()).await.is_ok());
        for (what, edit) in cases {
            let mut f = valid_files();
            edit(&mut f);
            match check_files(f).await {
                Err(DiscoError::Invalid { .. }) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        // A file as the root is not a repository.
        let mem = Arc::new(MemoryBlocks::default());
        let (root, _) = put(file("x"), &mem);
        assert!(matches!(
            check(&mem, root).await,
            Err(DiscoError::Invalid { .. })
        ));
    }
}
