//! Pull-through mirror (issue 15): a real CNCF Distribution
//! (`docker-registry`) on loopback is the upstream, behind the recording
//! proxy so the tests count what reached it. disco fetches what clients
//! pull, streams and stores it verified, publishes it by CID, and a second
//! disco on the same IPFS network takes the blobs from the first instead
//! of the upstream. Tags refresh after the TTL; with the upstream down the
//! stored tag is served with a `Warning`, unknown content gets 503; pushes
//! to mirrored names are refused; `?ns=` requests are authorised on the
//! local name.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::auth_support::htpasswd_file;
use crate::disco_cid::{pull_and_compare, push};
use crate::disco_support::{Node, NodeOpts, multi_layer_image, tail};
use crate::support::clients::Clients;
use crate::support::images::{self, OciLayout};
use crate::support::oci_api::Api;
use crate::support::proxy::Proxy;
use crate::support::registry::{Kind, Options, Registry};

/// A Distribution registry (filesystem storage) with extra config.
pub(crate) fn distribution(extra: &str) -> Registry {
    Registry::start_with(Options {
        extra: extra.to_string(),
        kind: Kind::Distribution,
        ..Options::default()
    })
}

/// Blob GETs that reached the upstream, by digest.
pub(crate) fn upstream_blob_gets(proxy: &Proxy) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in proxy.log() {
        if e.method == http::Method::GET
            && e.status == 200
            && let Some((_, d)) = e.path().split_once("/blobs/")
        {
            *out.entry(d.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// The configs and layers of a single-image layout.
pub(crate) fn layer_digests(layout: &OciLayout) -> Vec<String> {
    layout
        .blobs()
        .iter()
        .map(|d| d.digest.clone())
        .filter(|d| *d != layout.root.digest)
        .collect()
}

/// Waits (bounded) until `node` has published image `digest`.
pub(crate) fn wait_published(node: &Node, digest: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = node.api.get(&format!("/disco/v1/images/{digest}"));
        if r.status == 200 {
            return r.json()["cid"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{digest} not published: {}\n{}",
            String::from_utf8_lossy(&r.body),
            node.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[track_caller]
fn assert_error(r: &crate::support::oci_api::Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["errors"][0]["code"],
        code,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn mirror_pull_through_ttl_stale_and_refused_push() {
    let work = tempfile::tempdir().unwrap();
    let img1 = multi_layer_image(&work.path().join("img1"), 151);
    let img2 = multi_layer_image(&work.path().join("img2"), 152);
    let mut upstream = distribution("");
    let proxy = Proxy::start(upstream.addr);
    let node = Node::start(NodeOpts {
        top: format!("proxy:\n  remoteurl: {}\n  ttl: 2s\n", proxy.url()),
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[upstream.host(), node.host()]);
    push(&clients, &img1, &upstream.host(), "team/app", "latest");
    proxy.clear_log();

    // A pull of an image disco never saw: fetched, streamed, stored.
    pull_and_compare(&clients, &node.host(), "team/app", &img1, "first");
    // Then published under digest and CID like a push.
    let cid = wait_published(&node, &img1.root.digest);
    node.api.assert_same_as_layout(&cid, "latest", &img1);
    // Each layer crossed the upstream link once (the client's stream and
    // the background completion share one fetch).
    let gets = upstream_blob_gets(&proxy);
    for d in layer_digests(&img1) {
        assert_eq!(
            gets.get(&d),
            Some(&1),
            "{d}: {gets:?}\n{}",
            proxy.log_text()
        );
    }
    // A second pull is served from storage.
    pull_and_compare(&clients, &node.host(), "team/app", &img1, "again");
    assert_eq!(upstream_blob_gets(&proxy), gets);
    assert!(node.metric("disco_mirror_misses_total") >= 1);
    assert!(node.metric("disco_mirror_hits_total") >= 1);
    assert!(node.metric("disco_mirror_upstream_bytes_total") >= img1.total_size());

    // Pushes and deletes of mirrored names are refused.
    let manifest = img1.read_blob(&img1.root.digest).unwrap();
    let r = node.api.request(
        "PUT",
        "/v2/team/app/manifests/mine",
        &[("Content-Type", images::MT_MANIFEST)],
        manifest,
    );
    assert_error(&r, 405, "UNSUPPORTED");
    let r = node
        .api
        .request("POST", "/v2/team/app/blobs/uploads/", &[], Vec::new());
    assert_error(&r, 405, "UNSUPPORTED");
    let r = node.api.request(
        "DELETE",
        &format!("/v2/team/app/manifests/{}", img1.root.digest),
        &[],
        Vec::new(),
    );
    assert_error(&r, 405, "UNSUPPORTED");
    let refused = clients.skopeo_result(&[
        "copy",
        &img2.reference(),
        &format!("docker://{}/team/other:v1", node.host()),
    ]);
    assert!(!refused.status.success(), "push through a mirror succeeded");

    // The upstream tag moves: seen once the TTL has passed.
    push(&clients, &img2, &upstream.host(), "team/app", "latest");
    std::thread::sleep(Duration::from_millis(2500));
    let r = node.api.manifest("team/app", "latest");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(img2.root.digest.as_str())
    );
    assert!(r.header("warning").is_none());

    // Upstream down: the stored tag is served, marked stale; unknown
    // content is a 503, not a hang.
    upstream.stop();
    std::thread::sleep(Duration::from_millis(2500));
    let r = node.api.manifest("team/app", "latest");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(img2.root.digest.as_str())
    );
    assert!(
        r.header("warning").is_some_and(|w| w.starts_with("110")),
        "{:?}",
        r.headers
    );
    assert!(node.metric("disco_mirror_stale_total") >= 1);
    assert_error(&node.api.manifest("team/app", "nope"), 503, "UNAVAILABLE");
    assert_error(
        &node.api.manifest("other/app", "latest"),
        503,
        "UNAVAILABLE",
    );
    // Stored content still pulls.
    node.api
        .assert_same_as_layout("team/app", &img1.root.digest, &img1);
}

#[test]
fn mirror_two_discos_share_layers_peer_to_peer() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 153);
    let upstream = distribution("");
    let proxy = Proxy::start(upstream.addr);
    let mirror = |default: bool| {
        format!(
            "proxy:\n  upstreams:\n    - name: docker.io\n      url: {}\n      ttl: 1h\n{}",
            proxy.url(),
            if default {
                "  default: docker.io\n"
            } else {
                ""
            }
        )
    };
    // A: Docker's registry-mirrors (plain names); B: containerd's `?ns=`.
    let a = Node::start(NodeOpts {
        top: mirror(true),
        ..NodeOpts::default()
    });
    let b = Node::start(NodeOpts {
        bootstrap: vec![a.peer_addr()],
        top: mirror(false),
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[upstream.host(), a.host(), b.host()]);
    // Docker Hub keeps single-component names under `library/`.
    push(&clients, &img, &upstream.host(), "library/app", "latest");
    proxy.clear_log();

    pull_and_compare(&clients, &a.host(), "app", &img, "a");
    let cid = wait_published(&a, &img.root.digest);

    // B resolves the tag upstream, finds the image on A by its digest and
    // clones it by CID: no blob comes from the upstream again.
    let r = b.api.manifest("library/app", "latest?ns=docker.io");
    assert_eq!(
        r.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&r.body),
        b.log_tail()
    );
    assert_eq!(
        r.header("docker-content-digest"),
        Some(img.root.digest.as_str())
    );
    for d in layer_digests(&img) {
        let got = b
            .api
            .get(&format!("/v2/library/app/blobs/{d}?ns=docker.io"));
        assert_eq!(got.status, 200, "{d}");
        assert_eq!(images::sha256_digest(&got.body), d);
    }
    // Stored under the local name `docker.io/library/app`.
    b.api
        .assert_same_as_layout("docker.io/library/app", "latest", &img);
    b.api.assert_same_as_layout(&cid, "latest", &img);
    let gets = upstream_blob_gets(&proxy);
    for d in layer_digests(&img) {
        assert_eq!(
            gets.get(&d),
            Some(&1),
            "{d}: {gets:?}\n{}",
            proxy.log_text()
        );
    }
    assert_eq!(
        b.metric("disco_mirror_peer_hits_total"),
        1,
        "{}",
        b.log_tail()
    );
    assert!(b.metric("disco_mirror_peer_bytes_total") > 0);
    let manifest_gets = proxy
        .log()
        .iter()
        .filter(|e| e.method == http::Method::GET && e.path().contains("/manifests/"))
        .count();
    // A fetched the manifest once; B only asked for the tag (HEAD).
    assert_eq!(manifest_gets, 1, "{}", proxy.log_text());
}

#[test]
fn mirror_upstream_with_htpasswd_and_ns_access_rules() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 154);
    let secret = "up-Secret-4711";
    for d in ["up", "local"] {
        std::fs::create_dir_all(work.path().join(d)).unwrap();
    }
    let up_pw = htpasswd_file(&work.path().join("up"), &[("mirror", secret)]);
    let upstream = distribution(&format!(
        "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
        up_pw.display()
    ));
    let clients = Clients::new(&[upstream.host()]);
    clients.skopeo(&[
        "copy",
        "--dest-creds",
        &format!("mirror:{secret}"),
        &img.reference(),
        &format!("docker://{}/library/app:latest", upstream.host()),
    ]);

    let local_pw = htpasswd_file(
        &work.path().join("local"),
        &[("alice", "alice-pw"), ("bob", "bob-pw")],
    );
    let proxy_yaml = |password: &str| {
        format!(
            "proxy:\n  upstreams:\n    - name: docker.io\n      url: http://{}\n      username: mirror\n      password: {password}\n",
            upstream.host()
        )
    };
    let auth_yaml = format!(
        r#"auth:
  htpasswd:
    realm: mirror
    path: {}
  access:
    rules:
      - repositories: ["docker.io/**"]
        users: [alice]
        actions: [pull]
      - repositories: ["library/**"]
        users: [bob]
        actions: [pull]
"#,
        local_pw.display()
    );
    let node = Registry::start_with(Options {
        extra: format!("{}{auth_yaml}", proxy_yaml(secret)),
        kind: Kind::Disco,
        ..Options::default()
    });
    let path = "/v2/library/app/manifests/latest?ns=docker.io";
    // bob may pull `library/**`, not the local name `docker.io/library/app`.
    let bob = Api::basic(&node.url(), "bob", "bob-pw");
    assert_error(&bob.get(path), 403, "DENIED");
    assert_error(
        &bob.get(&format!(
            "/v2/library/app/blobs/{}?ns=docker.io",
            img.root.digest
        )),
        403,
        "DENIED",
    );
    assert_eq!(Api::new(&node.url()).get(path).status, 401);
    // alice may.
    let alice = Api::basic(&node.url(), "alice", "alice-pw");
    let r = alice.get(path);
    assert_eq!(
        r.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&r.body),
        tail(&node.log())
    );
    assert_eq!(
        r.header("docker-content-digest"),
        Some(img.root.digest.as_str())
    );
    for d in layer_digests(&img) {
        let got = alice.get(&format!("/v2/library/app/blobs/{d}?ns=docker.io"));
        assert_eq!(got.status, 200, "{d}");
        assert_eq!(images::sha256_digest(&got.body), d);
    }
    assert!(
        !node.log().contains(secret),
        "the upstream password is logged"
    );

    // Wrong upstream credentials: a clear 502, quickly.
    let wrong = Registry::start_with(Options {
        extra: proxy_yaml("not-the-password"),
        kind: Kind::Disco,
        ..Options::default()
    });
    let r = Api::new(&wrong.url()).get(path);
    assert_error(&r, 502, "UNAVAILABLE");
    assert!(!wrong.log().contains("not-the-password"));
}
