//! The peer network is private by default: a fresh disco generates its own
//! Kubo-format network key, so two discos that were not given the same key
//! never connect and cannot fetch each other's blocks; `disco network key`
//! and `disco network join` make sharing one step. With access control, an
//! open or public network (where any peer could fetch what HTTP denies)
//! stops disco at start, unless every repository is public anyway.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::auth_support::{htpasswd_file, refused_start};
use crate::disco_support::{Node, NodeOpts, multi_layer_image};
use crate::support::clients::Clients;

fn disco(node: &Node, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_disco"));
    c.args(args)
        .arg("--config")
        .arg(&node.reg.config_path)
        .env("HOME", &node.dir);
    match stdin {
        Some(text) => {
            use std::io::Write;
            c.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
        None => c.output().unwrap(),
    }
}

fn peers(node: &Node) -> Vec<String> {
    let r = node.api.get("/disco/v1/peers");
    assert_eq!(r.status, 200);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer"].as_str().unwrap().to_string())
        .collect()
}

fn peer_id(node: &Node) -> String {
    node.api.get("/disco/v1/node").json()["peerId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn private_by_default_and_joined_by_key() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 21);
    let a = Node::start(NodeOpts {
        private: true,
        ..NodeOpts::default()
    });
    let mut b = Node::start(NodeOpts {
        private: true,
        bootstrap: vec![a.peer_addr()],
        clonetimeout: Some("5s".into()),
        ..NodeOpts::default()
    });
    // Each generated its own key, readable by its owner only.
    let key_a = disco(&a, &["network", "key"], None);
    assert!(key_a.status.success(), "{key_a:?}");
    let key_a = String::from_utf8(key_a.stdout).unwrap();
    assert!(
        key_a.starts_with("/key/swarm/psk/1.0.0/\n/base16/\n"),
        "{key_a}"
    );
    let key_b = String::from_utf8(disco(&b, &["network", "key"], None).stdout).unwrap();
    assert_ne!(key_a, key_b);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(a.dir.join("ipfs/swarm.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // B dials A at start and is refused in the handshake: no connection.
    let clients = Clients::new(&[a.host(), b.host()]);
    crate::disco_cid::push(&clients, &img, &a.host(), "team/app", "v1");
    let (cid, _) = a.published(&img.root.digest);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        peers(&a).is_empty() && peers(&b).is_empty(),
        "{:?} {:?}",
        peers(&a),
        peers(&b)
    );
    let r = b.api.manifest(&cid, "latest");
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");

    // Joining A's network is one command (then a restart).
    let out = disco(&b, &["network", "join", "-"], Some(&key_a));
    assert!(!out.status.success(), "a different key needs --force");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out = disco(&b, &["network", "join", "-", "--force"], Some(&key_a));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(disco(&b, &["network", "key"], None).stdout).unwrap(),
        key_a
    );
    b.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !peers(&b).contains(&peer_id(&a)) {
        assert!(
            Instant::now() < deadline,
            "B never connected to A:\n{}",
            b.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    crate::disco_cid::pull_and_compare(&clients, &b.host(), &cid, &img, "joined");
}

#[test]
fn access_control_refuses_an_open_network() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd_file(dir.path(), &[("alice", "pw")]);
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: r\n    path: {}\n",
        file.display()
    );
    let storage = |net: &str| {
        format!(
            "storage:\n  ipfs:\n    embedded:\n      path: {}\n      listen: [/ip4/127.0.0.1/tcp/0]\n      mdns: false\n{net}",
            dir.path().join("ipfs").display()
        )
    };
    for net in [
        "      private: false\n",
        "      public: true\n      bootstrap: []\n",
    ] {
        let err = refused_start(dir.path(), &format!("{}{auth}", storage(net)));
        assert!(
            err.contains("access control is on") && err.contains("open network"),
            "{err}"
        );
    }
    let err = refused_start(
        dir.path(),
        &format!("{}{auth}", storage("      quic: true\n")),
    );
    assert!(err.contains("QUIC cannot carry a private network"), "{err}");
    // Nothing to protect from peers when anyone may pull everything.
    let open_dir = tempfile::tempdir().unwrap();
    let reg = crate::support::registry::Registry::start_in(
        open_dir.path(),
        crate::support::registry::Options {
            storage: Some(format!(
                "  ipfs:\n    embedded:\n      path: {}\n      listen: [/ip4/127.0.0.1/tcp/0]\n      mdns: false\n      private: false\n",
                open_dir.path().join("ipfs").display()
            )),
            extra: format!(
                "{auth}  access:\n    rules:\n      - repositories: [\"**\"]\n        anonymous: [pull]\n"
            ),
            ..Default::default()
        },
    );
    let anon = crate::support::oci_api::Api::new(&reg.url());
    assert_eq!(
        anon.manifest("any/thing", "latest").status,
        404,
        "anonymous pull allowed"
    );
    assert_eq!(
        anon.request("POST", "/v2/any/thing/blobs/uploads/", &[], Vec::new())
            .status,
        401
    );
}

/// Delegated routing with access control: who provides a CID is told only
/// to a caller who may pull that CID; a site's discos use a routing
/// account given in the router URL, and clone through it.
#[test]
fn routing_answers_only_who_may_pull() {
    use crate::support::oci_api::Api;
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 23);
    let key = crate::disco_support::swarm_key(work.path(), 5);
    let file = htpasswd_file(
        work.path(),
        &[("alice", "a-pw"), ("bob", "b-pw"), ("site", "site-pw")],
    );
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: r\n    path: {}\n  access:\n    admins: [site]\n    rules:\n      - repositories: [\"team-a/**\"]\n        users: [alice]\n        actions: [pull, push]\n",
        file.display()
    );
    use base64::Engine as _;
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let holder = Node::start(NodeOpts {
        swarmkey: Some(key.clone()),
        top: auth.clone(),
        authorization: Some(basic("site", "site-pw")),
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[holder.host()]);
    let dest = format!("docker://{}/team-a/app:v1", holder.host());
    clients.skopeo(&[
        "copy",
        "--dest-creds",
        "alice:a-pw",
        &img.reference(),
        &dest,
    ]);
    let (cid, _) = holder.published(&img.root.digest);
    let path = format!("/routing/v1/providers/{cid}");
    let url = holder.reg.url();
    assert_eq!(Api::new(&url).get(&path).status, 401);
    let r = Api::basic(&url, "bob", "b-pw").get(&path);
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    let r = Api::basic(&url, "alice", "a-pw").get(&path);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let holder_id = peer_id(&holder);
    assert_eq!(r.json()["Providers"][0]["ID"], holder_id.as_str());
    let peers_path = format!("/routing/v1/peers/{holder_id}");
    assert_eq!(Api::new(&url).get(&peers_path).status, 401);
    assert_eq!(Api::basic(&url, "bob", "b-pw").get(&peers_path).status, 200);

    // A site disco with no bootstrap peer resolves through the holder's
    // routing endpoint with the site account, and clones.
    let puller = Node::start(NodeOpts {
        swarmkey: Some(key),
        embedded: vec![format!(
            "routers: [\"http://site:site-pw@{}\"]",
            holder.host()
        )],
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[puller.host()]);
    crate::disco_cid::pull_and_compare(&clients, &puller.host(), &cid, &img, "routed");
}
