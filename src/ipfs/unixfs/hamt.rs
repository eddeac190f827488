//! HAMT-sharded UnixFS directories, as Kubo and the JS importer build them:
//! fanout 256, murmur3-x64-64 of the entry name (level `d` indexes by byte
//! `d` of the hash), link names `"%02X" + name` for entries and `"%02X"`
//! for sub-shards, links ordered by index, the bitfield big-endian without
//! leading zero bytes.
//!
//! The structure is canonical: a bucket holding one name is a leaf, a
//! bucket holding more is a sub-shard (created on collision, collapsed back
//! to a leaf when one name is left), so the CID depends only on the
//! entries. Shards load lazily: lookup, insert and remove read and touch
//! only the shards on the name's hash path, O(depth). Flushing re-encodes
//! only shards whose content changed.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use bytes::Bytes;
use cid::Cid;

use super::dagpb::{PbLink, PbNode};
use super::data::{DataType, UnixFsData};
use super::murmur3::hamt_hash;
use super::{BlockGet, BlockSink, corrupt};
use crate::ipfs::block::dag_pb_cid;
use crate::ipfs::{IpfsError, Result};

/// HAMT fanout used by Kubo.
pub const HAMT_FANOUT: u64 = 256;
/// Multicodec of murmur3-x64-64, the HAMT hash.
pub const MURMUR3_X64_64: u64 = 0x22;

/// A value a shard can rebuild from a stored link.
pub trait HamtValue: Sized {
    /// The value for a link read from a stored shard.
    fn from_link(cid: Cid, tsize: u64) -> Self;
}

/// A plain stored link (CID and cumulative size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLink {
    /// Target CID.
    pub cid: Cid,
    /// Target cumulative size.
    pub tsize: u64,
}

impl StoredLink {
    /// A link.
    pub fn new(cid: Cid, tsize: u64) -> Self {
        StoredLink { cid, tsize }
    }
}

impl HamtValue for StoredLink {
    fn from_link(cid: Cid, tsize: u64) -> Self {
        StoredLink { cid, tsize }
    }
}

enum Slot<V> {
    Leaf {
        name: String,
        value: V,
        /// The link this leaf had when its shard was last encoded.
        last: Option<(Cid, u64)>,
    },
    Sub(Sub<V>),
}

enum Sub<V> {
    Stored(Cid, u64),
    Loaded(Box<Shard<V>>),
}

/// One shard node (the root shard is the directory).
pub struct Shard<V> {
    slots: BTreeMap<u8, Slot<V>>,
    /// CID and cumulative size of the last encoding, while unchanged.
    cached: Option<(Cid, u64)>,
}

impl<V> Default for Shard<V> {
    fn default() -> Self {
        Shard {
            slots: BTreeMap::new(),
            cached: None,
        }
    }
}

fn index(hash: &[u8; 8], depth: usize) -> Result<u8> {
    hash.get(depth)
        .copied()
        .ok_or_else(|| IpfsError::Other("HAMT deeper than the 64-bit hash allows".into()))
}

impl<V: HamtValue> Sub<V> {
    fn load(&mut self, blocks: &dyn BlockGet) -> Result<&mut Shard<V>> {
        if let Sub::Stored(cid, tsize) = *self {
            let block = blocks.get_block(&cid)?;
            let node = PbNode::decode(&block).map_err(|e| corrupt(&cid, e))?;
            let data = node
                .data
                .as_deref()
                .ok_or_else(|| corrupt(&cid, "shard without UnixFS data"))?;
            let fs = UnixFsData::decode(data).map_err(|e| corrupt(&cid, e))?;
            if fs.kind != DataType::HamtShard {
                return Err(corrupt(&cid, "sub-shard is not a HAMT shard"));
            }
            *self = Sub::Loaded(Box::new(Shard::from_node(&cid, &node, &fs, tsize)?));
        }
        match self {
            Sub::Loaded(s) => Ok(s),
            Sub::Stored(..) => Err(IpfsError::Other("HAMT shard failed to load".into())),
        }
    }
}

