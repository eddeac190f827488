//! The IPFS HTTP Routing V1 API (delegated routing), served from the
//! embedded node's DHT and its own store:
//!
//! - `GET /routing/v1/providers/{cid}` → `{"Providers":[peer records]}`
//!   (at most 100, after the DHT lookup ends or 10 s), or with
//!   `Accept: application/x-ndjson` one record a line as providers are
//!   found (at most 1000, 30 s). This node comes first when its store
//!   holds the block, then the records of its DHT store, then those a
//!   lookup finds.
//! - `GET /routing/v1/peers/{peer-id}` → `{"Peers":[peer record]}` (or
//!   NDJSON): the addresses known for the peer, else found by a DHT
//!   lookup.
//!
//! Peer records use the `peer` schema: `{"Schema":"peer","ID":"<base58>",
//! "Addrs":[...],"Protocols":["transport-bitswap"]}`. Nothing found is an
//! empty list with 200 (as IPIP-513 has it; clients treat 404 the same);
//! an unparseable CID or peer id is 400. CORS is open (`*`), as the spec
//! asks. The `PUT` and IPNS endpoints are not served (501).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cid::Cid;
use futures::StreamExt;
use libp2p::{Multiaddr, PeerId};
use serde_json::{Value, json};

use crate::ipfs::embedded::net::Network;
use crate::ipfs::embedded::net::routers::parse_peer_id;

/// Records in a JSON answer, at most.
const JSON_LIMIT: usize = 100;
/// Records in an NDJSON answer, at most.
const NDJSON_LIMIT: usize = 1000;
/// How long a JSON answer waits for the lookup.
const JSON_WAIT: Duration = Duration::from_secs(10);
/// How long an NDJSON answer streams.
const NDJSON_WAIT: Duration = Duration::from_secs(30);
/// The NDJSON media type.
const NDJSON: &str = "application/x-ndjson";

/// The routes, over the embedded node's networking.
pub fn routes(net: Network) -> Router {
    Router::new()
        .route(
            "/routing/v1/providers/{cid}",
            get(providers).options(preflight),
        )
        .route("/routing/v1/peers/{peer}", get(peers).options(preflight))
        .route(
            "/routing/v1/{*rest}",
            get(not_implemented).put(not_implemented).options(preflight),
        )
        .with_state(net)
}

fn wants_ndjson(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(NDJSON))
}

fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

async fn preflight() -> Response {
    let mut r = cors(StatusCode::NO_CONTENT.into_response());
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Accept, Content-Type"),
    );
    r
}

async fn not_implemented() -> Response {
    cors(
        (
            StatusCode::NOT_IMPLEMENTED,
            "disco serves GET /routing/v1/providers/{cid} and /routing/v1/peers/{peer-id} only\n",
        )
            .into_response(),
    )
}

fn bad_request(msg: String) -> Response {
    cors((StatusCode::BAD_REQUEST, msg + "\n").into_response())
}

/// A `peer` schema record.
pub fn peer_record(peer: &PeerId, addrs: &[Multiaddr]) -> Value {
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    json!({
        "Schema": "peer",
        "ID": peer.to_string(),
        "Addrs": addrs,
        "Protocols": ["transport-bitswap"],
    })
}

fn json_answer(field: &str, records: Vec<Value>) -> Response {
    let body = json!({ field: records }).to_string();
    cors(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn ndjson_answer(records: Vec<Value>) -> Response {
    let mut body = String::new();
    for r in records {
        body.push_str(&r.to_string());
        body.push('\n');
    }
    cors(([(header::CONTENT_TYPE, NDJSON)], body).into_response())
}

fn own_addresses(net: &Network) -> Vec<Multiaddr> {
    net.addresses()
        .iter()
        .map(|a| crate::ipfs::embedded::net::swarm::split_peer(a).0)
        .collect()
}

async fn providers(
    State(net): State<Network>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(cid) = Cid::try_from(cid.as_str()) else {
        return bad_request(format!("invalid CID {cid:?}"));
    };
    let me = net.peer_id();
    let own = net
        .has_block(&cid)
        .await
        .then(|| peer_record(&me, &own_addresses(&net)));
    let rx = match net.find_providers(&cid, 128).await {
        Ok(rx) => rx,
        Err(e) => {
            return cors((StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response());
        }
    };
    let mut seen = std::collections::HashSet::new();
    if own.is_some() {
        seen.insert(me);
    }
    let found =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
            .filter_map(move |(p, a): (PeerId, Vec<Multiaddr>)| {
                let fresh = seen.insert(p);
                async move { fresh.then(|| peer_record(&p, &a)) }
            });
    let records = futures::stream::iter(own).chain(found);
    if wants_ndjson(&headers) {
        let lines = records
            .take(NDJSON_LIMIT)
            .take_until(tokio::time::sleep(NDJSON_WAIT))
            .map(|r| Ok::<_, std::convert::Infallible>(format!("{r}\n")));
        return cors(([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(lines)).into_response());
    }
    let list: Vec<Value> = records
        .take(JSON_LIMIT)
        .take_until(tokio::time::sleep(JSON_WAIT))
        .collect()
        .await;
    json_answer("Providers", list)
}

async fn peers(
    State(net): State<Network>,
    Path(peer): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(peer) = parse_peer_id(&peer) else {
        return bad_request(format!("invalid peer id {peer:?}"));
    };
    let addrs = match tokio::time::timeout(JSON_WAIT, net.find_peer(peer)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            return cors((StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response());
        }
        Err(_) => Vec::new(),
    };
    let records = if addrs.is_empty() {
        Vec::new()
    } else {
        vec![peer_record(&peer, &addrs)]
    };
    if wants_ndjson(&headers) {
        ndjson_answer(records)
    } else {
        json_answer("Peers", records)
    }
}
