//! Path resolution inside a DAG (`/ipfs/<cid>/a/b`), through flat and
//! HAMT-sharded directories, reading only the blocks on the path.

use cid::Cid;

use super::dagpb::PbNode;
use super::data::{DataType, UnixFsData};
use super::murmur3::hamt_hash;
use super::{BlockSource, corrupt};
use crate::ipfs::{DAG_PB, IpfsError, Result};

/// The link named `name` in the directory block `block` (flat or HAMT
/// root), fetching sub-shards through `src`. `Ok(None)` if absent.
pub async fn lookup(
    src: &dyn BlockSource,
    cid: &Cid,
    block: &[u8],
    name: &str,
) -> Result<Option<(Cid, u64)>> {
    if cid.codec() != DAG_PB {
        return Err(IpfsError::NotADirectory(cid.to_string()));
    }
    let mut node = PbNode::decode(block).map_err(|e| corrupt(cid, e))?;
    let mut fs = unixfs_of(cid, &node)?;
    match fs.kind {
        DataType::Directory => {
            return Ok(node
                .links
                .into_iter()
                .find(|l| l.name.as_deref() == Some(name))
                .map(|l| (l.cid, l.tsize.unwrap_or(0))));
        }
        DataType::HamtShard => {}
        _ => return Err(IpfsError::NotADirectory(cid.to_string())),
    }
    let hash = hamt_hash(name.as_bytes());
    let mut shard_cid = *cid;
    for &idx in hash.iter() {
        if fs.kind != DataType::HamtShard {
            return Err(corrupt(&shard_cid, "sub-shard is not a HAMT shard"));
        }
        let prefix = format!("{idx:02X}");
        let hit = node.links.iter().find(|l| {
            l.name
                .as_deref()
                .and_then(|n| n.get(..2))
                .is_some_and(|p| p.eq_ignore_ascii_case(&prefix))
        });
        let Some(link) = hit else {
            return Ok(None);
        };
        let rest = link.name.as_deref().and_then(|n| n.get(2..)).unwrap_or("");
        if !rest.is_empty() {
            return Ok((rest == name).then(|| (link.cid, link.tsize.unwrap_or(0))));
        }
        shard_cid = link.cid;
        let sub = src.get(&shard_cid).await?;
        node = PbNode::decode(&sub).map_err(|e| corrupt(&shard_cid, e))?;
        fs = unixfs_of(&shard_cid, &node)?;
    }
    Err(corrupt(cid, "HAMT deeper than its hash"))
}

fn unixfs_of(cid: &Cid, node: &PbNode) -> Result<UnixFsData> {
    let data = node
        .data
        .as_deref()
        .ok_or_else(|| corrupt(cid, "dag-pb node without UnixFS data"))?;
    UnixFsData::decode(data).map_err(|e| corrupt(cid, e))
}

/// Resolves `components` below `root`; returns the target CID.
pub async fn resolve_path(src: &dyn BlockSource, root: Cid, components: &[&str]) -> Result<Cid> {
    let mut cur = root;
    for (i, name) in components.iter().enumerate() {
        let block = src.get(&cur).await?;
        match lookup(src, &cur, &block, name).await? {
            Some((next, _)) => cur = next,
            None => {
                return Err(IpfsError::NotFound(format!(
                    "{root}/{}",
                    components[..=i].join("/")
                )));
            }
        }
    }
    Ok(cur)
}
