//! Delegated routing client (`storage.ipfs.embedded.routers`): each
//! provider search of bitswap also asks these IPFS HTTP Routing V1
//! endpoints (`GET <url>/routing/v1/providers/<cid>`, NDJSON or JSON), so a
//! site can point its nodes at one or two routing discos and resolve a CID
//! in one request. Providers are dialled (their addresses from the answer,
//! else from `GET <url>/routing/v1/peers/<id>`) and handed to bitswap as
//! holders.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::NetError;
use super::swarm::Command;

/// Time allowed for one router request.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Most providers taken from one answer.
const MAX_PROVIDERS: usize = 100;
/// Largest answer read.
const MAX_BODY: usize = 1 << 20;

/// The configured routers.
pub struct Routers {
    /// Base URL and the Basic `Authorization` value of its userinfo.
    urls: Vec<Router>,
    http: reqwest::Client,
    local: PeerId,
}

/// A router's base URL and the Basic `Authorization` of its userinfo.
type Router = (String, Option<String>);

/// `%XX`-decodes URL userinfo.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One provider from an answer: its id and addresses.
pub type Found = (PeerId, Vec<Multiaddr>);

impl Routers {
    /// Routers at `urls` (`http(s)://host[:port][/prefix]`); a URL that
    /// does not parse is refused.
    pub fn new(urls: &[String], local: PeerId) -> Result<Self, NetError> {
        let mut out = Vec::new();
        for u in urls {
            let parsed = reqwest::Url::parse(u)
                .map_err(|e| NetError::Config(format!("routers: {u:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(NetError::Config(format!(
                    "routers: {u:?}: only http and https URLs"
                )));
            }
            // Credentials for a router with access control ride in the
            // URL's userinfo; they are sent as Basic auth, never logged.
            let auth = (!parsed.username().is_empty()).then(|| {
                use base64::Engine as _;
                let user = percent_decode(parsed.username());
                let pass = percent_decode(parsed.password().unwrap_or(""));
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
                )
            });
            let mut bare = parsed.clone();
            let _ = bare.set_username("");
            let _ = bare.set_password(None);
            out.push((bare.as_str().trim_end_matches('/').to_string(), auth));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| NetError::Config(format!("routers: {e}")))?;
        Ok(Routers {
            urls: out,
            http,
            local,
        })
    }

    /// Asks every router for providers of `key` (a multihash) in the
    /// background; each provider reached is sent on `found`.
    pub(crate) fn lookup(
        self: &Arc<Self>,
        key: Vec<u8>,
        cmds: mpsc::Sender<Command>,
        found: mpsc::Sender<PeerId>,
    ) {
        let Ok(mh) = multihash::Multihash::<64>::from_bytes(&key) else {
            return;
        };
        let cid = cid::Cid::new_v1(crate::ipfs::RAW, mh);
        let this = self.clone();
        tokio::spawn(async move {
            let jobs = this.urls.iter().map(|u| {
                let this = this.clone();
                let cmds = cmds.clone();
                let found = found.clone();
                let router = u.clone();
                async move {
                    let list = match this.providers(&router, &cid).await {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::debug!(router = %router.0, %cid, error = %e, "delegated routing failed");
                            return;
                        }
                    };
                    for (peer, mut addrs) in list {
                        if peer == this.local {
                            continue;
                        }
                        if addrs.is_empty() {
                            addrs = this.peer(&router, &peer).await.unwrap_or_default();
                        }
                        if dial(&cmds, peer, &addrs).await {
                            let _ = found.try_send(peer);
                        }
                    }
                }
            });
            futures::future::join_all(jobs).await;
        });
    }

    /// `GET <url>/routing/v1/providers/<cid>`.
    async fn providers(&self, router: &Router, cid: &cid::Cid) -> Result<Vec<Found>, String> {
        let v1 = crate::ipfs::cid_v1_string(cid);
        let u = format!("{}/routing/v1/providers/{v1}", router.0);
        let body = self.get(&u, router.1.as_deref()).await?;
        Ok(parse_records(&body, "Providers"))
    }

    /// `GET <url>/routing/v1/peers/<id>`: the peer's addresses.
    async fn peer(&self, router: &Router, peer: &PeerId) -> Result<Vec<Multiaddr>, String> {
        let u = format!("{}/routing/v1/peers/{peer}", router.0);
        let body = self.get(&u, router.1.as_deref()).await?;
        Ok(parse_records(&body, "Peers")
            .into_iter()
            .filter(|(p, _)| p == peer)
            .flat_map(|(_, a)| a)
            .collect())
    }

    async fn get(&self, url: &str, authorization: Option<&str>) -> Result<String, String> {
        let mut req = self.http.get(url);
        if let Some(a) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        let resp = req
            .header(
                reqwest::header::ACCEPT,
                "application/x-ndjson, application/json;q=0.8",
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(String::new());
        }
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        let mut body = Vec::new();
        let mut s = resp.bytes_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if body.len() + chunk.len() > MAX_BODY {
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Dials `peer` at the first address that answers.
async fn dial(cmds: &mpsc::Sender<Command>, peer: PeerId, addrs: &[Multiaddr]) -> bool {
    for a in addrs {
        let (tx, rx) = oneshot::channel();
        let addr = a.clone().with(Protocol::P2p(peer));
        if cmds.send(Command::Dial { addr, reply: tx }).await.is_err() {
            return false;
        }
        if matches!(rx.await, Ok(Ok(_))) {
            return true;
        }
    }
    false
}

/// A peer id as the routing API writes it: base58 multihash or CIDv1
/// with the libp2p-key codec.
pub fn parse_peer_id(s: &str) -> Option<PeerId> {
    if let Ok(p) = PeerId::from_str(s) {
        return Some(p);
    }
    let cid = cid::Cid::try_from(s).ok()?;
    if cid.codec() != LIBP2P_KEY {
        return None;
    }
    PeerId::from_multihash(*cid.hash()).ok()
}

/// The multicodec of a libp2p public key (peer ids as CIDs).
pub const LIBP2P_KEY: u64 = 0x72;

/// The `peer` records of an answer: a JSON object with a `field` list, or
/// NDJSON (one record a line). Unknown schemas and bad records are
/// skipped.
pub fn parse_records(body: &str, field: &str) -> Vec<Found> {
    let whole = serde_json::from_str::<Value>(body.trim())
        .ok()
        .and_then(|mut v| v.get_mut(field).map(Value::take));
    let records: Vec<Value> = match whole {
        Some(Value::Array(a)) => a,
        Some(_) => Vec::new(),
        None => body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    };
    records
        .into_iter()
        .filter(|r| r.get("Schema").and_then(Value::as_str) == Some("peer"))
        .filter_map(|r| {
            let id = parse_peer_id(r.get("ID")?.as_str()?)?;
            let addrs = r
                .get("Addrs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str()?.parse::<Multiaddr>().ok())
                        .collect()
                })
                .unwrap_or_default();
            Some((id, addrs))
        })
        .take(MAX_PROVIDERS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_becomes_basic_auth() {
        let r = Routers::new(
            &[
                "http://site%2Dbot:p%40ss@127.0.0.1:1970/".into(),
                "https://r.example/prefix".into(),
            ],
            PeerId::random(),
        )
        .unwrap();
        assert_eq!(r.urls[0].0, "http://127.0.0.1:1970");
        use base64::Engine as _;
        let want = base64::engine::general_purpose::STANDARD.encode("site-bot:p@ss");
        assert_eq!(
            r.urls[0].1.as_deref(),
            Some(format!("Basic {want}").as_str())
        );
        assert_eq!(r.urls[1], ("https://r.example/prefix".into(), None));
        assert!(Routers::new(&["ftp://x".into()], PeerId::random()).is_err());
    }

    #[test]
    fn parses_json_and_ndjson_answers() {
        let p = PeerId::random();
        let json = format!(
            r#"{{"Providers":[{{"Schema":"peer","ID":"{p}","Addrs":["/ip4/127.0.0.1/tcp/4001"],"Protocols":["transport-bitswap"]}},{{"Schema":"bitswap","ID":"{p}"}}]}}"#
        );
        let got = parse_records(&json, "Providers");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, p);
        assert_eq!(got[0].1[0].to_string(), "/ip4/127.0.0.1/tcp/4001");
        // NDJSON, the id as a libp2p-key CID, no addresses.
        let as_cid = cid::Cid::new_v1(LIBP2P_KEY, *p.as_ref());
        let nd = format!(
            "{{\"Schema\":\"peer\",\"ID\":\"{as_cid}\"}}\n{{\"Schema\":\"peer\",\"ID\":\"junk\"}}\n"
        );
        let got = parse_records(&nd, "Providers");
        assert_eq!(got, vec![(p, Vec::new())]);
        assert!(parse_records("", "Providers").is_empty());
        assert!(Routers::new(&["ftp://x".into()], p).is_err());
        assert!(Routers::new(&["http://127.0.0.1:1970/".into()], p).is_ok());
    }
}
