//! disco's own endpoints beside `/v2/`:
//!
//! - `GET /disco/v1/images/<digest>` (`sha256:<hex>` or bare hex) →
//!   `{"digest":"sha256:<hex>","cid":"<cid>","blobs":[{"digest","cid"},...]}`
//!   for an image published or cloned here; 404 `MANIFEST_UNKNOWN` (OCI
//!   error JSON) otherwise.
//! - `GET /disco/v1/node` → `{"peerId","addresses":[...],"agent"}`: the
//!   IPFS node's identity, for peering other nodes with it; with the
//!   embedded node also `"bootstrap"`: `{"state","configured","connected",
//!   "peers","routingTable","attempts","nextRetryMs","lastError",
//!   "refreshes","lastRefresh"}`.
//! - `GET /disco/v1/peers` → `[{"peer","addr"},...]`: the peers the
//!   embedded node is connected to (`[]` when it is offline); `UNSUPPORTED`
//!   with a Kubo backend (ask Kubo: `ipfs swarm peers`).
//! - `POST /disco/v1/gc` → runs a block garbage collection of the embedded
//!   node now (one at a time) and answers `{"marked","removed","freedBytes",
//!   "durationMs"}`; with `registry=true` (query or JSON body, plus
//!   `deleteUntagged`, `dryRun`) a registry collection
//!   ([`crate::registry::gc`]) followed by the block collection, answering
//!   its report. `disco gc [--registry]` calls it. Admin-only.

use axum::Router;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::Disco;
use super::json::{DiscoJson, parse_digest_text};
use super::layout::DISCO_JSON;
use super::links::recorded_cids;
use crate::http::error::ApiError;
use crate::ipfs::embedded::GcStats;
use crate::ipfs::{NodeIdentity, cid_v1_string};
use crate::registry::gc::{Collector, GcRequest};
use crate::registry::{Digest, ErrorCode, RegistryError, paths};

/// The `/disco/v1` routes.
pub fn routes(disco: Disco) -> Router {
    Router::new()
        .route("/disco/v1/images/{digest}", get(image))
        .route("/disco/v1/node", get(node))
        .route("/disco/v1/peers", get(peers))
        .with_state(disco)
}

/// The `/disco/v1/gc` route.
pub fn gc_routes(collector: Arc<Collector>) -> Router {
    Router::new()
        .route("/disco/v1/gc", post(gc))
        .with_state(collector)
}

/// The JSON form of a node identity (`/disco/v1/node`, `disco id --json`).
pub fn identity_json(id: &NodeIdentity) -> serde_json::Value {
    json!({
        "peerId": id.peer_id,
        "addresses": id.addresses,
        "agent": id.agent,
    })
}

/// The JSON form of a collection's statistics (`/disco/v1/gc`, `disco gc`).
pub fn gc_stats_json(s: &GcStats) -> serde_json::Value {
    json!({
        "marked": s.marked,
        "removed": s.removed,
        "freedBytes": s.freed_bytes,
        "durationMs": s.duration.as_millis() as u64,
    })
}

/// What `POST /disco/v1/gc` is asked, in the query or a JSON body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GcParams {
    /// Collect registry content (then blocks), not only blocks.
    registry: bool,
    /// Delete untagged manifests too.
    #[serde(alias = "delete-untagged", alias = "delete_untagged")]
    delete_untagged: bool,
    /// Report only.
    #[serde(alias = "dry-run", alias = "dry_run")]
    dry_run: bool,
}

