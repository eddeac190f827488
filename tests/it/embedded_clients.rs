//! The embedded node end to end through the `disco` binary:
//!
//! - zero configuration (no config file, empty HOME): skopeo pushes an
//!   image, skopeo and ctr pull it back by tag and by its CID, bytes and
//!   digests equal, the manifest PUT answers `Disco-Cid`. Runs in a private
//!   network namespace (only loopback), since the default node listens on
//!   all interfaces and announces itself by mDNS;
//! - `disco id`, `disco peers` and `disco gc` against two discos on
//!   127.0.0.1 (B bootstrapped to A, no mDNS).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use disco::ipfs::embedded::blockstore::base32_encode;
use sha2::{Digest, Sha256};

use crate::support::clients::Clients;
use crate::support::images::{self, TestImage};
use crate::support::oci;
use crate::support::oci_api::Api;
use crate::support::registry::{Options, Registry};

/// A process killed by PID (and reaped) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Moves the calling thread (and every process and thread it starts from
/// now on) into a new network namespace with only loopback, up.
fn enter_private_netns() {
    // SAFETY: unshare(2) on the calling thread; no memory is involved.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {} (needs root: run scripts/test)",
        std::io::Error::last_os_error()
    );
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2)");
    assert!(st.success(), "ip link set lo up");
}

/// Waits (bounded) until something accepts connections on `addr`.
fn wait_listening(addr: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "disco did not listen on {addr}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn disco_cmd(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_disco"));
    c.env("HOME", home)
        .env_remove("REGISTRY_CONFIGURATION_PATH")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

/// Runs `disco <args>` to completion.
fn disco_cli(home: &Path, args: &[&str]) -> Output {
    disco_cmd(home)
        .args(args)
        .output()
        .expect("run the disco binary")
}

