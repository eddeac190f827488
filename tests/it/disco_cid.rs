//! Content-addressed images end to end (issue 6): disco processes with
//! embedded IPFS nodes on 127.0.0.1 publish what real clients push under
//! its digest and CID, and other nodes that never saw the image clone it by
//! CID (directly peered, through the DHT, in a private network), serving
//! it byte for byte to skopeo and ctr. The same image gets the same CID on
//! every node and on both IPFS backends. Unknown CIDs, wrong keys and
//! invalid images fail cleanly with 404 and leave nothing behind.

use std::collections::BTreeSet;

use bytes::Bytes;
use disco::disco::json::{BlobRef, DiscoJson};
use disco::disco::layout::{self, ImageFiles};
use disco::ipfs::block::raw_cid;
use disco::ipfs::embedded::net::{NetConfig, Network};
use disco::ipfs::embedded::{EmbeddedConfig, EmbeddedIpfs};
use disco::ipfs::{Cid, Ipfs};
use disco::registry::Digest;
use serde_json::Value;

use crate::disco_support::*;
use crate::net_support::MemStore;
use crate::support::clients::Clients;
use crate::support::images::{self, OciLayout};
use crate::support::jsipfs;
use crate::support::oci;

fn hex(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

/// skopeo copy of `layout` to `docker://<host>/<repo>:<tag>`, keeping
/// digests (all platforms of an index).
pub(crate) fn push(clients: &Clients, layout: &OciLayout, host: &str, repo: &str, tag: &str) {
    let dest = format!("docker://{host}/{repo}:{tag}");
    let src = layout.reference();
    let mut args = vec!["copy", "--preserve-digests"];
    if layout.is_index() {
        args.push("--all");
    }
    args.extend([src.as_str(), dest.as_str()]);
    clients.skopeo(&args);
}

/// skopeo copy of `<host>/<repo>:latest` into a fresh OCI layout; checks
/// it equals `want`.
pub(crate) fn pull_and_compare(
    clients: &Clients,
    host: &str,
    repo: &str,
    want: &OciLayout,
    name: &str,
) {
    let out = clients.out_dir(name);
    let src = format!("docker://{host}/{repo}:latest");
    let dest = format!("oci:{}:latest", out.display());
    let mut args = vec!["copy"];
    if want.is_index() {
        args.push("--all");
    }
    args.extend([src.as_str(), dest.as_str()]);
    clients.skopeo(&args);
    assert_pulled_same(&out, want);
    wait_installed(host, repo);
}

/// Waits until the registry at `host` holds repository `repo` whole: a
/// pull by CID can finish while the clone that serves it is still
/// installing the repository, and listing the tags waits for that.
pub(crate) fn wait_installed(host: &str, repo: &str) {
    let api = crate::support::oci_api::Api::new(&format!("http://{host}"));
    let mut last = None;
    // A few tries: some tests inject storage faults.
    for _ in 0..5 {
        let r = api.get(&format!("/v2/{repo}/tags/list"));
        if r.status == 200 {
            return;
        }
        last = Some(r);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = last.unwrap();
    panic!(
        "{repo} not listed at {host}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
}

/// The digests of `layout`'s blobs as `disco.json` writes them (hex).
fn blob_hexes(layout: &OciLayout) -> BTreeSet<String> {
    layout.blobs().iter().map(|d| d.hex().to_string()).collect()
}

/// Checks a `/disco/v1/images` answer: digest, CID, and one canonical CID
/// (CIDv1 base32) per blob of the image.
fn check_info(info: &Value, layout: &OciLayout, cid: &str) {
    assert_eq!(info["digest"].as_str(), Some(layout.root.digest.as_str()));
    assert_eq!(info["cid"].as_str(), Some(cid));
    assert!(cid.starts_with("bafybei"), "{cid}");
    let blobs = info["blobs"].as_array().expect("blobs");
    let digests: BTreeSet<String> = blobs
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(digests, blob_hexes(layout));
    assert_eq!(digests.len(), blobs.len());
    let listed: Vec<&str> = blobs
        .iter()
        .map(|b| b["digest"].as_str().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "disco.json is sorted by digest");
    for b in blobs {
        let c = b["cid"].as_str().unwrap();
        assert!(c.starts_with("baf"), "CIDv1 base32: {c}");
    }
}

/// A 404 `MANIFEST_UNKNOWN` whose detail gives `reason`.
#[track_caller]
fn assert_clone_404(r: &crate::support::oci_api::Resp, reason: &str, ctx: &str) {
    assert_eq!(r.status, 404, "{}\n{ctx}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let e = &v["errors"][0];
    assert_eq!(e["code"], "MANIFEST_UNKNOWN", "{v}");
    let detail = e["detail"]["reason"].as_str().unwrap_or_default();
    assert!(
        detail.contains(reason),
        "detail {detail:?} lacks {reason:?}: {v}"
    );
}

#[test]
fn publish_then_clone_on_a_peer_with_skopeo_and_ctr() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 1);
    let idx = index_image();
    let a = Node::start(NodeOpts::default());
    let b = Node::start(NodeOpts {
        bootstrap: vec![a.peer_addr()],
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[a.host(), b.host()]);

    push(&clients, &img, &a.host(), "team/app", "v1");
    push(&clients, &idx, &a.host(), "team/multi", "v1");
    assert_eq!(
        a.metric("disco_images_published_total"),
        2,
        "{}",
        a.log_tail()
    );
    let (cid1, info1) = a.published(&img.root.digest);
    let (cid2, info2) = a.published(hex(&idx.root.digest));
    check_info(&info1, &img, &cid1);
    check_info(&info2, &idx, &cid2);
    assert_ne!(cid1, cid2);
    assert!(a.log_tail().contains(&cid1), "the log names the CID");

    // The named repository stays; the digest repository reveals the CID;
    // the CID repository serves the image.
    a.api.assert_same_as_layout("team/app", "v1", &img);
    let mut tags = a.api.tags(hex(&img.root.digest));
    tags.sort();
    let mut want = vec!["latest".to_string(), cid1.clone()];
    want.sort();
    assert_eq!(tags, want);
    a.api
        .assert_same_as_layout(hex(&img.root.digest), &cid1, &img);
    a.api.assert_same_as_layout(&cid1, "latest", &img);
    a.api.assert_same_as_layout(&cid2, "latest", &idx);

    // Pull-only names.
    let denied = clients.skopeo_result(&[
        "copy",
        &img.reference(),
        &format!("docker://{}/{cid1}:mine", a.host()),
    ]);
    assert!(!denied.status.success());
    assert!(
        denied.stderr.to_lowercase().contains("denied"),
        "{}",
        denied.stderr
    );
    let manifest = img.read_blob(&img.root.digest).unwrap();
    for repo in [cid1.as_str(), hex(&img.root.digest)] {
        let r = a.api.request(
            "PUT",
            &format!("/v2/{repo}/manifests/x"),
            &[("Content-Type", images::MT_MANIFEST)],
            manifest.clone(),
        );
        assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["errors"][0]["code"], "DENIED");
        let r = a.api.request(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            Vec::new(),
        );
        assert_eq!(r.status, 403);
        let msg = r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("pull-only"), "{msg}");
    }
    // Another tag of the same manifest: the PUT answers the CID.
    let r = a.api.request(
        "PUT",
        "/v2/team/app/manifests/v2",
        &[("Content-Type", images::MT_MANIFEST)],
        manifest.clone(),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("disco-cid"), Some(cid1.as_str()));
    let r = a.api.get(&format!("/disco/v1/images/{}", "ab".repeat(32)));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    assert_eq!(a.api.get("/disco/v1/images/nope").status, 400);

    // B never saw the image: concurrent pulls by CID share one clone.
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let url = b.reg.url();
            let cid = cid1.clone();
            std::thread::spawn(move || {
                crate::support::oci_api::Api::new(&url).manifest(&cid, "latest")
            })
        })
        .collect();
    for p in pulls {
        let r = p.join().unwrap();
        assert_eq!(
            r.status,
            200,
            "{}\n{}",
            String::from_utf8_lossy(&r.body),
            b.log_tail()
        );
        assert_eq!(r.body, manifest);
    }
    assert_eq!(b.metric("disco_clones_started_total"), 1);
    pull_and_compare(&clients, &b.host(), &cid1, &img, "b-app");
    assert_eq!(
        b.published(&img.root.digest).1,
        info1,
        "B's disco.json equals A's"
    );
    b.api
        .assert_same_as_layout(hex(&img.root.digest), "latest", &img);

    // Listing the tags of a CID B has never seen clones it too.
    assert_eq!(b.api.tags(&cid2), vec!["latest".to_string()]);
    // ctr pulls the index by CID from B.
    let ctr = clients.start_containerd();
    let name = format!("{}/{cid2}:latest", b.host());
    ctr.pull(&name, &["--all-platforms"]);
    for d in idx.blobs() {
        assert_eq!(ctr.content_digest(&d.digest), (d.digest.clone(), d.size));
    }
    assert_eq!(b.published(&idx.root.digest).1, info2);

    assert_eq!(b.metric("disco_clones_started_total"), 2);
    b.wait_metric("disco_clones_succeeded_total", 2);
    assert_eq!(b.metric("disco_clones_failed_total"), 0);
    assert_eq!(
        b.metric("disco_clone_blobs_fetched_total"),
        (img.blobs().len() + idx.blobs().len()) as u64
    );
    assert_eq!(
        b.metric("disco_clone_bytes_fetched_total"),
        img.total_size() + idx.total_size()
    );
    assert_eq!(b.metric("disco_clones_in_flight"), 0);
}