impl<V: HamtValue> Shard<V> {
    /// An empty shard.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shard from its decoded block (`tsize` = its cumulative size).
    pub fn from_node(cid: &Cid, node: &PbNode, fs: &UnixFsData, tsize: u64) -> Result<Self> {
        if fs.fanout != Some(HAMT_FANOUT) || fs.hash_type != Some(MURMUR3_X64_64) {
            return Err(IpfsError::Other(format!(
                "unsupported HAMT in {cid}: fanout {:?}, hash {:?}",
                fs.fanout, fs.hash_type
            )));
        }
        let mut slots = BTreeMap::new();
        for link in &node.links {
            let name = link.name.as_deref().unwrap_or("");
            let (prefix, rest) = match (name.get(..2), name.get(2..)) {
                (Some(p), Some(r)) => (p, r),
                _ => return Err(corrupt(cid, "HAMT link name too short")),
            };
            let idx =
                u8::from_str_radix(prefix, 16).map_err(|_| corrupt(cid, "bad HAMT link prefix"))?;
            let tsize = link.tsize.unwrap_or(0);
            let slot = if rest.is_empty() {
                Slot::Sub(Sub::Stored(link.cid, tsize))
            } else {
                Slot::Leaf {
                    name: rest.to_string(),
                    value: V::from_link(link.cid, tsize),
                    last: Some((link.cid, tsize)),
                }
            };
            if slots.insert(idx, slot).is_some() {
                return Err(corrupt(cid, "duplicate HAMT index"));
            }
        }
        Ok(Shard {
            slots,
            cached: Some((*cid, tsize)),
        })
    }

    /// True if the shard has no entries.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The entry named `name`.
    pub fn get(&mut self, name: &str, blocks: &dyn BlockGet) -> Result<Option<&mut V>> {
        let hash = hamt_hash(name.as_bytes());
        self.get_at(name, &hash, 0, blocks)
    }

    fn get_at(
        &mut self,
        name: &str,
        hash: &[u8; 8],
        depth: usize,
        blocks: &dyn BlockGet,
    ) -> Result<Option<&mut V>> {
        let idx = index(hash, depth)?;
        match self.slots.get_mut(&idx) {
            None => Ok(None),
            Some(Slot::Leaf { name: n, value, .. }) => Ok((n == name).then_some(value)),
            Some(Slot::Sub(sub)) => sub.load(blocks)?.get_at(name, hash, depth + 1, blocks),
        }
    }

    /// Inserts or replaces an entry; returns the replaced value.
    pub fn insert(&mut self, name: String, value: V, blocks: &dyn BlockGet) -> Result<Option<V>> {
        let hash = hamt_hash(name.as_bytes());
        self.insert_at(name, value, &hash, 0, blocks)
    }

    fn insert_at(
        &mut self,
        name: String,
        value: V,
        hash: &[u8; 8],
        depth: usize,
        blocks: &dyn BlockGet,
    ) -> Result<Option<V>> {
        let idx = index(hash, depth)?;
        self.cached = None;
        match self.slots.entry(idx) {
            Entry::Vacant(e) => {
                e.insert(Slot::Leaf {
                    name,
                    value,
                    last: None,
                });
                Ok(None)
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Slot::Sub(sub) => sub
                    .load(blocks)?
                    .insert_at(name, value, hash, depth + 1, blocks),
                Slot::Leaf {
                    name: n, value: v, ..
                } if *n == name => Ok(Some(std::mem::replace(v, value))),
                Slot::Leaf { .. } => {
                    // Collision: both names move into a new sub-shard.
                    let Slot::Leaf {
                        name: old_name,
                        value: old_value,
                        ..
                    } = std::mem::replace(e.get_mut(), Slot::Sub(Sub::Loaded(Box::default())))
                    else {
                        return Err(IpfsError::Other("HAMT slot changed".into()));
                    };
                    let Slot::Sub(Sub::Loaded(child)) = e.get_mut() else {
                        return Err(IpfsError::Other("HAMT slot changed".into()));
                    };
                    let old_hash = hamt_hash(old_name.as_bytes());
                    child.insert_at(old_name, old_value, &old_hash, depth + 1, blocks)?;
                    child.insert_at(name, value, hash, depth + 1, blocks)
                }
            },
        }
    }

    /// Removes an entry; returns it.
    pub fn remove(&mut self, name: &str, blocks: &dyn BlockGet) -> Result<Option<V>> {
        let hash = hamt_hash(name.as_bytes());
        self.remove_at(name, &hash, 0, blocks)
    }

    fn remove_at(
        &mut self,
        name: &str,
        hash: &[u8; 8],
        depth: usize,
        blocks: &dyn BlockGet,
    ) -> Result<Option<V>> {
        let idx = index(hash, depth)?;
        let Some(slot) = self.slots.get_mut(&idx) else {
            return Ok(None);
        };
        match slot {
            Slot::Leaf { name: n, .. } => {
                if n != name {
                    return Ok(None);
                }
                self.cached = None;
                match self.slots.remove(&idx) {
                    Some(Slot::Leaf { value, .. }) => Ok(Some(value)),
                    _ => Ok(None),
                }
            }
            Slot::Sub(sub) => {
                let child = sub.load(blocks)?;
                let removed = child.remove_at(name, hash, depth + 1, blocks)?;
                if removed.is_none() {
                    return Ok(None);
                }
                self.cached = None;
                let collapse = child.slots.len() == 1
                    && matches!(child.slots.values().next(), Some(Slot::Leaf { .. }));
                if child.slots.is_empty() {
                    self.slots.remove(&idx);
                } else if collapse {
                    let leaf = child.slots.pop_first().map(|(_, s)| s);
                    if let Some(Slot::Leaf { name, value, .. }) = leaf {
                        self.slots.insert(
                            idx,
                            Slot::Leaf {
                                name,
                                value,
                                last: None,
                            },
                        );
                    }
                }
                Ok(removed)
            }
        }
    }

