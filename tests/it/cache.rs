//! The secondary cache over IPFS (issue 7), end to end with skopeo, ctr and
//! a real S3 server (moto) on 127.0.0.1: the original disco's purge
//! scenarios (IPFS lost → served from the cache and restored by the next
//! push; cache lost → refilled from IPFS), blob redirects to presigned S3
//! URLs and to a `redirect` base URL served by a plain HTTP server,
//! cache-only mode, and S3 faults (server down, intermittent errors, wrong
//! credentials).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::disco_cid::{pull_and_compare, push};
use crate::disco_support::*;
use crate::support::clients::Clients;
use crate::support::images::OciLayout;
use crate::support::registry::free_port;
use crate::support::s3server::{ACCESS_KEY, FaultProxy, S3Server, SECRET_KEY};

fn hex(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

/// The `storage:` body of an embedded node (under `dir`) with `cache`
/// (YAML of the cache section's body, indented for `cache:`) and `extra`
/// keys of `storage.ipfs`.
fn cached_storage(dir: &Path, cache: &str, extra: &str) -> String {
    format!(
        "  ipfs:\n    spooldirectory: {spool}\n    embedded:\n      path: {path}\n      listen: [/ip4/127.0.0.1/tcp/0]\n      mdns: false\n    cache:\n{cache}{extra}  delete:\n    enabled: true\n",
        spool = dir.join("spool").display(),
        path = dir.join("ipfs").display(),
    )
}

fn fs_cache(root: &Path) -> String {
    format!(
        "      filesystem:\n        rootdirectory: {}\n",
        root.display()
    )
}

fn s3_cache(endpoint: &str, bucket: &str, access: &str, secret: &str) -> String {
    format!(
        "      s3:\n        accesskey: {access}\n        secretkey: {secret}\n        region: us-east-1\n        regionendpoint: {endpoint}\n        forcepathstyle: true\n        bucket: {bucket}\n        secure: false\n        maxattempts: 4\n        rootdirectory: /cache\n"
    )
}

/// A node whose storage directory is a fixed temp dir (so the cache and
/// the IPFS store can be found and purged).
fn node_in(storage: String) -> Node {
    Node::start(NodeOpts {
        storage: Some(storage),
        ..NodeOpts::default()
    })
}

/// A cache root for a node started later, kept for the test.
fn temp_root(name: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix(&format!("disco-it-{name}-"))
        .tempdir()
        .unwrap();
    let p = t.path().to_path_buf();
    (t, p)
}

/// The path of a blob's `data` below a storage root.
fn blob_path(digest: &str) -> String {
    let h = hex(digest);
    format!("docker/registry/v2/blobs/sha256/{}/{h}/data", &h[..2])
}

/// Asserts the filesystem cache at `root` holds every blob of `img`, byte
/// for byte, waiting up to a minute (fills run in the background).
fn assert_cache_holds(root: &Path, img: &OciLayout) {
    wait_for_blobs(img, |digest| {
        let path = root.join(blob_path(digest));
        let got = crate::support::images::sha256_file(&path).ok();
        (got.map(|(d, _)| d), path.display().to_string())
    });
}

/// Waits up to a minute until `read` gives every blob of `img` with the
/// right digest; `read(digest)` returns what it found there (if
/// anything) and where it looked.
fn wait_for_blobs(img: &OciLayout, read: impl Fn(&str) -> (Option<String>, String)) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for d in img.blobs() {
        loop {
            let (got, place) = read(&d.digest);
            if got.as_deref() == Some(d.digest.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cache lacks blob {} at {place}",
                d.digest
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sum of a counter over all its label sets.
fn metric_sum(node: &Node, name: &str) -> u64 {
    let r = node.debug.get("/metrics");
    assert_eq!(r.status, 200);
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Stops `node`, runs `f`, starts it again on the same data.
fn with_node_stopped(node: &mut Node, f: impl FnOnce()) {
    node.reg.stop();
    f();
    node.restart();
}

/// The cache of a purge scenario, to purge and to inspect.
enum CacheStore {
    /// A filesystem cache rooted here.
    Fs(PathBuf),
    /// An S3 cache in this bucket (under `rootdirectory: /cache`).
    S3 {
        server: std::sync::Arc<S3Server>,
        bucket: String,
    },
}

impl CacheStore {
    /// The `cache:` section's YAML.
    fn yaml(&self) -> String {
        match self {
            CacheStore::Fs(root) => fs_cache(root),
            CacheStore::S3 { server, bucket } => {
                s3_cache(&server.endpoint(), bucket, ACCESS_KEY, SECRET_KEY)
            }
        }
    }

    /// Whether the file at `path` (below the storage root) is cached.
    fn has(&self, rt: &tokio::runtime::Runtime, path: &str) -> bool {
        match self {
            CacheStore::Fs(root) => root.join(path).is_file(),
            CacheStore::S3 { server, bucket } => rt
                .block_on(
                    server
                        .client()
                        .head_object()
                        .bucket(bucket)
                        .key(format!("cache/{path}"))
                        .send(),
                )
                .is_ok(),
        }
    }

    /// Deletes everything the cache holds.
    fn purge(&self, rt: &tokio::runtime::Runtime) {
        match self {
            CacheStore::Fs(root) => std::fs::remove_dir_all(root).unwrap(),
            CacheStore::S3 { server, bucket } => rt.block_on(async {
                let s3 = server.client();
                let mut pages = s3
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix("cache/")
                    .into_paginator()
                    .send();
                let mut keys = Vec::new();
                while let Some(page) = pages.next().await {
                    let page = page.unwrap();
                    keys.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key().map(String::from)),
                    );
                }
                assert!(!keys.is_empty(), "the S3 cache was empty");
                for key in keys {
                    s3.delete_object()
                        .bucket(bucket)
                        .key(key)
                        .send()
                        .await
                        .unwrap();
                }
            }),
        }
    }

    /// Asserts the cache holds every blob of `img`, byte for byte, waiting
    /// up to a minute (fills run in the background).
    fn assert_holds(&self, rt: &tokio::runtime::Runtime, img: &OciLayout) {
        let (server, bucket) = match self {
            CacheStore::Fs(root) => return assert_cache_holds(root, img),
            CacheStore::S3 { server, bucket } => (server, bucket),
        };
        let s3 = server.client();
        wait_for_blobs(img, |digest| {
            let key = format!("cache/{}", blob_path(digest));
            let got = rt.block_on(async {
                let o = s3.get_object().bucket(bucket).key(&key).send().await.ok()?;
                o.body.collect().await.ok().map(|b| b.into_bytes())
            });
            (got.map(|b| crate::support::images::sha256_digest(&b)), key)
        });
    }
}

/// The original disco's purge scenarios on an embedded node with `cache`.
fn purge_scenarios(cache: CacheStore, seed: u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), seed);
    let (_keep_data, data) = temp_root("fsdata");
    let mut node = node_in(cached_storage(&data, &cache.yaml(), ""));
    let ipfs_dir = data.join("ipfs");
    let clients = Clients::new(&[node.host()]);

    // Push: IPFS and the cache both hold the image.
    push(&clients, &img, &node.host(), "team/app", "v1");
    let (cid, _) = node.published(&img.root.digest);
    cache.assert_holds(&rt, &img);
    assert!(
        cache.has(
            &rt,
            &format!("docker/registry/v2/repositories/{cid}/disco.json")
        ),
        "the CID repository is mirrored"
    );

    // 1. IPFS loses everything: the cache serves the image by CID and by
    //    digest.
    with_node_stopped(&mut node, || {
        std::fs::remove_dir_all(&ipfs_dir).unwrap();
    });
    pull_and_compare(&clients, &node.host(), &cid, &img, "from-cache-cid");
    pull_and_compare(
        &clients,
        &node.host(),
        hex(&img.root.digest),
        &img,
        "from-cache-digest",
    );
    assert!(node.metric("disco_cache_hits_total") > 0);
    assert_eq!(node.metric("disco_clones_started_total"), 0);

    // 2. Pushing again restores IPFS: with the cache then purged, the pull
    //    can only come from IPFS.
    push(&clients, &img, &node.host(), "team/app", "v2");
    assert!(
        node.metric("disco_cache_restores_total") >= img.blobs().len() as u64,
        "{}",
        node.log_tail()
    );
    with_node_stopped(&mut node, || cache.purge(&rt));
    pull_and_compare(&clients, &node.host(), &cid, &img, "from-ipfs");
    // ... and the misses refill the cache.
    assert!(node.metric("disco_cache_misses_total") > 0);
    cache.assert_holds(&rt, &img);

    // 3. The cache is purged, the image pushed again: the push alone makes
    //    the cache whole again.
    with_node_stopped(&mut node, || cache.purge(&rt));
    push(&clients, &img, &node.host(), "team/app", "v3");
    cache.assert_holds(&rt, &img);
    pull_and_compare(&clients, &node.host(), &cid, &img, "after-repush");
}

#[test]
fn purge_scenarios_with_a_filesystem_cache() {
    let (_keep, cache_root) = temp_root("fscache");
    purge_scenarios(CacheStore::Fs(cache_root), 21);
}

#[test]
fn purge_scenarios_with_an_s3_cache() {
    let server = S3Server::shared();
    let bucket = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(server.create_bucket());
    purge_scenarios(CacheStore::S3 { server, bucket }, 28);
}

#[test]
fn s3_cache_redirects_pulls_to_presigned_urls() {
    let server = S3Server::shared();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bucket = rt.block_on(server.create_bucket());
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 22);
    let dir = tempfile::tempdir().unwrap();
    let node = node_in(cached_storage(
        dir.path(),
        &s3_cache(&server.endpoint(), &bucket, ACCESS_KEY, SECRET_KEY),
        "",
    ));
    let clients = Clients::new(&[node.host()]);
    push(&clients, &img, &node.host(), "team/app", "v1");
    let (cid, _) = node.published(&img.root.digest);

    // Every blob is in the bucket.
    let s3 = server.client();
    for d in img.blobs() {
        let key = format!("cache/{}", blob_path(&d.digest));
        let head = rt
            .block_on(s3.head_object().bucket(&bucket).key(&key).send())
            .unwrap_or_else(|e| panic!("{key} not in the bucket: {e:?}"));
        assert_eq!(head.content_length(), Some(d.size as i64));
    }

    // A blob GET answers 307 to a presigned URL; HEAD answers locally.
    let layer = &img.image().layers[0].desc;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{}/v2/{cid}/blobs/{}", node.reg.url(), layer.digest);
    let (status, location) = rt.block_on(async {
        let r = http.get(&url).send().await.unwrap();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), loc.unwrap_or_default())
    });
    assert_eq!(status, 307);
    assert!(location.starts_with(&server.endpoint()), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let fetched = rt.block_on(async {
        reqwest::get(&location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert_eq!(
        crate::support::images::sha256_digest(&fetched),
        layer.digest
    );
    let (status, len) = rt.block_on(async {
        let r = http.head(&url).send().await.unwrap();
        (
            r.status().as_u16(),
            r.headers()["content-length"].to_str().unwrap().to_string(),
        )
    });
    assert_eq!((status, len), (200, layer.size.to_string()));

    // skopeo and ctr pull through the redirects; the registry itself sends
    // next to nothing (manifests and redirect answers).
    let before = metric_sum(&node, "disco_http_response_bytes_total");
    pull_and_compare(&clients, &node.host(), &cid, &img, "redirected");
    let ctr = clients.start_containerd();
    ctr.pull(&format!("{}/{cid}:latest", node.host()), &[]);
    for d in img.blobs() {
        assert_eq!(ctr.content_digest(&d.digest), (d.digest.clone(), d.size));
    }
    let sent = metric_sum(&node, "disco_http_response_bytes_total") - before;
    let image_bytes: u64 = img.blobs().iter().map(|d| d.size).sum();
    assert!(
        sent < image_bytes / 10,
        "the registry sent {sent} bytes for two pulls of a {image_bytes}-byte image"
    );
}

/// `python3 -m http.server` over `root` on 127.0.0.1, killed on drop.
struct StaticServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl StaticServer {
    fn start(root: &Path, log: PathBuf) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        StaticServer { child, port, log }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn redirect_base_url_serves_blobs_from_the_cache_directory() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 23);
    let (_keep, cache_root) = temp_root("redir");
    std::fs::create_dir_all(&cache_root).unwrap();
    let web = StaticServer::start(&cache_root, work.path().join("http.log"));
    let dir = tempfile::tempdir().unwrap();
    let node = node_in(cached_storage(
        dir.path(),
        &fs_cache(&cache_root),
        &format!("    redirect: http://127.0.0.1:{}/\n", web.port),
    ));
    let clients = Clients::new(&[node.host()]);
    push(&clients, &img, &node.host(), "team/app", "v1");
    let (cid, _) = node.published(&img.root.digest);
    pull_and_compare(&clients, &node.host(), &cid, &img, "via-base-url");
    let log = std::fs::read_to_string(&web.log).unwrap();
    let image = img.image();
    for d in std::iter::once(&image.config).chain(image.layers.iter().map(|l| &l.desc)) {
        let h = hex(&d.digest);
        assert!(
            log.contains(&format!(
                "GET /docker/registry/v2/blobs/sha256/{}/{h}/data HTTP/1.1\" 200",
                &h[..2]
            )),
            "blob {} not fetched from the base URL:\n{log}",
            d.digest
        );
    }
}

#[test]
fn cache_only_mode_names_images_by_their_ipfs_cid() {
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 24);
    let (_keep, cache_root) = temp_root("cacheonly");
    let only = node_in(format!(
        "  ipfs:\n    cacheonly: true\n    cache:\n{}  delete:\n    enabled: true\n",
        fs_cache(&cache_root)
    ));
    let ipfs = Node::start(NodeOpts::default());
    let clients = Clients::new(&[only.host(), ipfs.host()]);
    push(&clients, &img, &only.host(), "team/app", "v1");
    push(&clients, &img, &ipfs.host(), "team/app", "v1");
    let (cid, info) = only.published(&img.root.digest);
    // The same image gets the same (resolvable) CID with IPFS or without.
    let (ipfs_cid, ipfs_info) = ipfs.published(&img.root.digest);
    assert_eq!(cid, ipfs_cid);
    assert_eq!(info["blobs"], ipfs_info["blobs"]);
    // No IPFS store was created.
    assert!(!only.dir.join("ipfs").exists());
    pull_and_compare(&clients, &only.host(), &cid, &img, "cacheonly-cid");
    pull_and_compare(
        &clients,
        &only.host(),
        hex(&img.root.digest),
        &img,
        "cacheonly-digest",
    );
    // A restart keeps it (everything lives in the cache).
    let mut only = only;
    only.restart();
    pull_and_compare(&clients, &only.host(), &cid, &img, "cacheonly-restart");
    // An unknown CID is a plain 404 (no IPFS to clone from).
    let r = only
        .api
        .get("/v2/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/manifests/latest");
    assert_eq!(r.status, 404);
}

#[test]
fn s3_faults_cache_down_intermittent_errors_and_wrong_credentials() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let work = tempfile::tempdir().unwrap();

    // Intermittent throttling and 5xx are retried: push and pull succeed.
    let server = S3Server::shared();
    let bucket = rt.block_on(server.create_bucket());
    let proxy = rt.block_on(FaultProxy::start(server.endpoint(), 4));
    let img = multi_layer_image(&work.path().join("img1"), 25);
    let dir = tempfile::tempdir().unwrap();
    // Served by the registry (a redirect would send the clients to the
    // faulty proxy: the presigned URLs name the configured endpoint).
    let node = node_in(
        cached_storage(
            dir.path(),
            &s3_cache(&proxy.endpoint(), &bucket, ACCESS_KEY, SECRET_KEY),
            "",
        ) + "  redirect:\n    disable: true\n",
    );
    let clients = Clients::new(&[node.host()]);
    with_log(&node, || {
        push(&clients, &img, &node.host(), "team/app", "v1")
    });
    let (cid, _) = node.published(&img.root.digest);
    with_log(&node, || {
        pull_and_compare(&clients, &node.host(), &cid, &img, "flaky")
    });
    assert!(proxy.injected() > 0, "no fault was injected");
    drop(node);

    // The S3 server dies: pushes fail cleanly (nothing published), pulls
    // of what IPFS holds go on.
    let mut own = S3Server::start();
    let bucket = rt.block_on(own.create_bucket());
    let dir = tempfile::tempdir().unwrap();
    let node = node_in(cached_storage(
        dir.path(),
        &s3_cache(&own.endpoint(), &bucket, ACCESS_KEY, SECRET_KEY),
        "",
    ));
    let clients = Clients::new(&[node.host()]);
    push(&clients, &img, &node.host(), "team/app", "v1");
    let (cid, _) = node.published(&img.root.digest);
    own.kill();
    let other = multi_layer_image(&work.path().join("img2"), 26);
    let dest = format!("docker://{}/team/other:v1", node.host());
    clients
        .skopeo_result(&["copy", &other.reference(), &dest])
        .failed();
    let r = node
        .api
        .get(&format!("/disco/v1/images/{}", other.root.digest));
    assert_eq!(r.status, 404, "half-published image");
    let r = node.api.get("/v2/team/other/manifests/v1");
    assert_eq!(r.status, 404);
    // A blob upload answers 503 UNAVAILABLE and stores nothing.
    let blob = b"a blob pushed while the cache is down".to_vec();
    let digest = crate::support::images::sha256_digest(&blob);
    let r = node.api.request(
        "POST",
        &format!("/v2/team/other/blobs/uploads/?digest={digest}"),
        &[("content-type", "application/octet-stream")],
        blob,
    );
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errors"][0]["code"], "UNAVAILABLE");
    let r = node.api.request(
        "HEAD",
        &format!("/v2/team/other/blobs/{digest}"),
        &[],
        Vec::new(),
    );
    assert_eq!(r.status, 404);
    pull_and_compare(&clients, &node.host(), &cid, &img, "cache-down");
    drop(node);

    // Wrong credentials: a clear error at start.
    let secured = S3Server::start();
    let bucket = rt.block_on(secured.create_bucket());
    rt.block_on(secured.enable_auth_with_user());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n{}http:\n  addr: 127.0.0.1:{}\n",
            cached_storage(
                dir.path(),
                &s3_cache(&secured.endpoint(), &bucket, "AKIAWRONG", "wrong-secret"),
                ""
            ),
            free_port()
        ),
    )
    .unwrap();
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_disco"))
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .env("HOME", dir.path()),
        Duration::from_secs(120),
    );
    assert!(!out.status.success(), "started with wrong S3 credentials");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("storage.ipfs.cache.s3"),
        "unclear error: {stderr}"
    );
}