#[test]
fn clone_through_the_dht_in_a_private_network_and_not_with_a_wrong_key() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 2);
    let key = swarm_key(work.path(), 1);
    let wrong = swarm_key(work.path(), 2);
    let c = Node::start(NodeOpts {
        swarmkey: Some(key.clone()),
        ..NodeOpts::default()
    });
    let via_c = vec![c.peer_addr()];
    let mut nodes = Node::start_many(vec![
        NodeOpts {
            bootstrap: via_c.clone(),
            swarmkey: Some(key.clone()),
            ..NodeOpts::default()
        },
        NodeOpts {
            bootstrap: via_c.clone(),
            swarmkey: Some(key),
            ..NodeOpts::default()
        },
        NodeOpts {
            bootstrap: via_c,
            swarmkey: Some(wrong),
            clonetimeout: Some("5s".into()),
            ..NodeOpts::default()
        },
    ]);
    let d = nodes.pop().unwrap();
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    let clients = Clients::new(&[a.host(), b.host()]);
    push(&clients, &img, &a.host(), "app", "v1");
    let (cid, info) = a.published(&img.root.digest);

    // B knows only C; C does not hold the image: B finds A as a provider.
    pull_and_compare(&clients, &b.host(), &cid, &img, "via-dht");
    assert_eq!(b.published(&img.root.digest).1, info);
    assert_eq!(c.metric("disco_clones_started_total"), 0);

    // D holds another key: it reaches no one and gives up after 5 s.
    let r = d.api.manifest(&cid, "latest");
    assert_clone_404(&r, "not found on the IPFS network", &d.log_tail());
    // Listing its tags tries (and fails) once more: 404 NAME_UNKNOWN.
    let r = d.api.get(&format!("/v2/{cid}/tags/list"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "NAME_UNKNOWN");
    assert_eq!(d.metric("disco_clones_failed_total"), 2);
    assert_eq!(d.metric("disco_ipfs_peers"), 0);
}