#[track_caller]
fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[test]
fn zero_config_skopeo_and_ctr_round_trip() {
    let home = tempfile::tempdir().unwrap();
    enter_private_netns();
    let log_path = home.path().join("disco.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = disco_cmd(home.path())
        .current_dir(home.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start disco");
    let _disco = Proc(child);
    let host = "127.0.0.1:1970";
    wait_listening(host, &log_path);
    let api = Api::new(&format!("http://{host}"));
    assert_eq!(api.get("/v2/").status, 200);
    assert!(
        home.path().join(".disco/ipfs/blocks").is_dir(),
        "the default store is the embedded node under ~/.disco"
    );

    // `disco id` with no config: the running node's key and addresses.
    let node = api.get("/disco/v1/node").json();
    let (peer, addrs) = parse_id(&stdout_ok(&disco_cli(home.path(), &["id"]), "disco id"));
    assert_eq!(peer, node["peerId"].as_str().unwrap());
    let live: Vec<String> = node["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(addrs, live);
    assert!(addrs.iter().any(|a| a.contains("/tcp/4001/")), "{addrs:?}");

    let layout = images::cached(TestImage::Busybox).expect("test image");
    let clients = Clients::new(&[host.to_string()]);
    let dest = format!("docker://{host}/zero/busybox:v1");
    clients.skopeo(&[
        "copy",
        "--preserve-digests",
        &layout.reference(),
        dest.as_str(),
    ]);
    api.assert_same_as_layout("zero/busybox", "v1", &layout);

    // The image's CID, and the Disco-Cid header of a manifest PUT.
    let root = layout.root.digest.clone();
    let info = api.get(&format!("/disco/v1/images/{root}"));
    assert_eq!(info.status, 200, "{}", String::from_utf8_lossy(&info.body));
    let cid = info.json()["cid"].as_str().expect("cid").to_string();
    assert!(cid.starts_with("bafy"), "{cid}");
    let m = api.manifest("zero/busybox", "v1");
    assert_eq!(m.status, 200);
    assert_eq!(format!("sha256:{}", sha256_hex(&m.body)), root);
    let ct = m.header("content-type").expect("content type").to_string();
    let put = api.request(
        "PUT",
        "/v2/zero/busybox/manifests/v2",
        &[("Content-Type", ct.as_str())],
        m.body.clone(),
    );
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    assert_eq!(put.header("disco-cid"), Some(cid.as_str()));

    // skopeo pulls by tag and by CID: every blob byte-identical.
    for (name, src) in [
        ("by-tag", format!("docker://{host}/zero/busybox:v1")),
        ("by-cid", format!("docker://{host}/{cid}:latest")),
    ] {
        let out = clients.out_dir(name);
        let dst = format!("oci:{}:pulled", out.display());
        clients.skopeo(&["copy", "--preserve-digests", &src, &dst]);
        for b in layout.blobs() {
            let path = out.join("blobs/sha256").join(b.hex());
            let (digest, size) = images::sha256_file(&path)
                .unwrap_or_else(|e| panic!("{name}: blob {}: {e}", b.digest));
            assert_eq!((digest, size), (b.digest.clone(), b.size), "{name}");
        }
    }

    // ctr pulls by tag and by CID: its content store holds the same blobs.
    let ctr = clients.start_containerd();
    for reference in [
        format!("{host}/zero/busybox:v1"),
        format!("{host}/{cid}:latest"),
    ] {
        ctr.pull(&reference, &[]);
        let ls = ctr.ctr(&["images", "ls"]).stdout;
        assert!(
            ls.lines()
                .any(|l| l.starts_with(&reference) && l.contains(&root)),
            "{reference} not listed with {root}:\n{ls}"
        );
    }
    for b in layout.blobs() {
        assert_eq!(
            ctr.content_digest(&b.digest),
            (b.digest.clone(), b.size),
            "ctr content {}",
            b.digest
        );
    }
}

/// Two discos with the embedded node on 127.0.0.1 (no mDNS, an open
/// network); B, when `bootstrap` is given, peers with it at start.
fn embedded_registry(bootstrap: Option<&str>) -> Registry {
    let mut storage = String::from(
        "  ipfs:\n    embedded:\n      listen: [/ip4/127.0.0.1/tcp/0]\n      mdns: false\n      private: false\n      gc:\n        enabled: false\n",
    );
    if let Some(b) = bootstrap {
        storage.push_str(&format!("      bootstrap: [{b}]\n"));
    }
    Registry::start_with(Options {
        storage: Some(storage),
        ..Options::default()
    })
}

fn cli(reg: &Registry, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    let cfg = reg.config_path.to_string_lossy().to_string();
    all.extend(["--config", cfg.as_str()]);
    disco_cli(&reg.dir, &all)
}

fn node_info(reg: &Registry) -> (String, Vec<String>) {
    let v = Api::new(&reg.url()).get("/disco/v1/node").json();
    let peer = v["peerId"].as_str().expect("peerId").to_string();
    let addrs = v["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    (peer, addrs)
}

/// `disco id` plain output: (peer id, addresses).
fn parse_id(text: &str) -> (String, Vec<String>) {
    let mut peer = String::new();
    let mut addrs = Vec::new();
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("peer id: ") {
            peer = p.to_string();
        } else if let Some(a) = line.strip_prefix("address: ") {
            addrs.push(a.to_string());
        }
    }
    (peer, addrs)
}

/// Polls `disco peers` (bounded) until it lists `peer`; returns the output.
fn wait_peer_listed(reg: &Registry, extra: &[&str], peer: &str) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        let mut args = vec!["peers"];
        args.extend(extra);
        last = stdout_ok(&cli(reg, &args), "disco peers");
        if last.lines().any(|l| l.ends_with(&format!("/p2p/{peer}"))) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("disco peers never listed {peer}:\n{last}\n{}", reg.log());
}

#[test]
fn disco_id_and_peers() {
    let a = embedded_registry(None);
    let (a_peer, a_addrs) = node_info(&a);
    let a_tcp = a_addrs
        .iter()
        .find(|x| x.starts_with("/ip4/127.0.0.1/tcp/"))
        .expect("A listens on 127.0.0.1")
        .clone();

    // `disco id` with A running: its key and its live addresses.
    let (peer, addrs) = parse_id(&stdout_ok(&cli(&a, &["id"]), "disco id"));
    assert_eq!(peer, a_peer);
    assert_eq!(addrs, a_addrs);
    let json: serde_json::Value =
        serde_json::from_str(&stdout_ok(&cli(&a, &["id", "--json"]), "disco id --json")).unwrap();
    assert_eq!(json["peerId"], a_peer.as_str());

    let b = embedded_registry(Some(&a_tcp));
    let (b_peer, _) = node_info(&b);
    assert_ne!(a_peer, b_peer);
    // B (by its config's http.addr) sees A at the bootstrap address; A
    // (by --url) sees B.
    let seen_by_b = wait_peer_listed(&b, &[], &a_peer);
    assert!(
        seen_by_b
            .lines()
            .any(|l| l.starts_with("/ip4/127.0.0.1/tcp/") && l.ends_with(&a_peer)),
        "{seen_by_b}"
    );
    let a_url = a.url();
    wait_peer_listed(&b, &["--url", &a_url], &b_peer);
    let json: serde_json::Value = serde_json::from_str(&stdout_ok(
        &cli(&b, &["peers", "--json"]),
        "disco peers --json",
    ))
    .unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer"] == a_peer.as_str() && p["addr"].is_string()),
        "{json}"
    );

    // REGISTRY_* variables work as for `serve`: no config file, the
    // address from the environment.
    let empty = tempfile::tempdir().unwrap();
    let out = disco_cmd(empty.path())
        .args(["peers"])
        .env("REGISTRY_HTTP_ADDR", b.addr.to_string())
        .output()
        .unwrap();
    let text = stdout_ok(&out, "REGISTRY_HTTP_ADDR=<B> disco peers");
    assert!(
        text.lines().any(|l| l.ends_with(&format!("/p2p/{a_peer}"))),
        "{text}"
    );

    // Stopped: `disco id` still reads the key (configured addresses);
    // `disco peers` says no disco answers.
    let mut a = a;
    a.stop();
    let (peer, addrs) = parse_id(&stdout_ok(&cli(&a, &["id"]), "disco id (stopped)"));
    assert_eq!(peer, a_peer);
    assert_eq!(addrs, vec![format!("/ip4/127.0.0.1/tcp/0/p2p/{a_peer}")]);
    let out = cli(&a, &["peers"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no disco answers"), "{err}");
}

/// Files of the raw leaves (262144-byte chunks) of `data` in the flatfs
/// blockstore under `ipfs_dir` (Kubo's layout: base32 multihash, shard =
/// next-to-last two characters).
fn leaf_files(ipfs_dir: &Path, data: &[u8]) -> Vec<PathBuf> {
    data.chunks(262_144)
        .map(|chunk| {
            let mh = multihash::Multihash::<64>::wrap(0x12, &Sha256::digest(chunk)).unwrap();
            let name = base32_encode(&mh.to_bytes());
            let n = name.len();
            ipfs_dir
                .join("blocks")
                .join(&name[n - 3..n - 1])
                .join(format!("{name}.data"))
        })
        .collect()
}

fn count_blocks(ipfs_dir: &Path) -> usize {
    let mut n = 0;
    for shard in std::fs::read_dir(ipfs_dir.join("blocks")).unwrap() {
        let shard = shard.unwrap().path();
        if shard.is_dir() {
            n += std::fs::read_dir(&shard).unwrap().count();
        }
    }
    n
}

fn gc_numbers(text: &str) -> (u64, u64) {
    let field = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k:?} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    (field("blocks removed:"), field("bytes freed:"))
}

/// Uploads `data` to `repo` with `digest` (monolithic PUT); the status.
fn upload(api: &Api, repo: &str, data: &[u8], digest: &str) -> u16 {
    let post = api.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], vec![]);
    assert_eq!(post.status, 202);
    let loc = post.header("location").expect("Location");
    let loc = loc.find("/v2/").map_or(loc, |i| &loc[i..]);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let path = format!("{loc}{sep}digest={digest}");
    api.request(
        "PUT",
        &path,
        &[("Content-Type", "application/octet-stream")],
        data.to_vec(),
    )
    .status
}

