//! The Kubo RPC backend: [`KuboClient`] talks to one Kubo-RPC-speaking node
//! (Kubo, or js-ipfs in the tests) and [`Router`] spreads content over
//! several.
//!
//! Every file written through [`KuboClient`] gets the canonical DAG of
//! `ipfs add --cid-version=1 --raw-leaves --chunker=size-262144` (balanced):
//! bytes are imported with `add` and linked into MFS with `files/cp` from
//! `/ipfs/<cid>`. Kubo's own `files/write` is never used, as it builds
//! trickle DAGs whose shape depends on write boundaries.

pub mod config;
pub mod error;
pub mod route;
pub mod router;
pub mod rpc;
pub mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};

use self::config::go_duration;
pub use self::config::{KuboConfig, NodeConfig};
pub use self::router::Router;
use self::rpc::{Call, ReqBody, Rpc, body_stream, collect};
use self::types::{AddEvent, BlockResp, FlushResp, IdResp, LsResp, RefEvent, StatResp, parse_cid};
use super::{
    Cid, EntryKind, Ipfs, IpfsError, MfsEntry, MfsStat, NodeIdentity, Result, WriteOptions, block,
    cid_v1_string,
};
use crate::storage::ByteStream;

/// Chunk size of canonical imports.
pub const CHUNK_SIZE: u64 = 262_144;
/// Largest block accepted from `block/get` (Kubo refuses blocks over 2 MiB
/// on the network; 4 MiB leaves room).
const MAX_BLOCK: usize = 4 * 1024 * 1024;
/// Extra time our side waits beyond the `timeout=` given to the node, so
/// the node's own timeout answer normally arrives first.
const GRACE: Duration = Duration::from_secs(5);

/// A client of one Kubo RPC node. Cheap to clone.
#[derive(Clone)]
pub struct KuboClient {
    rpc: Arc<Rpc>,
}

impl std::fmt::Debug for KuboClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KuboClient")
            .field("api", &self.rpc.base())
            .finish()
    }
}

/// Multicodec names Kubo's `block/put` knows.
fn codec_name(codec: u64) -> Option<&'static str> {
    Some(match codec {
        super::RAW => "raw",
        super::DAG_PB => "dag-pb",
        0x71 => "dag-cbor",
        0x0129 => "dag-json",
        _ => return None,
    })
}

