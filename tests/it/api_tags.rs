//! `GET /v2/<name>/tags/list` with `n`/`last` paging and `Link` headers
//! (OCI Distribution v1.1 end-8a, end-8b).
//!
//! Where CNCF Distribution 2.8 differs from the spec or disco's issue, the
//! test asserts the spec/issue and is skipped with
//! `DISCO_IT_REGISTRY=distribution`:
//! - tags in lexical order: Distribution 2.8 lists them in storage order
//!   (compared as a set for it only).
//! - `n`, `last` and `Link` on tags/list: Distribution 2.8 ignores them.

use crate::support::oci::{Client, OCI_MANIFEST, Resp, link_next, skip_on_distribution, strings};
use crate::support::registry::Kind;
use crate::support::registry::Registry;

async fn tagged(tags: &[&str]) -> (Registry, Client) {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (_, m) = c.push_image("t/repo", None, 1).await;
    for t in tags {
        c.push_manifest("t/repo", t, OCI_MANIFEST, &m).await;
    }
    (reg, c)
}

fn page(r: &Resp) -> (Vec<String>, Option<String>) {
    r.expect(200);
    let v = r.json();
    assert_eq!(v["name"], "t/repo");
    let link = r.headers.get("link").map(|l| {
        let l = l.to_str().expect("ascii Link");
        link_next(l).unwrap_or_else(|| panic!("Link without rel=\"next\": {l}"))
    });
    (strings(&v["tags"]), link)
}

#[tokio::test]
async fn tags_are_listed_in_lexical_order() {
    let (reg, c) = tagged(&["b", "latest", "a", "1.0", "A", "c", "v1.2.3-rc_1"]).await;
    let r = c.get("/v2/t/repo/tags/list").await;
    assert!(
        r.header("content-type").starts_with("application/json"),
        "{}",
        r.header("content-type")
    );
    let (mut tags, link) = page(&r);
    if reg.kind == Kind::Distribution {
        tags.sort();
    }
    assert_eq!(tags, ["1.0", "A", "a", "b", "c", "latest", "v1.2.3-rc_1"]);
    assert!(link.is_none());
}

#[tokio::test]
async fn n_limits_and_link_leads_to_the_next_page() {
    let (reg, c) = tagged(&["e", "d", "c", "b", "a"]).await;
    if skip_on_distribution(&reg, "no tag paging") {
        return;
    }
    let (tags, link) = page(&c.get("/v2/t/repo/tags/list?n=2").await);
    assert_eq!(tags, ["a", "b"]);
    let link = link.expect("Link header on a partial page");
    let url = c.url(&link);
    assert_eq!(url.path(), "/v2/t/repo/tags/list");
    let q: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert!(q.contains(&("n".into(), "2".into())), "Link {link}");
    assert!(q.contains(&("last".into(), "b".into())), "Link {link}");
    let (tags, link) = page(&c.get(&link).await);
    assert_eq!(tags, ["c", "d"]);
    let (tags, link) = page(&c.get(&link.expect("second Link")).await);
    assert_eq!(tags, ["e"]);
    assert!(link.is_none(), "Link on the last page: {link:?}");
}

#[tokio::test]
async fn last_is_strictly_after() {
    let (reg, c) = tagged(&["a", "b", "c", "d", "e"]).await;
    if skip_on_distribution(&reg, "no tag paging") {
        return;
    }
    for (query, want) in [
        ("last=b", vec!["c", "d", "e"]),
        ("last=bb", vec!["c", "d", "e"]),
        ("last=0", vec!["a", "b", "c", "d", "e"]),
        ("n=2&last=a", vec!["b", "c"]),
        ("last=e", vec![]),
        ("last=z", vec![]),
    ] {
        let (tags, _) = page(&c.get(&format!("/v2/t/repo/tags/list?{query}")).await);
        assert_eq!(tags, want, "{query}");
    }
}

#[tokio::test]
async fn n_larger_than_the_list_returns_everything_without_link() {
    let (reg, c) = tagged(&["a", "b", "c"]).await;
    if skip_on_distribution(&reg, "no tag paging") {
        return;
    }
    let (tags, link) = page(&c.get("/v2/t/repo/tags/list?n=10").await);
    assert_eq!(tags, ["a", "b", "c"]);
    assert!(link.is_none());
}

#[tokio::test]
async fn tags_of_an_unknown_repository_are_404_name_unknown() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    c.get("/v2/t/never/tags/list")
        .await
        .expect_error(404, "NAME_UNKNOWN");
    c.get("/v2/t/never/tags/list?n=5")
        .await
        .expect_error(404, "NAME_UNKNOWN");
}

#[tokio::test]
async fn paging_through_many_tags_visits_each_once() {
    let names: Vec<String> = (0..60).map(|i| format!("t{}-{}", i % 7, i)).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (reg, c) = tagged(&refs).await;
    if skip_on_distribution(&reg, "no tag paging") {
        return;
    }
    let mut want = names.clone();
    want.sort();
    for n in [1, 7, 59, 60] {
        let mut got = Vec::new();
        let mut next = Some(format!("/v2/t/repo/tags/list?n={n}"));
        let mut pages = 0;
        while let Some(url) = next {
            let (tags, link) = page(&c.get(&url).await);
            assert!(tags.len() <= n);
            got.extend(tags);
            next = link;
            pages += 1;
            assert!(pages <= 61, "paging does not end");
        }
        assert_eq!(got, want, "n={n}");
    }
}
