//! UnixFS directories: flat dag-pb directories (links sorted by name
//! bytes) and the rule that switches a directory to a HAMT shard.
//!
//! Kubo's rule: a directory is sharded when the estimate
//! `Σ (len(name) + len(CID bytes))` of its links exceeds 262144 bytes, and
//! flat when it is at or below. disco applies the rule on every change in
//! both directions, so a directory's CID depends only on its entries.

use bytes::Bytes;
use cid::Cid;

use super::dagpb::{PbLink, PbNode};
use super::data::{DataType, UnixFsData};
use super::hamt::{HamtValue, Shard, StoredLink};
use super::{Block, BlockSink, corrupt};
use crate::ipfs::block::dag_pb_cid;
use crate::ipfs::{IpfsError, Result};

/// Size estimate above which a directory is HAMT-sharded.
pub const SHARD_THRESHOLD: u64 = 262_144;

/// Byte length of a CIDv1 sha2-256 (what a directory's link to a dirty,
/// not yet encoded child will take).
pub const CID_V1_LEN: u64 = 36;

/// The estimate one link contributes.
pub fn link_estimate(name: &str, cid_len: u64) -> u64 {
    name.len() as u64 + cid_len
}

/// Encoded length of a CID.
pub fn cid_len(cid: &Cid) -> u64 {
    cid.encoded_len() as u64
}

/// A named directory link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirLink {
    /// Entry name.
    pub name: String,
    /// Child root CID.
    pub cid: Cid,
    /// Child cumulative size.
    pub tsize: u64,
}

/// Encodes a flat directory from links already sorted by name bytes.
/// Returns the block and its cumulative size.
pub fn encode_flat<'a>(links: impl Iterator<Item = (&'a str, Cid, u64)>) -> (Block, u64) {
    let mut total = 0u64;
    let node = PbNode {
        links: links
            .map(|(name, cid, tsize)| {
                total += tsize;
                PbLink {
                    cid,
                    name: Some(name.to_string()),
                    tsize: Some(tsize),
                }
            })
            .collect(),
        data: Some(Bytes::from(UnixFsData::new(DataType::Directory).encode())),
    };
    let data = Bytes::from(node.encode());
    let cid = dag_pb_cid(&data);
    let cumulative = total + data.len() as u64;
    (Block { cid, data }, cumulative)
}

/// A decoded directory block.
pub enum DecodedDir<V = StoredLink> {
    /// A flat directory's links, in block order.
    Flat(Vec<DirLink>),
    /// The root shard of a HAMT directory.
    Hamt(Shard<V>),
}

/// What a dag-pb block is, by its UnixFS type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// File (or raw leaf).
    File,
    /// Flat directory.
    Directory,
    /// HAMT shard.
    HamtShard,
    /// Anything else (symlink, metadata).
    Other,
}

/// The UnixFS kind of a block.
pub fn node_kind(cid: &Cid, block: &[u8]) -> Result<NodeKind> {
    if cid.codec() == crate::ipfs::RAW {
        return Ok(NodeKind::File);
    }
    if cid.codec() != crate::ipfs::DAG_PB {
        return Ok(NodeKind::Other);
    }
    let node = PbNode::decode(block).map_err(|e| corrupt(cid, e))?;
    let data = node
        .data
        .as_deref()
        .ok_or_else(|| corrupt(cid, "dag-pb node without UnixFS data"))?;
    Ok(
        match UnixFsData::decode(data).map_err(|e| corrupt(cid, e))?.kind {
            DataType::File | DataType::Raw => NodeKind::File,
            DataType::Directory => NodeKind::Directory,
            DataType::HamtShard => NodeKind::HamtShard,
            DataType::Symlink | DataType::Metadata => NodeKind::Other,
        },
    )
}