fn flag(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

impl KuboClient {
    /// A client of the node whose RPC API is at `url` (e.g.
    /// `http://127.0.0.1:5001`), with `cfg`'s timeouts and retries.
    pub fn new(url: &str, cfg: &KuboConfig) -> Result<Self> {
        Ok(Self {
            rpc: Arc::new(Rpc::new(url, cfg)?),
        })
    }

    /// The node's API base URL.
    pub fn url(&self) -> &str {
        self.rpc.base()
    }

    fn cfg(&self) -> &KuboConfig {
        self.rpc.config()
    }

    /// A call that needs nothing from the network.
    fn local(&self, cmd: &'static str) -> Call {
        Call::new(cmd, self.cfg().requesttimeout)
    }

    /// A call that may wait for the network: the node gets `timeout=`.
    fn network(&self, cmd: &'static str, timeout: Duration) -> Call {
        Call::new(cmd, timeout + GRACE).arg("timeout", go_duration(timeout))
    }

    /// Fetches every block of the DAG under `cid` onto this node (Kubo's
    /// `refs -r`), so MFS links to it stay readable after the source node
    /// drops it. Each block may take up to the network timeout.
    pub async fn fetch_dag(&self, cid: &Cid) -> Result<u64> {
        let mut n = 0u64;
        let call = self
            .local("refs")
            .arg("arg", cid_v1_string(cid))
            .arg("recursive", "true")
            .idempotent();
        self.rpc
            .json_lines(call, self.cfg().networktimeout, |ev: RefEvent| {
                if let Some(err) = ev.err.filter(|e| !e.is_empty()) {
                    return Err(error::classify(None, &err));
                }
                if !ev.reference.is_empty() {
                    n += 1;
                }
                Ok(())
            })
            .await?;
        Ok(n)
    }

    /// Links `/ipfs/<cid>` at `path`, replacing a file there (never a
    /// directory).
    async fn link_at(&self, path: &str, cid: &Cid, parents: bool) -> Result<()> {
        match self.files_rm(path, false).await {
            Ok(()) => {}
            Err(IpfsError::NotFound(_)) => {}
            Err(IpfsError::NotAFile(m)) => return Err(IpfsError::NotAFile(m)),
            // Removing under a missing or non-directory parent: cp reports
            // the real problem.
            Err(IpfsError::NotADirectory(_)) => {}
            Err(e) => return Err(e),
        }
        let src = format!("/ipfs/{}", cid_v1_string(cid));
        self.files_cp(&src, path, parents).await
    }
}

#[async_trait]
impl Ipfs for KuboClient {
    fn name(&self) -> &'static str {
        "kubo"
    }

    async fn files_mkdir(&self, path: &str, parents: bool) -> Result<()> {
        let call = self
            .local("files/mkdir")
            .arg("arg", path)
            .arg("parents", flag(parents))
            .arg("cid-version", "1");
        let call = if parents { call.idempotent() } else { call };
        self.rpc.unit(call).await
    }

    async fn files_write(&self, path: &str, data: ByteStream, opts: WriteOptions) -> Result<()> {
        // The old file matters unless it is replaced whole.
        let need_old = !(opts.truncate && opts.offset == 0 && opts.create);
        let old = if need_old {
            match self.files_stat(path).await {
                Ok(st) if st.kind == EntryKind::Directory => {
                    return Err(IpfsError::NotAFile(path.to_string()));
                }
                Ok(st) => Some(st),
                Err(IpfsError::NotFound(_)) if opts.create => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let old_size = old.as_ref().map_or(0, |s| s.size);
        if opts.offset > old_size {
            return Err(IpfsError::Invalid(format!(
                "offset {} beyond the end ({old_size}) of {path}",
                opts.offset
            )));
        }
        let content: ByteStream = match old.filter(|_| !(opts.truncate && opts.offset == 0)) {
            None => data,
            Some(old) => {
                // Canonical rewrite: old[..offset] ++ data ++ old[offset+n..].
                let prefix: ByteStream = if opts.offset > 0 {
                    self.cat(&old.cid, 0, Some(opts.offset)).await?
                } else {
                    stream::empty().boxed()
                };
                let written = Arc::new(AtomicU64::new(0));
                let count = written.clone();
                let data = data.inspect_ok(move |b| {
                    count.fetch_add(b.len() as u64, Ordering::Relaxed);
                });
                let this = self.clone();
                let (offset, truncate) = (opts.offset, opts.truncate);
                let tail = stream::once(async move {
                    let end = offset + written.load(Ordering::Relaxed);
                    if truncate || end >= old.size {
                        Ok(stream::empty().boxed())
                    } else {
                        this.cat(&old.cid, end, None).await.map_err(rpc::to_io)
                    }
                })
                .try_flatten();
                prefix.chain(data).chain(tail).boxed()
            }
        };
        let cid = self.add(content, false).await?;
        self.link_at(path, &cid, opts.parents).await
    }

    async fn files_read(&self, path: &str, offset: u64, count: Option<u64>) -> Result<ByteStream> {
        let mut call = self
            .local("files/read")
            .arg("arg", path)
            .arg("offset", offset.to_string())
            .idempotent();
        if let Some(n) = count {
            call = call.arg("count", n.to_string());
        }
        let resp = self.rpc.send(call).await?;
        Ok(body_stream(resp, self.cfg().idletimeout))
    }

    async fn files_stat(&self, path: &str) -> Result<MfsStat> {
        let call = self.local("files/stat").arg("arg", path).idempotent();
        self.rpc.json::<StatResp>(call).await?.into_stat()
    }

    async fn files_ls(&self, path: &str) -> Result<Vec<MfsEntry>> {
        let call = self
            .local("files/ls")
            .arg("arg", path)
            .arg("long", "true")
            .idempotent();
        self.rpc.json::<LsResp>(call).await?.into_entries()
    }

    async fn files_cp(&self, from: &str, to: &str, parents: bool) -> Result<()> {
        let call = if from.starts_with("/ipfs/") {
            self.network("files/cp", self.cfg().networktimeout)
        } else {
            self.local("files/cp")
        };
        let call = call
            .arg("arg", from)
            .arg("arg", to)
            .arg("parents", flag(parents));
        self.rpc.unit(call).await
    }

    async fn files_mv(&self, from: &str, to: &str) -> Result<()> {
        let call = self.local("files/mv").arg("arg", from).arg("arg", to);
        self.rpc.unit(call).await
    }

    async fn files_rm(&self, path: &str, recursive: bool) -> Result<()> {
        let call = self
            .local("files/rm")
            .arg("arg", path)
            .arg("recursive", flag(recursive));
        self.rpc.unit(call).await
    }

    async fn files_flush(&self, path: &str) -> Result<Cid> {
        let call = self.local("files/flush").arg("arg", path).idempotent();
        parse_cid(&self.rpc.json::<FlushResp>(call).await?.cid)
    }

    async fn add(&self, data: ByteStream, pin: bool) -> Result<Cid> {
        let call = self
            .local("add")
            .arg("cid-version", "1")
            .arg("raw-leaves", "true")
            .arg("chunker", format!("size-{CHUNK_SIZE}"))
            .arg("hash", "sha2-256")
            .arg("trickle", "false")
            .arg("pin", flag(pin))
            .arg("progress", "false")
            .arg("quieter", "true")
            .body(ReqBody::Stream(data));
        let mut root = None;
        let idle = self.cfg().idletimeout;
        self.rpc
            .json_lines(call, idle, |ev: AddEvent| {
                if let Some(h) = ev.hash {
                    root = Some(h);
                }
                Ok(())
            })
            .await?;
        let root = root.ok_or_else(|| IpfsError::Other("add answered no CID".into()))?;
        Ok(super::to_v1(&parse_cid(&root)?))
    }

    async fn cat(&self, cid: &Cid, offset: u64, length: Option<u64>) -> Result<ByteStream> {
        let mut call = self
            .network("cat", self.cfg().networktimeout)
            .arg("arg", cid_v1_string(cid))
            .arg("offset", offset.to_string())
            .idempotent();
        if let Some(n) = length {
            call = call.arg("length", n.to_string());
        }
        let resp = self.rpc.send(call).await?;
        Ok(body_stream(resp, self.cfg().idletimeout))
    }

    async fn block_get(&self, cid: &Cid, timeout: Option<Duration>) -> Result<Bytes> {
        let timeout = timeout.unwrap_or(self.cfg().networktimeout);
        let call = self
            .network("block/get", timeout)
            .arg("arg", cid_v1_string(cid))
            .idempotent();
        let resp = self.rpc.send(call).await?;
        let data = collect(body_stream(resp, timeout + GRACE), MAX_BLOCK).await?;
        block::verify(cid, &data)
            .map_err(|e| IpfsError::Other(format!("block {cid} from {}: {e}", self.url())))?;
        Ok(data)
    }

    async fn block_put(&self, data: Bytes, codec: u64) -> Result<Cid> {
        let name = codec_name(codec)
            .ok_or_else(|| IpfsError::Invalid(format!("unsupported codec {codec:#x}")))?;
        let want = block::cid_v1(codec, &data);
        let call = self
            .local("block/put")
            .arg("format", name)
            .arg("mhtype", "sha2-256")
            .arg("mhlen", "32")
            .body(ReqBody::Bytes(data))
            .idempotent();
        let got = parse_cid(&self.rpc.json::<BlockResp>(call).await?.key)?;
        if got.hash() != want.hash() {
            return Err(IpfsError::Other(format!(
                "block/put on {} answered {got}, expected {want}",
                self.url()
            )));
        }
        Ok(want)
    }

    async fn block_stat(&self, cid: &Cid) -> Result<u64> {
        let call = self
            .network("block/stat", self.cfg().networktimeout)
            .arg("arg", cid_v1_string(cid))
            .idempotent();
        Ok(self.rpc.json::<BlockResp>(call).await?.size)
    }

    async fn pin_add(&self, cid: &Cid, recursive: bool) -> Result<()> {
        let call = self
            .network("pin/add", self.cfg().networktimeout)
            .arg("arg", cid_v1_string(cid))
            .arg("recursive", flag(recursive))
            .idempotent();
        self.rpc.unit(call).await
    }

    async fn pin_rm(&self, cid: &Cid) -> Result<()> {
        let call = self
            .local("pin/rm")
            .arg("arg", cid_v1_string(cid))
            .arg("recursive", "true");
        self.rpc.unit(call).await
    }

    async fn swarm_connect(&self, addr: &str) -> Result<()> {
        let call = self
            .network("swarm/connect", self.cfg().networktimeout)
            .arg("arg", addr)
            .idempotent();
        self.rpc.unit(call).await
    }

    async fn id(&self) -> Result<NodeIdentity> {
        let call = self.local("id").idempotent();
        let id: IdResp = self.rpc.json(call).await?;
        Ok(NodeIdentity {
            peer_id: id.id,
            addresses: id.addresses.unwrap_or_default(),
            agent: id.agent.unwrap_or_default(),
        })
    }
}
