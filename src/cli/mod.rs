//! The node commands of the `disco` binary: `disco id`, `disco peers` and
//! `disco gc`. Each reads the same configuration as `disco serve`
//! (`--config`, `REGISTRY_*`) and returns the text to print.
//!
//! - `id` reads the embedded node's identity key from its data directory
//!   (no store is opened, no networking started); the addresses are the
//!   live ones of a disco running on that node if one answers, else the
//!   configured `announce` (or `listen`) addresses.
//! - `peers` asks a running disco (`GET /disco/v1/peers`).
//! - `gc` asks a running disco (`POST /disco/v1/gc`); when none answers it
//!   opens the store itself, which fails clearly if another process holds
//!   it (the data directory's lock file). `gc --registry` collects registry
//!   content too, in the running disco only.

pub mod credentials;
pub mod network;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, data_dir, parse_listen_addr};
use crate::disco::http::{gc_stats_json, identity_json};
use crate::ipfs::NodeIdentity;
use crate::ipfs::embedded::net::AGENT;
use crate::ipfs::embedded::{EmbeddedIpfs, peer_id_at};
use crate::server::ipfs_config;
use crate::storage::ipfs::IpfsStorageConfig;
use crate::storage::ipfs::backend::embedded_path;

/// A failed command: the message to print.
pub type CliResult = Result<String, String>;

/// The `storage.ipfs` section in effect (the default one when no storage
/// is configured), or why there is no IPFS node.
fn ipfs_section(config: &Config) -> Result<IpfsStorageConfig, String> {
    ipfs_config(config).ok_or_else(|| {
        "the configured storage is not IPFS (storage.filesystem, s3 or inmemory): there is no IPFS node"
            .to_string()
    })
}

