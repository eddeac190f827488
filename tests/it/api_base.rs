//! `GET /v2/`: the API base endpoint (OCI Distribution v1.1, end-1).

use crate::support::oci::Client;
use crate::support::registry::Registry;

#[tokio::test]
async fn base_endpoint_answers_200_with_api_version_header() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let r = c.get("/v2/").await;
    r.expect(200);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    let r = c.head("/v2/").await;
    r.expect(200);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    c.get("/v2/repo/nonsense").await.expect(404);
    c.get("/v2/repo/blobs/").await.expect(404);
    c.get("/nothing-here").await.expect(404);
}