async fn gc(
    State(collector): State<Arc<Collector>>,
    Query(query): Query<GcParams>,
    body: axum::body::Bytes,
) -> Response {
    let body: GcParams = if body.iter().all(u8::is_ascii_whitespace) {
        GcParams::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => {
                return ApiError(RegistryError::new(
                    ErrorCode::Unsupported,
                    format!(
                        "invalid garbage collection request body (JSON with registry, deleteUntagged, dryRun): {e}"
                    ),
                )
                .with_status(400))
                .into_response();
            }
        }
    };
    let registry = query.registry || body.registry;
    let req = GcRequest {
        delete_untagged: query.delete_untagged || body.delete_untagged,
        dry_run: query.dry_run || body.dry_run,
    };
    if !registry && (req.delete_untagged || req.dry_run) {
        return ApiError(
            RegistryError::new(
                ErrorCode::Unsupported,
                "deleteUntagged and dryRun apply to a registry collection: add registry=true",
            )
            .with_status(400),
        )
        .into_response();
    }
    let result = if registry {
        collector.run(req).await.map(|r| r.to_json())
    } else {
        collector.collect_blocks().await
    };
    match result {
        Ok(v) => json_response(v),
        Err(e) => ApiError(e.response()).into_response(),
    }
}

fn json_response(value: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

impl Disco {
    /// The CID and blob list of the image `digest`, if it was published or
    /// cloned here.
    pub async fn image_info(
        &self,
        digest: &Digest,
    ) -> Result<Option<(String, DiscoJson)>, RegistryError> {
        let driver = &self.inner.driver;
        let cids = recorded_cids(driver, digest)
            .await
            .map_err(|e| e.publish_response())?;
        for cid in cids {
            let text = cid_v1_string(&cid);
            let path = format!("{}/{text}/{DISCO_JSON}", paths::REPOSITORIES);
            match driver.get_content(&path).await {
                Ok(bytes) => {
                    let list = DiscoJson::parse(&bytes)
                        .map_err(|e| RegistryError::internal(format!("{path}: {e}")))?;
                    return Ok(Some((text, list)));
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }
}

async fn image(State(disco): State<Disco>, Path(digest): Path<String>) -> Response {
    let Some(d) = parse_digest_text(&digest) else {
        return ApiError(RegistryError::digest_invalid(format!(
            "invalid digest {digest:?}: use sha256:<hex>, sha512:<hex> or the hex alone"
        )))
        .into_response();
    };
    match disco.image_info(&d).await {
        Ok(Some((cid, list))) => {
            let blobs: serde_json::Value =
                serde_json::from_slice::<serde_json::Value>(&list.to_bytes())
                    .ok()
                    .and_then(|mut v| v.get_mut("blobs").map(serde_json::Value::take))
                    .unwrap_or_else(|| json!([]));
            json_response(json!({ "digest": d.to_string(), "cid": cid, "blobs": blobs }))
        }
        Ok(None) => ApiError(
            RegistryError::new(
                ErrorCode::ManifestUnknown,
                format!("no image with digest {d} has been published or cloned here"),
            )
            .with_detail(json!({ "digest": d.to_string() })),
        )
        .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

async fn node(State(disco): State<Disco>) -> Response {
    match disco.node().await {
        Ok(id) => {
            let mut v = identity_json(&id);
            if let Some(net) = &disco.inner.network {
                v["bootstrap"] = serde_json::to_value(net.bootstrap_status()).unwrap_or_default();
            }
            json_response(v)
        }
        Err(e) => ApiError(RegistryError::new(
            ErrorCode::Unavailable,
            format!("the IPFS node cannot be reached: {e}"),
        ))
        .into_response(),
    }
}

async fn peers(State(disco): State<Disco>) -> Response {
    let Some(net) = &disco.inner.network else {
        let embedded = disco.ipfs().is_ok_and(|i| i.name() == "embedded");
        if embedded {
            return json_response(json!([]));
        }
        return ApiError(RegistryError::unsupported(
            "peers are listed for the embedded IPFS node only; ask the Kubo nodes (ipfs swarm peers)",
        ))
        .into_response();
    };
    let list: Vec<serde_json::Value> = net
        .connected_peers()
        .into_iter()
        .map(|(peer, addr)| {
            let (bare, _) = crate::ipfs::embedded::net::swarm::split_peer(&addr);
            json!({ "peer": peer.to_string(), "addr": bare.to_string() })
        })
        .collect();
    json_response(serde_json::Value::Array(list))
}