/// The base URL of the disco this configuration runs: `url` if given, else
/// `http.addr` with an unspecified host replaced by loopback.
pub fn server_url(config: &Config, url: Option<&str>) -> Result<String, String> {
    if let Some(u) = url {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let addr = parse_listen_addr(&config.http.addr).map_err(|e| format!("http.addr: {e}"))?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if config.http.tls.certificate.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{}", SocketAddr::new(ip, addr.port())))
}

fn client(insecure: bool) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        // The default URL is this machine's own disco, whose certificate
        // rarely names 127.0.0.1.
        .danger_accept_invalid_certs(insecure)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// What a request to a running disco gave.
enum Answer {
    /// No disco listens there (connection refused or unreachable).
    NotRunning(String),
    /// The status and body.
    Reply(reqwest::StatusCode, String),
}

async fn request(req: reqwest::RequestBuilder, url: &str) -> Result<Answer, String> {
    let http = client(false)?;
    match credentials::send(&http, req).await {
        Ok(resp) => {
            let status = resp.status();
            let body = resp
                .text()
                .await
                .map_err(|e| format!("reading the answer of {url}: {e}"))?;
            Ok(Answer::Reply(status, body))
        }
        Err(e) if e.is_connect() => Ok(Answer::NotRunning(e.to_string())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// The error message of a non-2xx answer (OCI error JSON or plain text).
fn failure(url: &str, status: reqwest::StatusCode, body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/errors/0/message")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string());
    format!("{url}: {status}: {msg}")
}

fn parse_json(url: &str, body: &str) -> Result<Value, String> {
    serde_json::from_str(body).map_err(|e| format!("{url}: invalid JSON answer: {e}"))
}

fn format_identity(id: &NodeIdentity, json: bool) -> String {
    if json {
        return identity_json(id).to_string();
    }
    let mut out = format!("peer id: {}\nagent: {}\n", id.peer_id, id.agent);
    for a in &id.addresses {
        out.push_str(&format!("address: {a}\n"));
    }
    out
}

/// `disco id`: the node's peer id and addresses.
pub async fn id(config: &Config, url: Option<&str>, json: bool) -> CliResult {
    let ipfs = ipfs_section(config)?;
    if let Some(router) = &ipfs.router {
        let kubo = crate::storage::ipfs::kubo_backend(router)
            .map_err(|e| format!("storage.ipfs.router: {e}"))?;
        let id = kubo.id().await.map_err(|e| format!("Kubo: {e}"))?;
        return Ok(format_identity(&id, json));
    }
    let dir = embedded_path(&ipfs, &data_dir());
    let peer = peer_id_at(&dir).map_err(|e| e.to_string())?;
    let peer_id = peer.to_base58();
    let base = server_url(config, url)?;
    let live = live_addresses(&base, url.is_none(), &peer_id).await;
    let addresses = match live {
        Some(a) => a,
        None => {
            let net = &ipfs.embedded.net;
            let list = if net.announce.is_empty() {
                &net.listen
            } else {
                &net.announce
            };
            list.iter()
                .map(|a| format!("{}/p2p/{peer_id}", a.trim_end_matches('/')))
                .collect()
        }
    };
    Ok(format_identity(
        &NodeIdentity {
            peer_id,
            addresses,
            agent: AGENT.into(),
        },
        json,
    ))
}

/// The addresses a running disco reports for node `peer_id`, if the disco
/// at `base` answers and is that node.
async fn live_addresses(base: &str, insecure: bool, peer_id: &str) -> Option<Vec<String>> {
    let url = format!("{base}/disco/v1/node");
    let http = client(insecure).ok()?;
    let req = http.get(&url).timeout(Duration::from_secs(10));
    let Ok(Answer::Reply(status, body)) = request(req, &url).await else {
        return None;
    };
    let v: Value = serde_json::from_str(&body)
        .ok()
        .filter(|_| status.is_success())?;
    if v.get("peerId").and_then(Value::as_str) != Some(peer_id) {
        return None;
    }
    Some(
        v.get("addresses")?
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
    )
}

/// `disco peers`: the peers a running disco is connected to, one
/// `<address>/p2p/<peer id>` per line.
pub async fn peers(config: &Config, url: Option<&str>, json: bool) -> CliResult {
    let base = server_url(config, url)?;
    let endpoint = format!("{base}/disco/v1/peers");
    let req = client(url.is_none())?
        .get(&endpoint)
        .timeout(Duration::from_secs(30));
    let (status, body) = match request(req, &endpoint).await? {
        Answer::NotRunning(e) => {
            return Err(format!(
                "no disco answers at {base} ({e}): peers are those of a running disco; start one or pass --url"
            ));
        }
        Answer::Reply(s, b) => (s, b),
    };
    if !status.is_success() {
        return Err(failure(&endpoint, status, &body));
    }
    let v = parse_json(&endpoint, &body)?;
    let list = v
        .as_array()
        .ok_or_else(|| format!("{endpoint}: expected a JSON array"))?;
    if json {
        return Ok(format!("{v}\n"));
    }
    let mut out = String::new();
    for p in list {
        let peer = p.get("peer").and_then(Value::as_str).unwrap_or_default();
        let addr = p.get("addr").and_then(Value::as_str).unwrap_or_default();
        out.push_str(&format!("{addr}/p2p/{peer}\n"));
    }
    let node = format!("{base}/disco/v1/node");
    let req = client(url.is_none())?
        .get(&node)
        .timeout(Duration::from_secs(30));
    if let Ok(Answer::Reply(status, body)) = request(req, &node).await
        && status.is_success()
        && let Ok(v) = serde_json::from_str::<Value>(&body)
        && let Some(b) = v.get("bootstrap")
    {
        out.push_str(&format_bootstrap(b));
    }
    Ok(out)
}

/// The bootstrap state as a comment line after the peers.
fn format_bootstrap(b: &Value) -> String {
    let n = |k: &str| b.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut line = format!(
        "# bootstrap: {} ({}/{} bootstrap peers connected, {} peers, routing table {}, {} dial rounds, {} DHT refreshes)",
        b.get("state").and_then(Value::as_str).unwrap_or("?"),
        n("connected"),
        n("configured"),
        n("peers"),
        n("routingTable"),
        n("attempts"),
        n("refreshes"),
    );
    if let Some(ms) = b.get("nextRetryMs").and_then(Value::as_u64) {
        line.push_str(&format!("; next retry in {:.1} s", ms as f64 / 1000.0));
    }
    if let Some(e) = b.get("lastError").and_then(Value::as_str) {
        line.push_str(&format!("; last error: {e}"));
    }
    line + "\n"
}

fn format_gc(v: &Value, json: bool) -> String {
    if json {
        return format!("{v}\n");
    }
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    format!(
        "blocks removed: {}\nbytes freed: {}\nblocks kept: {}\nduration: {} ms\n",
        n("removed"),
        n("freedBytes"),
        n("marked"),
        n("durationMs")
    )
}

/// `disco gc --registry`: a registry collection by the running disco
/// (`POST /disco/v1/gc?registry=true`), which then collects blocks.
pub async fn gc_registry(
    config: &Config,
    url: Option<&str>,
    req: crate::registry::gc::GcRequest,
    json: bool,
) -> CliResult {
    let base = server_url(config, url)?;
    let endpoint = format!(
        "{base}/disco/v1/gc?registry=true&deleteUntagged={}&dryRun={}",
        req.delete_untagged, req.dry_run
    );
    // No timeout: a collection of a large registry takes a while.
    match request(client(url.is_none())?.post(&endpoint), &endpoint).await? {
        Answer::Reply(status, body) if status.is_success() => {
            let v = parse_json(&endpoint, &body)?;
            if json {
                return Ok(format!("{v}\n"));
            }
            Ok(crate::registry::gc::report::format_text(&v))
        }
        Answer::Reply(status, body) => Err(failure(&endpoint, status, &body)),
        Answer::NotRunning(e) => Err(format!(
            "no disco answers at {base} ({e}): a registry collection runs in the running disco \
             (it never stops pushes and pulls); start one or pass --url"
        )),
    }
}

/// `disco gc`: a garbage collection of the embedded blockstore, by the
/// running disco if one answers (unless `offline`), else in this process.
pub async fn gc(config: &Config, url: Option<&str>, offline: bool, json: bool) -> CliResult {
    let ipfs = ipfs_section(config)?;
    if ipfs.router.is_some() {
        return Err(
            "storage.ipfs.router is set: the blocks are Kubo's; run `ipfs repo gc` on the Kubo nodes"
                .into(),
        );
    }
    let base = server_url(config, url)?;
    if !offline {
        let endpoint = format!("{base}/disco/v1/gc");
        match request(client(url.is_none())?.post(&endpoint), &endpoint).await? {
            Answer::Reply(status, body) if status.is_success() => {
                return Ok(format_gc(&parse_json(&endpoint, &body)?, json));
            }
            Answer::Reply(status, body) => return Err(failure(&endpoint, status, &body)),
            Answer::NotRunning(_) => {}
        }
    }
    if config.storage.maintenance.readonly.enabled {
        return Err(crate::registry::gc::GcError::ReadOnly.to_string());
    }
    let mut store = ipfs.embedded.store.clone();
    store.path = embedded_path(&ipfs, &data_dir());
    store.gc.enabled = false;
    if !store.path.join("blocks").is_dir() {
        return Err(format!(
            "no embedded IPFS store at {} (nothing to collect)",
            store.path.display()
        ));
    }
    let node = match EmbeddedIpfs::open(store).await {
        Ok(n) => n,
        Err(crate::ipfs::IpfsError::Unavailable(e)) => {
            return Err(format!(
                "{e}: a disco runs on it but none answered at {base}; pass that disco's --url"
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let stats = node.gc().await.map_err(|e| e.to_string())?;
    node.shutdown().await.map_err(|e| e.to_string())?;
    Ok(format_gc(&gc_stats_json(&stats), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn server_url_from_http_addr() {
        let c = config("http:\n  addr: \":5000\"\n");
        assert_eq!(server_url(&c, None).unwrap(), "http://127.0.0.1:5000");
        let c = config("http:\n  addr: \"[::]:5000\"\n");
        assert_eq!(server_url(&c, None).unwrap(), "http://[::1]:5000");
        let c = config("http:\n  addr: 10.1.2.3:80\n  tls:\n    certificate: /c\n    key: /k\n");
        assert_eq!(server_url(&c, None).unwrap(), "https://10.1.2.3:80");
        assert_eq!(
            server_url(&c, Some("http://h:1/")).unwrap(),
            "http://h:1",
            "--url wins"
        );
        let c = config("http:\n  addr: nowhere\n");
        assert!(server_url(&c, None).unwrap_err().contains("http.addr"));
    }

    #[test]
    fn non_ipfs_storage_has_no_node() {
        let c = config("storage:\n  inmemory: {}\n");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(id(&c, None, false)).unwrap_err();
        assert!(err.contains("not IPFS"), "{err}");
        let err = rt.block_on(gc(&c, None, true, false)).unwrap_err();
        assert!(err.contains("not IPFS"), "{err}");
    }

    #[test]
    fn gc_output() {
        let v = serde_json::json!({"marked": 3, "removed": 2, "freedBytes": 10, "durationMs": 1});
        assert_eq!(
            format_gc(&v, false),
            "blocks removed: 2\nbytes freed: 10\nblocks kept: 3\nduration: 1 ms\n"
        );
        assert_eq!(format_gc(&v, true).trim(), v.to_string());
    }
}