/// Decodes a directory block (flat or HAMT root).
pub fn decode_dir<V: HamtValue>(cid: &Cid, block: &[u8]) -> Result<DecodedDir<V>> {
    if cid.codec() != crate::ipfs::DAG_PB {
        return Err(IpfsError::NotADirectory(cid.to_string()));
    }
    let node = PbNode::decode(block).map_err(|e| corrupt(cid, e))?;
    let data = node
        .data
        .as_deref()
        .ok_or_else(|| corrupt(cid, "dag-pb node without UnixFS data"))?;
    let fs = UnixFsData::decode(data).map_err(|e| corrupt(cid, e))?;
    match fs.kind {
        DataType::Directory => Ok(DecodedDir::Flat(
            node.links
                .into_iter()
                .map(|l| DirLink {
                    name: l.name.unwrap_or_default(),
                    cid: l.cid,
                    tsize: l.tsize.unwrap_or(0),
                })
                .collect(),
        )),
        DataType::HamtShard => {
            let tsize = block.len() as u64 + node.links.iter().filter_map(|l| l.tsize).sum::<u64>();
            Ok(DecodedDir::Hamt(Shard::from_node(cid, &node, &fs, tsize)?))
        }
        _ => Err(IpfsError::NotADirectory(cid.to_string())),
    }
}

/// Builds a directory from its entries, flat or sharded by Kubo's rule,
/// writing its blocks to `sink`. Returns the root CID and cumulative size.
pub fn build_directory(mut entries: Vec<DirLink>, sink: &dyn BlockSink) -> Result<(Cid, u64)> {
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    if entries.windows(2).any(|w| w[0].name == w[1].name) {
        return Err(IpfsError::Invalid("duplicate directory entry".into()));
    }
    let estimate: u64 = entries
        .iter()
        .map(|e| link_estimate(&e.name, cid_len(&e.cid)))
        .sum();
    if estimate <= SHARD_THRESHOLD {
        let (block, cumulative) =
            encode_flat(entries.iter().map(|e| (e.name.as_str(), e.cid, e.tsize)));
        sink.put(&block.cid, &block.data)?;
        return Ok((block.cid, cumulative));
    }
    let mut shard = Shard::new();
    let none = NoBlocks;
    for e in entries {
        shard.insert(e.name, StoredLink::new(e.cid, e.tsize), &none)?;
    }
    shard.flush(sink, &mut |v: &StoredLink| Ok((v.cid, v.tsize)))
}

/// A [`BlockGet`](super::BlockGet) with nothing in it.
pub struct NoBlocks;

