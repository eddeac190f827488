//! Random-access streaming export of UnixFS files.
//!
//! A read of `[offset, offset + len)` descends from the root using each
//! node's `blocksizes`, skipping whole subtrees before `offset`, so the
//! cost is proportional to the depth plus the bytes read. Leaves are
//! fetched several at a time ahead of the consumer (bounded).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use cid::Cid;
use futures::StreamExt;

use super::dagpb::PbNode;
use super::data::{DataType, UnixFsData};
use super::{BlockSource, corrupt};
use crate::ipfs::{IpfsError, RAW, Result};
use crate::storage::ByteStream;

/// Leaves fetched ahead of the consumer.
const PREFETCH: usize = 8;

/// What the root of a file DAG says about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRoot {
    /// File size in bytes.
    pub size: u64,
}

/// One piece of the output, planned before its bytes are fetched.
enum Segment {
    Inline(Bytes),
    Leaf {
        cid: Cid,
        skip: usize,
        take: usize,
        expect: u64,
    },
}

struct Frame {
    children: Vec<(Cid, u64)>,
    next: usize,
    base: u64,
}

struct Planner {
    src: Arc<dyn BlockSource>,
    stack: Vec<Frame>,
    start: u64,
    end: u64,
    first: Option<Segment>,
}

/// A decoded file node: inline data, `(child, bytes)` pairs, total bytes.
pub type FileNode = (Option<Bytes>, Vec<(Cid, u64)>, u64);

/// Decodes a dag-pb UnixFS file node: its inline data and `(child, bytes)`
/// pairs.
pub fn decode_file_node(cid: &Cid, block: &[u8]) -> Result<FileNode> {
    let node = PbNode::decode(block).map_err(|e| corrupt(cid, e))?;
    let data = node
        .data
        .as_deref()
        .ok_or_else(|| corrupt(cid, "dag-pb node without UnixFS data"))?;
    let fs = UnixFsData::decode(data).map_err(|e| corrupt(cid, e))?;
    match fs.kind {
        DataType::File | DataType::Raw => {}
        DataType::Directory | DataType::HamtShard => {
            return Err(IpfsError::NotAFile(cid.to_string()));
        }
        other => return Err(corrupt(cid, format!("unsupported UnixFS type {other:?}"))),
    }
    if fs.blocksizes.len() != node.links.len() {
        return Err(corrupt(cid, "blocksizes do not match links"));
    }
    let inline_len = fs.data.as_ref().map_or(0, |d| d.len() as u64);
    let total = inline_len + fs.blocksizes.iter().sum::<u64>();
    if let Some(fsz) = fs.filesize
        && fsz != total
    {
        return Err(corrupt(cid, "filesize does not match blocksizes"));
    }
    let children = node
        .links
        .iter()
        .zip(&fs.blocksizes)
        .map(|(l, s)| (l.cid, *s))
        .collect();
    Ok((fs.data, children, total))
}

impl Planner {
    fn overlap(&self, base: u64, len: u64) -> Option<(usize, usize)> {
        let lo = self.start.max(base);
        let hi = self.end.min(base + len);
        (lo < hi).then(|| ((lo - base) as usize, (hi - lo) as usize))
    }

    /// Pushes a file node's children; returns its inline data segment.
    fn enter(
        &mut self,
        inline: Option<Bytes>,
        children: Vec<(Cid, u64)>,
        base: u64,
    ) -> Option<Segment> {
        let inline_len = inline.as_ref().map_or(0, |d| d.len() as u64);
        self.stack.push(Frame {
            children,
            next: 0,
            base: base + inline_len,
        });
        let data = inline?;
        let (skip, take) = self.overlap(base, inline_len)?;
        Some(Segment::Inline(data.slice(skip..skip + take)))
    }