/// A disco on the Kubo backend (a js-ipfs daemon), rooted in its own MFS
/// directory.
fn kubo_node(api: &str) -> Node {
    let root = format!("/disco-it-{}", uuid::Uuid::new_v4().simple());
    Node::start(NodeOpts {
        storage: Some(format!(
            "  ipfs:\n    rootdirectory: {root}\n    router:\n      nodes:\n        - url: {api}\n  delete:\n    enabled: true\n"
        )),
        ..NodeOpts::default()
    })
}

#[test]
fn the_same_image_has_the_same_cid_on_every_node_and_backend() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 3);
    let idx = index_image();
    let daemon = jsipfs::shared();
    let mut embedded = Node::start_many(vec![NodeOpts::default(), NodeOpts::default()]);
    let e2 = embedded.pop().unwrap();
    let e1 = embedded.pop().unwrap();
    let k1 = kubo_node(&daemon.api);
    let clients = Clients::new(&[e1.host(), e2.host(), k1.host()]);

    let mut answers = Vec::new();
    for (node, repo) in [
        (&e1, "first/app"),
        (&e1, "second/app"),
        (&e2, "other/node"),
        (&k1, "kubo/app"),
    ] {
        push(&clients, &img, &node.host(), repo, "v1");
        push(&clients, &idx, &node.host(), &format!("{repo}-multi"), "v1");
        answers.push((
            node.published(&img.root.digest).1,
            node.published(&idx.root.digest).1,
        ));
    }
    for a in &answers[1..] {
        assert_eq!(a, &answers[0], "same images, same CIDs and disco.json");
    }
    let cid = answers[0].0["cid"].as_str().unwrap().to_string();
    check_info(&answers[0].0, &img, &cid);

    // Cloning on the Kubo backend: a second disco on the same daemon (its
    // own tree) pulls by CID.
    let k2 = kubo_node(&daemon.api);
    let mut clients = clients;
    clients.allow_insecure(&k2.host());
    pull_and_compare(&clients, &k2.host(), &cid, &img, "kubo-clone");
    assert_eq!(k2.published(&img.root.digest).1, answers[0].0);
    k2.wait_metric("disco_clones_succeeded_total", 1);
}