impl super::BlockGet for NoBlocks {
    fn get_block(&self, cid: &Cid) -> Result<Bytes> {
        Err(IpfsError::NotFound(format!("block {cid}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::block::raw_cid;
    use crate::ipfs::unixfs::hamt::StoredLink;
    use crate::ipfs::unixfs::{BlockGet, MemoryBlocks};

    fn file(content: &[u8]) -> (Cid, u64) {
        (raw_cid(content), content.len() as u64)
    }

    fn numbered(n: usize) -> Vec<DirLink> {
        (0..n)
            .map(|i| {
                let (cid, tsize) = file(i.to_string().as_bytes());
                DirLink {
                    name: format!("{i:064x}"),
                    cid,
                    tsize,
                }
            })
            .collect()
    }

    #[test]
    fn small_directory_vectors() {
        let mem = MemoryBlocks::default();
        let (cid, _) = build_directory(vec![], &mem).unwrap();
        assert_eq!(
            cid.to_string(),
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
        );
        let (c, t) = file(b"hello world\n");
        let (b, bt) = build_directory(
            vec![DirLink {
                name: "c".into(),
                cid: c,
                tsize: t,
            }],
            &mem,
        )
        .unwrap();
        let (a, at) = file(b"a");
        let (root, _) = build_directory(
            vec![
                DirLink {
                    name: "b".into(),
                    cid: b,
                    tsize: bt,
                },
                DirLink {
                    name: "a".into(),
                    cid: a,
                    tsize: at,
                },
            ],
            &mem,
        )
        .unwrap();
        assert_eq!(
            root.to_string(),
            "bafybeifgmxudjt2wvvvj257xc7aq5wymhawh67spx7qp2rogfwvrhgzgn4"
        );
    }

    #[test]
    fn sharding_vectors() {
        for (n, want) in [
            (
                1000,
                "bafybeiaznqf5oncea3oiq2tgjm4oq7z5iqrry4x5c7ufgbruuv3oows7o4",
            ),
            (
                2621,
                "bafybeigkvboqgqrakzacizy3xaoeev536fp4hndqp67jlkvjnpesbynhpq",
            ),
            (
                2622,
                "bafybeicoh2tyil3vdx6zh4a7bxq55z5wjsvim4yrzv3232r4t3xgdxjaoy",
            ),
            (
                2623,
                "bafybeigvujcoa6rbdwdptwrv6regytjmeg5vmc2tc76fcxxqwh2opf6pq4",
            ),
            (
                3000,
                "bafybeienxujvxic7fgrguzffygc7i7pxsq22ftrtvzndj4qrtoepywjh7e",
            ),
            (
                4000,
                "bafybeia2dg35h5eg3iyyvpcmmcq42kbs5fr2gkj77dpvjdbeb3th4t4mpq",
            ),
        ] {
            let mem = MemoryBlocks::default();
            let entries = numbered(n);
            let estimate: u64 = entries
                .iter()
                .map(|e| link_estimate(&e.name, cid_len(&e.cid)))
                .sum();
            assert_eq!(estimate, 100 * n as u64);
            let (cid, _) = build_directory(entries, &mem).unwrap();
            assert_eq!(cid.to_string(), want, "N = {n}");
            let block = mem.get_block(&cid).unwrap();
            let kind = node_kind(&cid, &block).unwrap();
            let want_kind = if n <= 2621 {
                NodeKind::Directory
            } else {
                NodeKind::HamtShard
            };
            assert_eq!(kind, want_kind, "N = {n}");
        }
    }

    #[test]
    fn hamt_insert_remove_is_canonical() {
        // Build 3000 by inserts, remove 1000 one by one: equals building the
        // 2000-entry HAMT from scratch, read back lazily from blocks.
        let mem = MemoryBlocks::default();
        let all = numbered(3000);
        let mut shard: Shard<StoredLink> = Shard::new();
        for e in &all {
            shard
                .insert(e.name.clone(), StoredLink::new(e.cid, e.tsize), &mem)
                .unwrap();
        }
        let link = |v: &StoredLink| Ok((v.cid, v.tsize));
        let (root3000, _) = shard.flush(&mem, &mut { link }).unwrap();
        assert_eq!(
            root3000.to_string(),
            "bafybeienxujvxic7fgrguzffygc7i7pxsq22ftrtvzndj4qrtoepywjh7e"
        );
        // Reload from the stored root and mutate lazily.
        let block = mem.get_block(&root3000).unwrap();
        let DecodedDir::Hamt::<StoredLink>(mut lazy) = decode_dir(&root3000, &block).unwrap()
        else {
            panic!("expected a HAMT");
        };
        let probe = &all[1234];
        assert_eq!(
            lazy.get(&probe.name, &mem).unwrap().map(|v| v.cid),
            Some(probe.cid)
        );
        assert!(lazy.get("nope", &mem).unwrap().is_none());
        for e in &all[2000..] {
            assert!(lazy.remove(&e.name, &mem).unwrap().is_some());
        }
        assert!(lazy.remove("nope", &mem).unwrap().is_none());
        let (root2000, _) = lazy.flush(&mem, &mut { link }).unwrap();
        let mut scratch: Shard<StoredLink> = Shard::new();
        for e in &all[..2000] {
            scratch
                .insert(e.name.clone(), StoredLink::new(e.cid, e.tsize), &mem)
                .unwrap();
        }
        assert_eq!(scratch.flush(&mem, &mut { link }).unwrap().0, root2000);
        // An unchanged shard re-flushes to the same root without rewriting.
        let before = mem.len();
        assert_eq!(lazy.flush(&mem, &mut { link }).unwrap().0, root2000);
        assert_eq!(mem.len(), before);
    }
}