#[test]
fn disco_gc_frees_a_deleted_blob() {
    let mut a = embedded_registry(None);
    let api = Api::new(&a.url());
    let ipfs_dir = a.dir.join(".disco/ipfs");

    // Kept: a blob linked into a repository.
    let kept = oci::bytes(600_000, 1);
    let kept_digest = format!("sha256:{}", sha256_hex(&kept));
    assert_eq!(upload(&api, "gc/kept", &kept, &kept_digest), 201);
    // Deleted: an upload refused for its digest (imported at commit, then
    // removed with the upload).
    let gone = oci::bytes(3 * 262_144 + 1000, 2);
    let wrong = format!("sha256:{}", sha256_hex(b"not the content"));
    assert_eq!(upload(&api, "gc/gone", &gone, &wrong), 400);

    let kept_leaves = leaf_files(&ipfs_dir, &kept);
    let gone_leaves = leaf_files(&ipfs_dir, &gone);
    for f in kept_leaves.iter().chain(&gone_leaves) {
        assert!(f.is_file(), "{} not stored", f.display());
    }

    // Online: the running disco collects (POST /disco/v1/gc).
    let out = stdout_ok(&cli(&a, &["gc"]), "disco gc");
    let (removed, freed) = gc_numbers(&out);
    assert!(
        removed >= gone_leaves.len() as u64,
        "removed {removed}:\n{out}"
    );
    assert!(freed >= gone.len() as u64, "freed {freed}:\n{out}");
    for f in &gone_leaves {
        assert!(!f.exists(), "{} not collected", f.display());
    }
    for f in &kept_leaves {
        assert!(f.is_file(), "{} collected", f.display());
    }
    let b = api.get(&format!("/v2/gc/kept/blobs/{kept_digest}"));
    assert_eq!(b.status, 200);
    assert_eq!(b.body, kept);
    // Nothing changed since: a second collection frees nothing and the
    // store keeps exactly its blocks.
    let before = count_blocks(&ipfs_dir);
    let out = stdout_ok(&cli(&a, &["gc"]), "disco gc (again)");
    assert_eq!(gc_numbers(&out), (0, 0), "{out}");
    assert_eq!(count_blocks(&ipfs_dir), before);

    // --offline while the disco holds the store: refused, clearly.
    let out = cli(&a, &["gc", "--offline"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");

    // Stopped: `disco gc` opens the store itself; nothing reachable goes.
    a.stop();
    let out = stdout_ok(&cli(&a, &["gc", "--json"]), "disco gc (offline)");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["marked"].as_u64().unwrap() > 0, "{v}");
    for f in &kept_leaves {
        assert!(f.is_file(), "{} collected offline", f.display());
    }
    a.restart();
    let api = Api::new(&a.url());
    let b = api.get(&format!("/v2/gc/kept/blobs/{kept_digest}"));
    assert_eq!(b.status, 200);
    assert_eq!(b.body, kept);
}