#[test]
fn unknown_cid_is_404_after_the_clone_timeout_noclone_and_keepnames_off() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 4);
    let a = Node::start(NodeOpts {
        clonetimeout: Some("3s".into()),
        ..NodeOpts::default()
    });
    let n = Node::start(NodeOpts {
        bootstrap: vec![a.peer_addr()],
        disco: "  noclone: true\n  keepnames: false\n".into(),
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[a.host(), n.host()]);

    // A valid CID no peer has.
    let random = Cid::new_v1(
        disco::ipfs::DAG_PB,
        *raw_cid(uuid::Uuid::new_v4().as_bytes()).hash(),
    )
    .to_string();
    let r = a.api.manifest(&random, "latest");
    assert_clone_404(&r, "not found on the IPFS network", &a.log_tail());
    let msg = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("3s"), "{msg}");
    assert_eq!(a.api.manifest_head(&random, "latest").status, 404);
    assert_eq!(a.metric("disco_clones_failed_total"), 2);
    assert_eq!(a.api.get(&format!("/v2/{random}/tags/list")).status, 404);

    // Blob requests never start a clone (a mistaken push HEADs blobs before
    // it is refused): on a CID whose clone just failed they say why, on
    // any other they are a plain 404 at once.
    let started = a.metric("disco_clones_started_total");
    let blob = &img.blobs()[0].digest;
    let r = a.api.get(&format!("/v2/{random}/blobs/{blob}"));
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN", "{v}");
    assert_eq!(
        v["errors"][0]["detail"]["reason"], "content not found on the IPFS network",
        "{v}"
    );
    let other = Cid::new_v1(
        disco::ipfs::DAG_PB,
        *raw_cid(uuid::Uuid::new_v4().as_bytes()).hash(),
    );
    for method in ["HEAD", "GET"] {
        let r = a.api.request(
            method,
            &format!("/v2/{other}/blobs/{blob}"),
            &[],
            Vec::new(),
        );
        assert_eq!(r.status, 404, "{method}");
    }
    let r = a.api.get(&format!("/v2/{other}/blobs/{blob}"));
    assert_eq!(r.json()["errors"][0]["code"], "BLOB_UNKNOWN");
    assert_eq!(a.metric("disco_clones_started_total"), started);

    // N is peered with A, which has the image, but does not clone.
    push(&clients, &img, &a.host(), "app", "v1");
    let (cid, _) = a.published(&img.root.digest);
    let r = n.api.manifest(&cid, "latest");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    assert_eq!(n.metric("disco_clones_started_total"), 0);
    // Its own pushes are still published; with keepnames off, only under
    // the digest and the CID.
    push(&clients, &img, &n.host(), "app", "v1");
    assert_eq!(n.published(&img.root.digest).0, cid);
    assert_eq!(n.api.get("/v2/app/tags/list").status, 404);
    n.api.assert_same_as_layout(&cid, "latest", &img);
    n.api
        .assert_same_as_layout(hex(&img.root.digest), "latest", &img);
}

