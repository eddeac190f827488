//! Support for the content-addressed image tests: disco processes with
//! embedded IPFS nodes on 127.0.0.1 (peered through `/disco/v1/node`), a
//! small deterministic multi-layer image, and checks of pulled content.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::images::{self, OciLayout, TestImage};
use crate::support::oci_api::Api;
use crate::support::registry::{Kind, Options, Registry, free_port};

/// How a disco node is configured.
#[derive(Debug, Clone, Default)]
pub struct NodeOpts {
    /// Peers to bootstrap from (`/ip4/127.0.0.1/tcp/<port>/p2p/<id>`).
    pub bootstrap: Vec<String>,
    /// A `swarm.key` (private network); without one the node runs an
    /// open network, unless `private`.
    pub swarmkey: Option<PathBuf>,
    /// Keep disco's default: a private network with the node's own
    /// generated key.
    pub private: bool,
    /// `disco.clonetimeout` (default `60s`).
    pub clonetimeout: Option<String>,
    /// Fixed swarm port (default an ephemeral one).
    pub port: Option<u16>,
    /// Extra keys of the `disco:` section (indented by 2).
    pub disco: String,
    /// The `storage:` section body instead of the embedded node.
    pub storage: Option<String>,
    /// Loopback address the swarm listens on (default `127.0.0.1`).
    pub ip: Option<String>,
    /// Extra keys of `storage.ipfs.embedded` (one `key: value` a line).
    pub embedded: Vec<String>,
    /// Extra top-level YAML (e.g. an `auth:` section).
    pub top: String,
    /// `Authorization` the node's API client sends (with `auth`).
    pub authorization: Option<String>,
}

/// A disco process with an embedded IPFS node, its data under a temp dir
/// (kept across restarts), stopped when dropped.
pub struct Node {
    /// The registry process.
    pub reg: Registry,
    /// API client.
    pub api: Api,
    /// Metrics client (debug server).
    pub debug: Api,
    /// The data directory.
    pub dir: PathBuf,
    authorization: Option<String>,
    _temp: TempDir,
}

fn storage_yaml(dir: &Path, o: &NodeOpts) -> String {
    if let Some(s) = &o.storage {
        return s.clone();
    }
    let listen = format!(
        "/ip4/{}/tcp/{}",
        o.ip.as_deref().unwrap_or("127.0.0.1"),
        o.port.unwrap_or(0)
    );
    let mut s = format!(
        "  ipfs:\n    spooldirectory: {spool}\n    embedded:\n      path: {path}\n      listen: [{listen}]\n      mdns: false\n",
        spool = dir.join("spool").display(),
        path = dir.join("ipfs").display(),
    );
    if !o.bootstrap.is_empty() {
        s.push_str(&format!("      bootstrap: [{}]\n", o.bootstrap.join(", ")));
    }
    match &o.swarmkey {
        Some(k) => s.push_str(&format!("      swarmkey: {}\n", k.display())),
        // Peers meet on an open network unless a test gives a key.
        None if !o.private => s.push_str("      private: false\n"),
        None => {}
    }
    for line in &o.embedded {
        s.push_str(&format!("      {line}\n"));
    }
    s.push_str("  delete:\n    enabled: true\n");
    s
}

impl Node {
    /// Starts a node.
    pub fn start(o: NodeOpts) -> Node {
        let temp = tempfile::Builder::new()
            .prefix("disco-it-cid-")
            .tempdir()
            .expect("temp dir");
        let dir = temp.path().to_path_buf();
        let extra = format!(
            "disco:\n  clonetimeout: {}\n{}{}",
            o.clonetimeout.as_deref().unwrap_or("60s"),
            o.disco,
            o.top
        );
        let reg = Registry::start_in(
            &dir,
            Options {
                storage: Some(storage_yaml(&dir, &o)),
                extra,
                env: Vec::new(),
                kind: Kind::Disco,
            },
        );
        let api = match &o.authorization {
            Some(a) => Api::authorized(&reg.url(), a),
            None => Api::new(&reg.url()),
        };
        let debug = Api::new(&format!("http://{}", reg.debug_addr));
        Node {
            reg,
            api,
            debug,
            dir,
            authorization: o.authorization.clone(),
            _temp: temp,
        }
    }