    async fn next(&mut self) -> Option<Result<Segment>> {
        if let Some(s) = self.first.take() {
            return Some(Ok(s));
        }
        loop {
            let top = self.stack.last_mut()?;
            let Some(&(cid, len)) = top.children.get(top.next) else {
                self.stack.pop();
                continue;
            };
            top.next += 1;
            let base = top.base;
            top.base += len;
            if base >= self.end {
                self.stack.clear();
                return None;
            }
            let Some((skip, take)) = self.overlap(base, len) else {
                continue;
            };
            if cid.codec() == RAW {
                return Some(Ok(Segment::Leaf {
                    cid,
                    skip,
                    take,
                    expect: len,
                }));
            }
            let block = match self.src.get(&cid).await {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            let (inline, children, total) = match decode_file_node(&cid, &block) {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            if total != len {
                return Some(Err(corrupt(&cid, "size differs from parent's blocksizes")));
            }
            if let Some(seg) = self.enter(inline, children, base) {
                return Some(Ok(seg));
            }
        }
    }
}

async fn fetch_segment(src: Arc<dyn BlockSource>, seg: Segment) -> Result<Bytes> {
    match seg {
        Segment::Inline(b) => Ok(b),
        Segment::Leaf {
            cid,
            skip,
            take,
            expect,
        } => {
            let data = src.get(&cid).await?;
            if data.len() as u64 != expect {
                return Err(corrupt(&cid, "leaf size differs from blocksizes"));
            }
            Ok(data.slice(skip..skip + take))
        }
    }
}

/// Converts an IPFS error into the `io::Error` of a byte stream.
pub fn to_io(e: IpfsError) -> io::Error {
    let kind = match &e {
        IpfsError::NotFound(_) => io::ErrorKind::NotFound,
        IpfsError::Timeout(_) => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// Size of the file at `cid` (raw leaf or dag-pb UnixFS file), reading
/// only its root block.
pub async fn file_size(src: &dyn BlockSource, cid: &Cid) -> Result<u64> {
    let block = src.get(cid).await?;
    if cid.codec() == RAW {
        return Ok(block.len() as u64);
    }
    if cid.codec() != crate::ipfs::DAG_PB {
        return Err(IpfsError::NotAFile(cid.to_string()));
    }
    Ok(decode_file_node(cid, &block)?.2)
}

/// Streams bytes `[offset, offset + len)` of the file at `cid` (to the end
/// if `len` is `None`; empty if `offset` is at or past the end). Errors
/// about the root (missing, not a file) are returned before streaming.
pub async fn read_file(
    src: Arc<dyn BlockSource>,
    cid: Cid,
    offset: u64,
    len: Option<u64>,
) -> Result<ByteStream> {
    let root = src.get(&cid).await?;
    let mut planner = Planner {
        src: src.clone(),
        stack: Vec::new(),
        start: offset,
        end: 0,
        first: None,
    };
    let total = match cid.codec() {
        RAW => {
            let total = root.len() as u64;
            planner.end = len.map_or(total, |l| offset.saturating_add(l).min(total));
            if let Some((skip, take)) = planner.overlap(0, total) {
                planner.first = Some(Segment::Inline(root.slice(skip..skip + take)));
            }
            total
        }
        crate::ipfs::DAG_PB => {
            let (inline, children, total) = decode_file_node(&cid, &root)?;
            planner.end = len.map_or(total, |l| offset.saturating_add(l).min(total));
            planner.first = planner.enter(inline, children, 0);
            total
        }
        other => {
            return Err(IpfsError::NotAFile(format!("{cid} (codec {other:#x})")));
        }
    };
    if offset >= total {
        return Ok(Box::pin(futures::stream::empty()));
    }
    let segments =
        futures::stream::unfold(
            planner,
            |mut p| async move { p.next().await.map(|s| (s, p)) },
        );
    let stream = segments
        .map(move |seg| {
            let src = src.clone();
            async move { fetch_segment(src, seg?).await }
        })
        .buffered(PREFETCH)
        .scan(false, |failed, r: Result<Bytes>| {
            // Stop after the first error.
            if *failed {
                return futures::future::ready(None);
            }
            *failed = r.is_err();
            futures::future::ready(Some(r.map_err(to_io)))
        });
    Ok(Box::pin(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::unixfs::{CHUNK_SIZE, FileImporter, MemoryBlocks};
    use futures::TryStreamExt;

    async fn collect(s: ByteStream) -> Vec<u8> {
        let parts: Vec<Bytes> = s.try_collect().await.unwrap();
        parts.concat()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ranged_reads_match() {
        let mem = Arc::new(MemoryBlocks::default());
        // Two levels: 176 leaves.
        let len = CHUNK_SIZE * 175 + 12345;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut imp = FileImporter::new(mem.clone(), 4);
        imp.push(Bytes::from(data.clone())).await.unwrap();
        let s = imp.finish().await.unwrap();
        let src: Arc<dyn BlockSource> = mem.clone();
        assert_eq!(file_size(&*src, &s.cid).await.unwrap(), len as u64);
        assert_eq!(
            collect(read_file(src.clone(), s.cid, 0, None).await.unwrap()).await,
            data
        );
        let c = CHUNK_SIZE as u64;
        for (off, n) in [
            (0u64, 1u64),
            (c - 1, 2),
            (c * 174 - 5, 10),
            (c * 174, c + 100),
            (len as u64 - 3, 100),
            (12345, 3 * c),
        ] {
            let got = collect(read_file(src.clone(), s.cid, off, Some(n)).await.unwrap()).await;
            let end = (off + n).min(len as u64) as usize;
            assert_eq!(got, &data[off as usize..end], "offset {off} len {n}");
        }
        assert!(
            collect(
                read_file(src.clone(), s.cid, len as u64, None)
                    .await
                    .unwrap()
            )
            .await
            .is_empty()
        );
        assert!(
            collect(
                read_file(src.clone(), s.cid, len as u64 + 9, Some(1))
                    .await
                    .unwrap()
            )
            .await
            .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn raw_leaf_and_errors() {
        let mem = Arc::new(MemoryBlocks::default());
        let mut imp = FileImporter::new(mem.clone(), 1);
        imp.push(Bytes::from_static(b"hello world\n"))
            .await
            .unwrap();
        let s = imp.finish().await.unwrap();
        let src: Arc<dyn BlockSource> = mem.clone();
        assert_eq!(
            collect(read_file(src.clone(), s.cid, 6, Some(5)).await.unwrap()).await,
            b"world"
        );
        let missing = crate::ipfs::block::raw_cid(b"nope");
        assert!(matches!(
            read_file(src.clone(), missing, 0, None).await,
            Err(IpfsError::NotFound(_))
        ));
        // A directory is not a file.
        let dir = crate::ipfs::block::dag_pb_cid(&[0x0a, 2, 8, 1]);
        mem.put_raw(dir, Bytes::from_static(&[0x0a, 2, 8, 1]));
        assert!(matches!(
            read_file(src, dir, 0, None).await,
            Err(IpfsError::NotAFile(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_leaf_is_stream_error() {
        let mem = Arc::new(MemoryBlocks::default());
        let data = vec![1u8; CHUNK_SIZE * 3];
        let mut imp = FileImporter::new(mem.clone(), 2);
        imp.push(Bytes::from(data)).await.unwrap();
        let s = imp.finish().await.unwrap();
        // Keep the root, drop everything else.
        let only_root = Arc::new(MemoryBlocks::default());
        only_root.put_raw(s.cid, mem.get(&s.cid).unwrap());
        let stream = read_file(only_root, s.cid, 0, None).await.unwrap();
        let r: std::result::Result<Vec<Bytes>, io::Error> = stream.try_collect().await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
