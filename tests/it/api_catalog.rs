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

/// Follows `Link` headers from `first` and returns every page's entries.
async fn all_pages(c: &Client, first: &str, key: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next {
        let r = c.get(&url).await;
        r.expect(200);
        pages.push(strings(&r.json()[key]));
        next = r
            .headers
            .get("link")
            .and_then(|l| link_next(l.to_str().unwrap_or("")));
        assert!(pages.len() <= 100, "paging does not end");
    }
    pages
}

#[tokio::test]
async fn paging_visits_every_repository_once_with_tricky_names() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    // Separators sort before and after '/': a plain directory walk and a
    // lexical sort disagree on these.
    let names = [
        "a", "a-b", "a.b", "a/b", "a/b/c", "a_b", "ab", "a0", "a/b-c", "a/b.c",
    ];
    for (i, n) in names.iter().enumerate() {
        c.push_image(n, Some("v1"), 300 + i as u64).await;
    }
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    let (all, _) = page(&c.get("/v2/_catalog").await);
    if reg.kind == crate::support::registry::Kind::Distribution {
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, want);
    } else {
        assert_eq!(all, want, "catalog not in lexical order");
    }
    for n in [1, 2, 3, 4] {
        let pages = all_pages(&c, &format!("/v2/_catalog?n={n}"), "repositories").await;
        for p in &pages {
            assert!(p.len() <= n, "page larger than n={n}: {p:?}");
        }
        let flat: Vec<String> = pages.concat();
        assert_eq!(flat, all, "paging with n={n} differs from the full listing");
    }
}
