//! A site of discos on one host that survives restarts (issue 18): each
//! disco's swarm on its own loopback address 127.0.0.X, mDNS off, node 1
//! the only bootstrap entry of the others, DHT in server mode.
//!
//! - 32 discos; an image pushed to one; every disco restarted on the same
//!   data and addresses; idle connections left to close; pulls by CID from
//!   several others all succeed, byte for byte (stored images are
//!   announced again at start and as the routing tables fill).
//! - The bootstrap node down at start and back 10 s later: every node
//!   finds a peer (bootstrap retried with backoff), and an image pushed to
//!   a node while it was cut off is then pullable by CID.
//! - Delegated routing: a disco with no DHT peer at all resolves a CID
//!   through another disco's `/routing/v1` and clones from the holder.
//!
//! No stream is dropped and no bitswap message is lost on any node
//! (metrics asserted zero). Times are logged, never asserted.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::disco_cid::push;
use crate::disco_support::*;
use crate::support::clients::Clients;

/// Keys keeping each of many processes small and the test fast.
pub(crate) fn small_node_keys(idle: &str) -> Vec<String> {
    vec![
        format!("idletimeout: {idle}"),
        "gc: {enabled: false}".into(),
        "fetchconcurrency: 16".into(),
    ]
}

fn site_opts(i: usize, port: u16, bootstrap: &[String]) -> NodeOpts {
    NodeOpts {
        ip: Some(format!("127.0.0.{}", i + 1)),
        port: Some(port),
        bootstrap: bootstrap.to_vec(),
        embedded: small_node_keys("3s"),
        ..NodeOpts::default()
    }
}

/// Runs `f` on every node, one thread each.
fn each<F: Fn(&mut Node) + Sync>(nodes: &mut [Node], f: F) {
    std::thread::scope(|s| {
        for n in nodes.iter_mut() {
            let f = &f;
            s.spawn(move || f(n));
        }
    });
}

/// Asserts no node dropped an inbound stream or gave up on a bitswap
/// message.
fn assert_nothing_lost(nodes: &[&Node]) {
    for n in nodes {
        for m in [
            "disco_ipfs_streams_dropped_total",
            "disco_ipfs_bitswap_sends_failed_total",
        ] {
            assert_eq!(n.metric(m), 0, "{m} on {}\n{}", n.host(), n.log_tail());
        }
    }
}

fn bootstrap_state(n: &Node) -> Value {
    n.api.get("/disco/v1/node").json()["bootstrap"].clone()
}