    /// Calls `f` for every entry (loading every shard), in shard order.
    pub fn for_each(
        &mut self,
        blocks: &dyn BlockGet,
        f: &mut dyn FnMut(&str, &mut V) -> Result<()>,
    ) -> Result<()> {
        for slot in self.slots.values_mut() {
            match slot {
                Slot::Leaf { name, value, .. } => f(name, value)?,
                Slot::Sub(sub) => sub.load(blocks)?.for_each(blocks, f)?,
            }
        }
        Ok(())
    }

    /// Calls `f` for the entries of shards already in memory (loads
    /// nothing).
    pub fn for_each_loaded(&self, f: &mut dyn FnMut(&V)) {
        for slot in self.slots.values() {
            match slot {
                Slot::Leaf { value, .. } => f(value),
                Slot::Sub(Sub::Loaded(s)) => s.for_each_loaded(f),
                Slot::Sub(Sub::Stored(..)) => {}
            }
        }
    }

    /// Consumes the shard, returning every entry.
    pub fn into_entries(mut self, blocks: &dyn BlockGet) -> Result<Vec<(String, V)>> {
        let mut out = Vec::new();
        self.drain_into(blocks, &mut out)?;
        Ok(out)
    }

    fn drain_into(&mut self, blocks: &dyn BlockGet, out: &mut Vec<(String, V)>) -> Result<()> {
        for (_, slot) in std::mem::take(&mut self.slots) {
            match slot {
                Slot::Leaf { name, value, .. } => out.push((name, value)),
                Slot::Sub(mut sub) => sub.load(blocks)?.drain_into(blocks, out)?,
            }
        }
        Ok(())
    }

    /// Encodes changed shards (writing them to `sink`) and returns the root
    /// CID and cumulative size. `link_of` gives each entry's current link;
    /// an entry whose link changed makes its shard re-encode.
    pub fn flush(
        &mut self,
        sink: &dyn BlockSink,
        link_of: &mut dyn FnMut(&V) -> Result<(Cid, u64)>,
    ) -> Result<(Cid, u64)> {
        let mut links: Vec<(u8, Option<&str>, (Cid, u64))> = Vec::with_capacity(self.slots.len());
        let mut changed = false;
        for (idx, slot) in self.slots.iter_mut() {
            match slot {
                Slot::Leaf { name, value, last } => {
                    let link = link_of(value)?;
                    if *last != Some(link) {
                        changed = true;
                        *last = Some(link);
                    }
                    links.push((*idx, Some(name.as_str()), link));
                }
                Slot::Sub(Sub::Stored(cid, tsize)) => links.push((*idx, None, (*cid, *tsize))),
                Slot::Sub(Sub::Loaded(child)) => {
                    let before = child.cached;
                    let link = child.flush(sink, link_of)?;
                    changed |= before != Some(link);
                    links.push((*idx, None, link));
                }
            }
        }
        if changed {
            self.cached = None;
        }
        if let Some(c) = self.cached {
            return Ok(c);
        }
        let mut bits = [0u8; 32];
        for (idx, _, _) in &links {
            bits[31 - usize::from(*idx / 8)] |= 1 << (idx % 8);
        }
        let first = bits.iter().position(|b| *b != 0).unwrap_or(bits.len());
        let mut fs = UnixFsData::new(DataType::HamtShard);
        fs.data = Some(Bytes::copy_from_slice(&bits[first..]));
        fs.hash_type = Some(MURMUR3_X64_64);
        fs.fanout = Some(HAMT_FANOUT);
        let mut total = 0u64;
        let node = PbNode {
            links: links
                .iter()
                .map(|(idx, name, (cid, tsize))| {
                    total += tsize;
                    PbLink {
                        cid: *cid,
                        name: Some(match name {
                            Some(n) => format!("{idx:02X}{n}"),
                            None => format!("{idx:02X}"),
                        }),
                        tsize: Some(*tsize),
                    }
                })
                .collect(),
            data: Some(Bytes::from(fs.encode())),
        };
        let data = Bytes::from(node.encode());
        let cid = dag_pb_cid(&data);
        sink.put(&cid, &data)?;
        let out = (cid, total + data.len() as u64);
        self.cached = Some(out);
        Ok(out)
    }
}