    /// Starts several nodes at once (one thread each).
    pub fn start_many(opts: Vec<NodeOpts>) -> Vec<Node> {
        let handles: Vec<_> = opts
            .into_iter()
            .map(|o| std::thread::spawn(move || Node::start(o)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("node start"))
            .collect()
    }

    /// Restarts the process on the same data (new HTTP clients: pooled
    /// connections to the old process are gone).
    pub fn restart(&mut self) {
        self.reg.restart();
        self.api = match &self.authorization {
            Some(a) => Api::authorized(&self.reg.url(), a),
            None => Api::new(&self.reg.url()),
        };
        self.debug = Api::new(&format!("http://{}", self.reg.debug_addr));
    }

    /// `127.0.0.1:port` of the API.
    pub fn host(&self) -> String {
        self.reg.host()
    }

    /// The IPFS node's first address, with `/p2p/<id>`.
    pub fn peer_addr(&self) -> String {
        let r = self.api.get("/disco/v1/node");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        let addr = v["addresses"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no address in {v}"))
            .to_string();
        let id = v["peerId"].as_str().expect("peerId");
        assert!(addr.ends_with(&format!("/p2p/{id}")), "{addr} / {id}");
        addr
    }

    /// `GET /disco/v1/images/<digest>`: `(cid, whole answer)`; panics
    /// unless 200.
    pub fn published(&self, digest: &str) -> (String, Value) {
        let r = self.api.get(&format!("/disco/v1/images/{digest}"));
        assert_eq!(
            r.status,
            200,
            "images/{digest}: {}\n{}",
            String::from_utf8_lossy(&r.body),
            tail(&self.reg.log())
        );
        let v = r.json();
        (v["cid"].as_str().expect("cid").to_string(), v)
    }

    /// A counter or gauge from `/metrics` (0 if absent).
    pub fn metric(&self, name: &str) -> u64 {
        let r = self.debug.get("/metrics");
        assert_eq!(r.status, 200);
        String::from_utf8_lossy(&r.body)
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse::<f64>().ok())?
            })
            .map_or(0, |v| v as u64)
    }

    /// Waits (bounded) until a counter reaches `want`: a clone installs
    /// its repository just before it counts itself.
    #[track_caller]
    pub fn wait_metric(&self, name: &str, want: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let got = self.metric(name);
            if got == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} = {got}, want {want}\n{}",
                self.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The end of the log, for messages.
    pub fn log_tail(&self) -> String {
        tail(&self.reg.log()).to_string()
    }
}

/// The last 6000 characters of `s`.
pub fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(6000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Writes a Kubo-format swarm key with `seed`'s bytes.
pub fn swarm_key(dir: &Path, seed: u8) -> PathBuf {
    let path = dir.join(format!("swarm-{seed}.key"));
    let key: String = (0..32u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(31).wrapping_add(seed)))
        .collect();
    std::fs::write(&path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{key}\n")).unwrap();
    path
}

/// A free port for a node's swarm.
pub fn swarm_port() -> u16 {
    free_port()
}

fn gzip_tar(name: &str, data: &[u8]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(images::FIXED_MTIME);
    h.set_cksum();
    tar.append_data(&mut h, name, data).unwrap();
    let raw = tar.into_inner().unwrap();
    let diff_id = images::sha256_digest(&raw);
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// A three-layer OCI image (a 1.5 MiB pseudo-random file, so one layer
/// spans several IPFS blocks, and two small files) written as an OCI
/// layout in `dir`, tagged `latest`; `seed` varies the content.
pub fn multi_layer_image(dir: &Path, seed: u64) -> OciLayout {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = images::sha256_digest(data);
        std::fs::write(blobs.join(&d[7..]), data).unwrap();
        json!({"digest": d, "size": data.len()})
    };
    let files = [
        (
            "big.bin",
            disco::storage::testsuite::pattern(1_572_864 + 17, seed),
        ),
        (
            "etc/motd",
            format!("disco test image {seed}\n").into_bytes(),
        ),
        (
            "small.bin",
            disco::storage::testsuite::pattern(1000, seed + 1),
        ),
    ];
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (name, data) in &files {
        let (gz, diff_id) = gzip_tar(name, data);
        let mut d = put(&gz);
        d["mediaType"] = images::MT_LAYER_GZIP.into();
        layers.push(d);
        diff_ids.push(diff_id);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": images::CREATED,
        "config": {"Cmd": ["/big.bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut cd = put(&config);
    cd["mediaType"] = images::MT_CONFIG.into();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": images::MT_MANIFEST,
        "config": cd,
        "layers": layers,
    }))
    .unwrap();
    let mut md = put(&manifest);
    md["mediaType"] = images::MT_MANIFEST.into();
    md["annotations"] = json!({});
    md["annotations"][images::REF_NAME] = images::TAG.into();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": images::MT_INDEX,
            "manifests": [md],
        }))
        .unwrap(),
    )
    .unwrap();
    // The label only names the layout; the content is what was written.
    OciLayout::open(TestImage::Busybox, dir).expect("open generated layout")
}

/// The multi-arch index test image.
pub fn index_image() -> OciLayout {
    images::cached(TestImage::MultiArch).expect("build the multiarch test image")
}

/// Asserts the OCI layout `pulled` (what a client wrote) holds `want`'s
/// root and every one of its blobs, byte for byte.
pub fn assert_pulled_same(pulled: &Path, want: &OciLayout) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(want.root.digest.as_str()),
        "pulled root of {}",
        pulled.display()
    );
    for d in want.blobs() {
        let path = pulled.join("blobs/sha256").join(d.hex());
        let (digest, size) = images::sha256_file(&path)
            .unwrap_or_else(|e| panic!("blob {} not pulled: {e}", d.digest));
        assert_eq!((digest, size), (d.digest.clone(), d.size), "pulled blob");
    }
}