#[test]
fn republish_after_purging_the_store_and_pull_by_cid_after_restart() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 5);
    let mut a = Node::start(NodeOpts {
        port: Some(swarm_port()),
        // The purged node looks for the CID on the network, which has none.
        clonetimeout: Some("2s".into()),
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[a.host()]);
    push(&clients, &img, &a.host(), "app", "v1");
    let (cid, info) = a.published(&img.root.digest);

    // Purge the IPFS store (blocks, MFS, identity) and the spool: the
    // registry is empty; pushing again publishes the same CID.
    a.reg.stop();
    std::fs::remove_dir_all(a.dir.join("ipfs")).unwrap();
    std::fs::remove_dir_all(a.dir.join("spool")).unwrap();
    a.restart();
    assert_eq!(a.api.manifest(&cid, "latest").status, 404);
    push(&clients, &img, &a.host(), "app", "v1");
    assert_eq!(a.published(&img.root.digest).1, info);

    // After a restart the CID repository is served from the store, and a
    // new node clones it from A.
    a.restart();
    pull_and_compare(&clients, &a.host(), &cid, &img, "after-restart");
    let b = Node::start(NodeOpts {
        bootstrap: vec![a.peer_addr()],
        ..NodeOpts::default()
    });
    let mut clients = clients;
    clients.allow_insecure(&b.host());
    pull_and_compare(&clients, &b.host(), &cid, &img, "clone-after-restart");
    assert_eq!(b.published(&img.root.digest).1, info);
}

/// Blobs of a small image: config, layer, manifest.
struct Crafted {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Crafted {
    fn new() -> Self {
        let config = oci::config(9);
        let layer = oci::bytes(70_000, 9);
        let c = oci::Desc::of(images::MT_CONFIG, &config);
        let l = oci::Desc::of(images::MT_LAYER_GZIP, &layer);
        let manifest = oci::oci_manifest(&c, &[l]);
        Crafted {
            config,
            layer,
            manifest,
        }
    }

    fn digest(data: &[u8]) -> Digest {
        Digest::sha256(data)
    }

    fn files(&self) -> ImageFiles {
        ImageFiles {
            manifest: Self::digest(&self.manifest),
            manifests: vec![Self::digest(&self.manifest)],
            layers: vec![Self::digest(&self.config), Self::digest(&self.layer)],
        }
    }