/// Pulls `cid` from `n` (manifest, then every blob) and checks each
/// against the pushed layout; logs the time to the manifest.
pub(crate) fn pull_by_cid(
    n: &Node,
    cid: &str,
    img: &crate::support::images::OciLayout,
    label: &str,
) {
    let t = Instant::now();
    let r = n.api.manifest(cid, "latest");
    let manifest_time = t.elapsed();
    assert_eq!(
        r.status,
        200,
        "{label}: pull by CID: {}\n{}",
        String::from_utf8_lossy(&r.body),
        n.log_tail()
    );
    n.api.assert_same_as_layout(cid, "latest", img);
    eprintln!(
        "{label}: manifest after {:.2} s, whole image after {:.2} s",
        manifest_time.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn site_of_32_survives_a_full_restart() {
    const N: usize = 32;
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 18);
    let ports: Vec<u16> = (0..N).map(|_| swarm_port()).collect();
    let first = Node::start(site_opts(0, ports[0], &[]));
    let boot = vec![first.peer_addr()];
    let mut nodes = vec![first];
    nodes.extend(Node::start_many(
        (1..N).map(|i| site_opts(i, ports[i], &boot)).collect(),
    ));

    // Push to node 2; it publishes the image under its CID.
    let clients = Clients::new(&[nodes[1].host()]);
    push(&clients, &img, &nodes[1].host(), "site/app", "v1");
    let (cid, _) = nodes[1].published(&img.root.digest);

    // Restart every node on the same data and addresses.
    each(&mut nodes, |n| n.reg.stop());
    each(&mut nodes, |n| n.restart());
    let restarted = Instant::now();
    // Let the connections made while starting go idle and close (3 s idle
    // timeout; bitswap holds no stream).
    std::thread::sleep(Duration::from_secs(6));

    // Pull by CID from several nodes that never had the image.
    for i in [N - 1, N / 2, 5, 2] {
        pull_by_cid(&nodes[i], &cid, &img, &format!("node {}", i + 1));
    }
    eprintln!(
        "4 pulls done {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    // The image's six roots (image CID, manifest, config, three layers)
    // were announced; later runs may carry only what new peers lack.
    assert!(nodes[1].metric("disco_ipfs_records_announced_total") >= 6);
    assert!(nodes[1].metric("disco_ipfs_announce_runs_total") > 0);
    let watched: Vec<&Node> = [1, 2, 5, N / 2, N - 1].iter().map(|i| &nodes[*i]).collect();
    assert_nothing_lost(&watched);
}

#[test]
fn late_bootstrap_node_heals_the_site() {
    const N: usize = 6;
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 19);
    let ports: Vec<u16> = (0..N).map(|_| swarm_port()).collect();
    // Learn the bootstrap node's identity, then take it down.
    let mut boot = Node::start(NodeOpts {
        ip: Some("127.0.0.61".into()),
        ..site_opts(0, ports[0], &[])
    });
    let boot_addr = vec![boot.peer_addr()];
    boot.reg.stop();

    let nodes = Node::start_many(
        (1..N)
            .map(|i| NodeOpts {
                ip: Some(format!("127.0.0.{}", 61 + i)),
                ..site_opts(i, ports[i], &boot_addr)
            })
            .collect(),
    );
    let down_since = Instant::now();
    // A holder takes a push while it is cut off.
    let clients = Clients::new(&[nodes[0].host()]);
    push(&clients, &img, &nodes[0].host(), "late/app", "v1");
    let (cid, _) = nodes[0].published(&img.root.digest);
    for n in &nodes {
        assert_eq!(n.metric("disco_ipfs_peers"), 0);
        let st = bootstrap_state(n);
        assert_eq!(st["configured"], 1, "{st}");
        assert_eq!(st["connected"], 0, "{st}");
    }
    let left = Duration::from_secs(10).saturating_sub(down_since.elapsed());
    std::thread::sleep(left);
    for n in &nodes {
        let st = bootstrap_state(n);
        assert_eq!(st["state"], "retrying", "{st}");
        assert!(st["attempts"].as_u64().unwrap() >= 2, "{st}");
    }

    boot.restart();
    let back = Instant::now();
    for (i, n) in nodes.iter().enumerate() {
        // Hang guard only: backoff is at most 8-16 s at this point.
        let limit = Duration::from_secs(60);
        while n.metric("disco_ipfs_peers") == 0 || bootstrap_state(n)["state"] != "connected" {
            assert!(
                back.elapsed() < limit,
                "node {i} has no peer {limit:?} after the bootstrap node came back\n{}",
                n.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let st = bootstrap_state(n);
        assert_eq!(st["state"], "connected", "{st}");
    }
    eprintln!(
        "every node has a peer {:.1} s after the bootstrap node came back",
        back.elapsed().as_secs_f64()
    );
    // The holder announced when its routing table filled: the others find it.
    let t = Instant::now();
    pull_by_cid(&nodes[N - 2], &cid, &img, "after healing");
    eprintln!("pulled {:.1} s after the check", t.elapsed().as_secs_f64());
    let all: Vec<&Node> = nodes.iter().collect();
    assert_nothing_lost(&all);
}

#[test]
fn delegated_routing_between_discos() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 20);
    let router = Node::start(NodeOpts {
        embedded: small_node_keys("10m"),
        ..NodeOpts::default()
    });
    let holder = Node::start(NodeOpts {
        bootstrap: vec![router.peer_addr()],
        embedded: small_node_keys("10m"),
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[holder.host()]);
    push(&clients, &img, &holder.host(), "routed/app", "v1");
    let (cid, info) = holder.published(&img.root.digest);
    let holder_id = holder.api.get("/disco/v1/node").json()["peerId"]
        .as_str()
        .unwrap()
        .to_string();

    // Served: the router answers from its DHT (the holder's records).
    let providers = |accept: &str| {
        let mut last = Value::Null;
        for _ in 0..100 {
            let r = router.api.request(
                "GET",
                &format!("/routing/v1/providers/{cid}"),
                &[("Accept", accept)],
                Vec::new(),
            );
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.header("access-control-allow-origin"), Some("*"));
            let text = String::from_utf8_lossy(&r.body).to_string();
            let records: Vec<Value> = if accept.contains("ndjson") {
                assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
                text.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            } else {
                assert_eq!(r.header("content-type"), Some("application/json"));
                serde_json::from_str::<Value>(&text).unwrap()["Providers"]
                    .as_array()
                    .unwrap()
                    .clone()
            };
            if records.iter().any(|p| p["ID"] == holder_id.as_str()) {
                return records;
            }
            last = Value::Array(records);
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "router never listed the holder: {last}\n{}",
            router.log_tail()
        );
    };
    for accept in ["application/json", "application/x-ndjson"] {
        let records = providers(accept);
        let rec = records
            .iter()
            .find(|p| p["ID"] == holder_id.as_str())
            .unwrap();
        assert_eq!(rec["Schema"], "peer");
        assert!(
            rec["Addrs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("/ip4/127.0.0.1/tcp/")),
            "{rec}"
        );
    }
    // A blob's CID too; and the holder answers for its own store.
    let blob_cid = info["blobs"][0]["cid"].as_str().unwrap();
    let r = holder.api.get(&format!("/routing/v1/providers/{blob_cid}"));
    assert_eq!(r.json()["Providers"][0]["ID"], holder_id.as_str());
    let r = router.api.get(&format!("/routing/v1/peers/{holder_id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Peers"][0]["ID"], holder_id.as_str());
    // Unknown content: an empty list; bad input: 400.
    let r = router
        .api
        .get("/routing/v1/providers/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy");
    assert_eq!(
        (r.status, r.json()["Providers"].clone()),
        (200, serde_json::json!([]))
    );
    assert_eq!(
        router.api.get("/routing/v1/providers/not-a-cid").status,
        400
    );
    assert_eq!(router.api.get("/routing/v1/peers/nobody").status, 400);

    // Consumed: a disco with no bootstrap peer and no DHT resolves the CID
    // through the router and clones from the holder.
    let puller = Node::start(NodeOpts {
        embedded: {
            let mut k = small_node_keys("10m");
            k.push(format!("routers: [{}]", router.reg.url()));
            k
        },
        ..NodeOpts::default()
    });
    assert_eq!(puller.metric("disco_ipfs_peers"), 0);
    pull_by_cid(&puller, &cid, &img, "through the router");
    assert_nothing_lost(&[&router, &holder, &puller]);
}