/// Runs `f`; if it panics, panics again with the end of `node`'s log.
fn with_log<T>(node: &Node, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{msg}\n--- registry log\n{}", node.log_tail())
        }
    }
}

/// Runs `cmd` to completion, killing it (by PID) after `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "disco still running after {timeout:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn purge_scenarios_on_the_kubo_backend() {
    use disco::ipfs::Ipfs;
    use disco::ipfs::kubo::{KuboClient, KuboConfig};

    let daemon = crate::support::jsipfs::shared();
    let work = tempfile::tempdir().unwrap();
    let img = multi_layer_image(&work.path().join("img"), 27);
    let (_keep, cache_root) = temp_root("kubocache");
    let (_keep_data, data) = temp_root("kubodata");
    let root = format!("/disco-cache-{}", uuid::Uuid::new_v4().simple());
    let mut node = node_in(format!(
        "  ipfs:\n    rootdirectory: {root}\n    spooldirectory: {spool}\n    router:\n      nodes:\n        - url: {api}\n    cache:\n{cache}  delete:\n    enabled: true\n",
        spool = data.join("spool").display(),
        api = daemon.api,
        cache = fs_cache(&cache_root),
    ));
    let clients = Clients::new(&[node.host()]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kubo = KuboClient::new(
        &daemon.api,
        &KuboConfig {
            networktimeout: Duration::from_secs(10),
            ..KuboConfig::with_nodes([daemon.api.as_str()])
        },
    )
    .unwrap();

    push(&clients, &img, &node.host(), "team/app", "v1");
    let (cid, _) = node.published(&img.root.digest);
    assert_cache_holds(&cache_root, &img);

    // The registry's MFS tree is removed from the Kubo node: the cache
    // serves the image; the next push restores the tree.
    rt.block_on(kubo.files_rm(&root, true)).unwrap();
    pull_and_compare(&clients, &node.host(), &cid, &img, "kubo-from-cache");
    push(&clients, &img, &node.host(), "team/app", "v2");
    let layer = &img.image().layers[0].desc;
    let h = hex(&layer.digest);
    let st = rt
        .block_on(kubo.files_stat(&format!(
            "{root}/docker/registry/v2/blobs/sha256/{}/{h}/data",
            &h[..2]
        )))
        .expect("the blob is back in MFS");
    assert_eq!(st.size, layer.size);

    // The cache is removed: the pull comes from Kubo and refills it.
    with_node_stopped(&mut node, || {
        std::fs::remove_dir_all(&cache_root).unwrap();
    });
    pull_and_compare(&clients, &node.host(), &cid, &img, "kubo-from-ipfs");
    assert_cache_holds(&cache_root, &img);
}