    /// The image's correct `disco.json`.
    fn disco_json(&self) -> DiscoJson {
        DiscoJson::new(
            [&self.config, &self.layer, &self.manifest].map(|b| BlobRef {
                digest: Self::digest(b),
                cid: raw_cid(b),
            }),
        )
        .unwrap()
    }
}

/// A bare embedded-node network in this process serving `store`'s blocks
/// (hand-made image repositories) on loopback.
fn provider(rt: &tokio::runtime::Runtime) -> (std::sync::Arc<MemStore>, Network) {
    let store = MemStore::new();
    let net = rt
        .block_on(Network::start(
            &NetConfig::loopback(),
            libp2p::identity::Keypair::generate_ed25519(),
            store.clone(),
        ))
        .unwrap();
    (store, net)
}

#[test]
fn invalid_images_fail_cleanly_and_leave_nothing_behind() {
    // A provider in this process serves hand-made image repositories.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, net) = provider(&rt);
    let img = Crafted::new();
    let mut wrong_layer = img.layer.clone();
    wrong_layer[100] ^= 1;
    let mut blocks: Vec<(Cid, Bytes)> = [&img.config, &img.layer, &img.manifest, &wrong_layer]
        .iter()
        .map(|b| (raw_cid(b), Bytes::copy_from_slice(b)))
        .collect();
    let good = img.disco_json();
    let bad_blob = DiscoJson::new(
        [
            (&img.config, &img.config),
            (&img.manifest, &img.manifest),
            (&img.layer, &wrong_layer),
        ]
        .map(|(d, b)| BlobRef {
            digest: Crafted::digest(d),
            cid: raw_cid(b),
        }),
    )
    .unwrap();
    let mut roots = Vec::new();
    for json in [
        b"{\"blobs\":[{\"digest\":\"x\"}]}".to_vec(),
        bad_blob.to_bytes(),
        good.to_bytes(),
    ] {
        let dag = rt
            .block_on(layout::build(&img.files(), Bytes::from(json)))
            .unwrap();
        blocks.extend(dag.blocks);
        roots.push(dag.root.to_string());
    }
    store.insert_all(&blocks);
    let provider = net.addresses()[0].to_string();

    let mut b = Node::start(NodeOpts {
        bootstrap: vec![provider],
        clonetimeout: Some("20s".into()),
        ..NodeOpts::default()
    });
    let r = b.api.manifest(&roots[0], "latest");
    assert_clone_404(&r, "not a valid disco image", &b.log_tail());
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid disco.json")
    );
    // The manifest of the image with a wrong layer is valid and served
    // while its blobs arrive; the layer whose bytes hash wrong never is.
    let r = b.api.manifest(&roots[1], "latest");
    assert_eq!(r.status, 200, "{}", b.log_tail());
    assert_eq!(r.body, img.manifest);
    let ld = Crafted::digest(&img.layer);
    let r = b.api.get(&format!("/v2/{}/blobs/{ld}", roots[1]));
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN", "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("hash to"),
        "{v}"
    );
    let md = Crafted::digest(&img.manifest);
    for root in &roots[..2] {
        assert_eq!(b.api.get(&format!("/v2/{root}/tags/list")).status, 404);
    }
    assert_eq!(b.api.get(&format!("/disco/v1/images/{md}")).status, 404);
    assert_eq!(
        b.api.get(&format!("/v2/{}/tags/list", md.hex())).status,
        404
    );
    // Four clones, all failed: two pulls, two tag listings (the layer
    // download joined the second pull's clone or learnt how it ended).
    assert_eq!(b.metric("disco_clones_started_total"), 4);
    assert_eq!(b.metric("disco_clones_failed_total"), 4);
    // The wrong layer's digest is in no form in the registry (an anonymous
    // mount finds nothing); the manifest, verified, is.
    let mount = |d: &Digest| {
        b.api
            .request(
                "POST",
                &format!("/v2/probe/blobs/uploads/?mount={d}"),
                &[],
                Vec::new(),
            )
            .status
    };
    assert_eq!(mount(&ld), 202, "{ld} is not in the registry");
    assert_eq!(mount(&md), 201, "{md} was verified and stored");

    // The well-formed repository clones; its manifest is the same blob the
    // failed clones had verified and staged.
    let r = b.api.manifest(&roots[2], "latest");
    assert_eq!(r.status, 200, "{}", b.log_tail());
    assert_eq!(r.body, img.manifest);
    let good_root = roots[2].clone();
    wait_installed(&b.host(), &good_root);

    // Nothing of the failed clones is in the store: no staging, no
    // repositories.
    b.reg.stop();
    let node = rt
        .block_on(EmbeddedIpfs::open(EmbeddedConfig::at(b.dir.join("ipfs"))))
        .unwrap();
    rt.block_on(async {
        match node.files_ls("/disco/clones").await {
            Ok(entries) => assert!(entries.is_empty(), "staging left: {entries:?}"),
            Err(e) => assert!(e.is_not_found(), "{e}"),
        }
        for root in &roots[..2] {
            let p = format!("/docker/registry/v2/repositories/{root}");
            assert!(node.files_stat(&p).await.unwrap_err().is_not_found(), "{p}");
        }
        let p = format!("/docker/registry/v2/repositories/{good_root}/disco.json");
        assert!(node.files_stat(&p).await.is_ok());
        node.shutdown().await.unwrap();
    });
    drop(node);
    drop(net);
}

