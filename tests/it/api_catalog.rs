//! `GET /v2/_catalog` with `n`/`last` paging and `Link` headers.

use crate::support::oci::{Client, Resp, link_next, strings};
use crate::support::registry::Registry;

fn page(r: &Resp) -> (Vec<String>, Option<String>) {
    r.expect(200);
    assert!(r.header("content-type").starts_with("application/json"));
    let link = r.headers.get("link").map(|l| {
        let l = l.to_str().expect("ascii Link");
        link_next(l).unwrap_or_else(|| panic!("Link without rel=\"next\": {l}"))
    });
    (strings(&r.json()["repositories"]), link)
}

#[tokio::test]
async fn empty_registry_has_an_empty_catalog() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (repos, link) = page(&c.get("/v2/_catalog").await);
    assert!(repos.is_empty());
    assert!(link.is_none());
}

#[tokio::test]
async fn catalog_lists_repositories_in_order_with_paging() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let names = ["zeta", "cat/b", "alpha", "cat/c/d", "cat/a"];
    for (i, n) in names.iter().enumerate() {
        c.push_image(n, Some("v1"), i as u64).await;
    }
    let all = ["alpha", "cat/a", "cat/b", "cat/c/d", "zeta"];
    let (repos, link) = page(&c.get("/v2/_catalog").await);
    assert_eq!(repos, all);
    assert!(link.is_none());

    let (repos, link) = page(&c.get("/v2/_catalog?n=2").await);
    assert_eq!(repos, ["alpha", "cat/a"]);
    let link = link.expect("Link on a partial page");
    assert_eq!(c.url(&link).path(), "/v2/_catalog");
    let (repos, link) = page(&c.get(&link).await);
    assert_eq!(repos, ["cat/b", "cat/c/d"]);
    let (repos, link) = page(&c.get(&link.expect("second Link")).await);
    assert_eq!(repos, ["zeta"]);
    assert!(link.is_none());

    let (repos, _) = page(&c.get("/v2/_catalog?last=cat/b").await);
    assert_eq!(repos, ["cat/c/d", "zeta"]);
    let (repos, _) = page(&c.get("/v2/_catalog?n=1&last=cat/a").await);
    assert_eq!(repos, ["cat/b"]);
    let (repos, link) = page(&c.get("/v2/_catalog?n=100").await);
    assert_eq!(repos, all);
    assert!(link.is_none());
}