#[test]
fn a_clone_serves_each_blob_as_soon_as_it_is_verified() {
    // A provider in this process holds an image repository, its manifest
    // and its config, but not yet its layer.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, net) = provider(&rt);
    let img = Crafted::new();
    let dag = rt
        .block_on(layout::build(
            &img.files(),
            Bytes::from(img.disco_json().to_bytes()),
        ))
        .unwrap();
    let mut blocks = dag.blocks;
    blocks.extend([&img.config, &img.manifest].map(|b| (raw_cid(b), Bytes::copy_from_slice(b))));
    store.insert_all(&blocks);
    let root = dag.root.to_string();
    let b = Node::start(NodeOpts {
        bootstrap: vec![net.addresses()[0].to_string()],
        clonetimeout: Some("60s".into()),
        ..NodeOpts::default()
    });

    // The manifest and the config are served while the layer is missing:
    // the clone is still running.
    let r = b.api.manifest(&root, "latest");
    assert_eq!(r.status, 200, "{}", b.log_tail());
    assert_eq!(r.body, img.manifest);
    let cd = Crafted::digest(&img.config);
    let r = b.api.get(&format!("/v2/{root}/blobs/{cd}"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, img.config);
    assert_eq!(b.metric("disco_clones_in_flight"), 1);
    assert_eq!(b.metric("disco_clones_succeeded_total"), 0);

    // A download of the layer waits for it; the layer reaches the
    // provider, and the download completes with its bytes.
    let ld = Crafted::digest(&img.layer);
    let url = b.reg.url();
    let path = format!("/v2/{root}/blobs/{ld}");
    let download = std::thread::spawn(move || crate::support::oci_api::Api::new(&url).get(&path));
    std::thread::sleep(std::time::Duration::from_millis(500));
    store.insert_all(&[(raw_cid(&img.layer), Bytes::copy_from_slice(&img.layer))]);
    let r = download.join().unwrap();
    assert_eq!(r.status, 200, "{}", b.log_tail());
    assert_eq!(r.body, img.layer);

    // Then the clone installs the repository.
    wait_installed(&b.host(), &root);
    assert_eq!(b.api.tags(&root), vec!["latest".to_string()]);
    assert_eq!(b.metric("disco_clones_started_total"), 1);
    b.wait_metric("disco_clones_succeeded_total", 1);
    assert_eq!(b.metric("disco_clones_in_flight"), 0);
    drop(net);
}
