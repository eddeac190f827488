//! Crash safety: the registry is killed with SIGKILL in the middle of
//! pushes and restarted on the same storage. Afterwards nothing may be
//! corrupt or half-visible (every blob in storage and every blob the API
//! serves hashes to its digest; every manifest and tag resolves to a
//! complete image), interrupted uploads resume (or are cleanly restartable),
//! and pushing the same images again succeeds. A SIGTERM instead drains:
//! the request in flight completes and its upload survives the restart.
//!
//! The kill happens when a condition on observed traffic holds (enough
//! bytes in flight), never after a fixed delay; the invariants checked hold
//! whenever the kill lands.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::support::clients::Clients;
use crate::support::images::{self, OciLayout, RandomReader, TestImage};
use crate::support::oci_api::Api;
use crate::support::proxy::{Exchange, Proxy};
use crate::support::registry::{Kind, Registry};

const MIB: u64 = 1024 * 1024;

fn layout(image: TestImage) -> OciLayout {
    images::cached(image).unwrap_or_else(|e| panic!("building test image {}: {e}", image.name()))
}

/// Polls `cond` until it holds; panics (hang guard) after `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every `data` file under the storage's `blobs/` hashes to the digest its
/// path names. Returns how many were checked.
fn assert_stored_blobs_intact(storage: &Path) -> usize {
    let blobs = storage.join("docker/registry/v2/blobs/sha256");
    let mut n = 0;
    let Ok(prefixes) = std::fs::read_dir(&blobs) else {
        return 0;
    };
    for p in prefixes {
        let p = p.unwrap().path();
        for b in std::fs::read_dir(&p).unwrap() {
            let b = b.unwrap().path();
            let data = b.join("data");
            if !data.exists() {
                continue;
            }
            let hex = b.file_name().unwrap().to_string_lossy().to_string();
            let (digest, _) = images::sha256_file(&data).unwrap();
            assert_eq!(
                digest,
                format!("sha256:{hex}"),
                "corrupt blob in storage: {}",
                data.display()
            );
            n += 1;
        }
    }
    n
}

/// Repositories in storage (directories holding `_manifests`, `_layers` or
/// `_uploads`), as names relative to `repositories/`.
fn stored_repositories(storage: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut is_repo = false;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name == "_manifests" || name == "_layers" || name == "_uploads" {
                is_repo = true;
            } else if e.path().is_dir() {
                walk(&e.path(), base, out);
            }
        }
        if is_repo {
            out.push(
                dir.strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .to_string(),
            );
        }
    }
    let base = storage.join("docker/registry/v2/repositories");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

/// Hex digests linked in `<repo>/<sub>/sha256/<hex>/link`.
fn linked(storage: &Path, repo: &str, sub: &str) -> Vec<String> {
    let dir = storage
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join(sub)
        .join("sha256");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().join("link").exists())
        .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
        .collect()
}

/// Through the API, every manifest revision and tag of every repository
/// resolves to a manifest whose bytes hash to its digest and whose
/// referenced blobs and child manifests are all served intact; every linked
/// layer is served intact. Returns (manifests, blobs) checked.
fn assert_api_consistent(api: &Api, storage: &Path, kind: Kind) -> (usize, usize) {
    let mut manifests = 0;
    let mut blobs = 0;
    for repo in stored_repositories(storage) {
        let mut refs = linked(storage, &repo, "_manifests/revisions");
        let tags = api.get(&format!("/v2/{repo}/tags/list"));
        if tags.status == 200
            && let Some(t) = tags.json()["tags"].as_array()
        {
            refs.extend(t.iter().filter_map(|t| t.as_str().map(String::from)));
        }
        for r in refs {
            let m = api.manifest(&repo, &r);
            if r.starts_with("sha256:") && m.status == 404 {
                // A revision link without its blob is an unreferenced
                // leftover only if no tag points at it (checked via tags).
                continue;
            }
            if m.status == 404
                && kind == Kind::Distribution
                && distribution_torn_tag(storage, &repo, &r)
            {
                // Known Distribution defect: it writes link files in place,
                // so a kill can leave a listed tag with a missing or torn
                // link. disco must not (atomic writes).
                eprintln!("note: Distribution left tag {repo}:{r} listed but unresolvable");
                continue;
            }
            assert_eq!(
                m.status,
                200,
                "manifest {repo}:{r} unresolvable: {}",
                String::from_utf8_lossy(&m.body)
            );
            let digest = images::sha256_digest(&m.body);
            if r.starts_with("sha256:") {
                assert_eq!(digest, r, "manifest bytes of {repo}@{r}");
            }
            assert_eq!(
                m.header("docker-content-digest"),
                Some(digest.as_str()),
                "{repo}:{r}"
            );
            manifests += 1;
            let v = m.json();
            for child in v["manifests"].as_array().into_iter().flatten() {
                let d = child["digest"].as_str().unwrap();
                let c = api.manifest(&repo, d);
                assert_eq!(c.status, 200, "child manifest {d} of {repo}:{r}");
                assert_eq!(images::sha256_digest(&c.body), d);
            }
            let referenced = v["config"]["digest"].as_str().into_iter().chain(
                v["layers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l["digest"].as_str()),
            );
            for d in referenced {
                let b = api.blob(&repo, d, false);
                assert_eq!(
                    (b.status, b.digest.as_str()),
                    (200, d),
                    "blob {d} of {repo}:{r}"
                );
                blobs += 1;
            }
        }
        for d in linked(storage, &repo, "_layers") {
            let b = api.blob(&repo, &d, false);
            // A layer link may outlive nothing: if it is served, it is intact.
            if b.status == 200 {
                assert_eq!(b.digest, d, "linked blob {d} of {repo} served corrupt");
                blobs += 1;
            } else {
                assert_eq!(b.status, 404, "linked blob {d} of {repo}");
            }
        }
    }
    (manifests, blobs)
}

/// Whether Distribution's tag link for `repo:tag` is missing or torn.
fn distribution_torn_tag(storage: &Path, repo: &str, tag: &str) -> bool {
    let link = storage
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_manifests/tags")
        .join(tag)
        .join("current/link");
    match std::fs::read_to_string(link) {
        Err(_) => true,
        Ok(s) => s.strip_prefix("sha256:").is_none_or(|h| h.len() != 64),
    }
}

/// SIGKILL while three large pushes and a stream of small pushes run
/// concurrently; restart; check consistency; push everything again.
#[test]
fn sigkill_during_concurrent_pushes_leaves_storage_consistent() {
    let mut reg = Registry::start();
    let storage = reg.dir.join("storage");
    let proxy = Proxy::start(reg.addr);
    let clients = Arc::new(Clients::new(&[proxy.host()]));
    let large = layout(TestImage::Large);
    let small = layout(TestImage::Busybox);
    let host = proxy.host();

    let large_repos = ["crash/large-a", "crash/large-b", "crash/large-c"];
    let stop_small = Arc::new(AtomicBool::new(false));
    let small_done = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for repo in large_repos {
        let (c, src, dst) = (
            clients.clone(),
            large.reference(),
            format!("docker://{host}/{repo}:v1"),
        );
        threads.push(std::thread::spawn(move || {
            c.skopeo_result(&["copy", "--preserve-digests", &src, &dst])
                .status
                .success()
        }));
    }
    {
        let (c, src, host, stop, done) = (
            clients.clone(),
            small.reference(),
            host.clone(),
            stop_small.clone(),
            small_done.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 200 {
                let tag = format!("t{i}");
                let dst = format!("docker://{host}/crash/small:{tag}");
                if c.skopeo_result(&["copy", "--preserve-digests", &src, &dst])
                    .status
                    .success()
                {
                    done.lock().unwrap().push(tag);
                }
                i += 1;
            }
            true
        }));
    }

    // Kill once every large push has at least 24 MiB of layer data in a
    // PATCH still in flight (request sent, no response yet).
    let in_flight =
        |e: &Exchange| e.method == "PATCH" && e.status == 0 && e.req_body_bytes >= 24 * MIB;
    wait_for(
        "three large uploads in flight",
        Duration::from_secs(300),
        || {
            let log = proxy.log();
            large_repos.iter().all(|r| {
                log.iter()
                    .any(|e| in_flight(e) && e.path().starts_with(&format!("/v2/{r}/")))
            })
        },
    );
    reg.kill();
    stop_small.store(true, Ordering::Relaxed);
    let results: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        results[..3].iter().all(|ok| !ok),
        "large pushes were interrupted"
    );

    reg.restart();
    let api = Api::new(&reg.url());
    let stored = assert_stored_blobs_intact(&storage);
    let (manifests, _) = assert_api_consistent(&api, &storage, reg.kind);
    // Small pushes skopeo saw succeed before the kill are fully there.
    for tag in small_done.lock().unwrap().iter() {
        api.assert_same_as_layout("crash/small", tag, &small);
    }
    assert!(stored > 0, "blobs were stored before the kill");
    assert!(
        manifests >= small_done.lock().unwrap().len(),
        "every completed small push resolves"
    );

    // Push again: everything completes and reads back exactly.
    for repo in large_repos {
        clients.skopeo(&[
            "copy",
            "--preserve-digests",
            &large.reference(),
            &format!("docker://{host}/{repo}:v1"),
        ]);
        api.assert_same_as_layout(repo, "v1", &large);
    }
    clients.skopeo(&[
        "copy",
        "--preserve-digests",
        &small.reference(),
        &format!("docker://{host}/crash/small:again"),
    ]);
    api.assert_same_as_layout("crash/small", "again", &small);
    assert_stored_blobs_intact(&storage);
    assert_api_consistent(&api, &storage, reg.kind);
}

/// SIGTERM in the middle of a large push: the registry finishes the request
/// in flight (the 200 MiB layer's PATCH gets its 202), exits by itself, and
/// after a restart the upload session holds every byte of it and completes;
/// pushing the image again succeeds.
#[test]
fn sigterm_during_push_finishes_in_flight_request_and_keeps_upload() {
    let mut reg = Registry::start();
    let proxy = Proxy::start(reg.addr);
    let clients = Arc::new(Clients::new(&[proxy.host()]));
    let large = layout(TestImage::Large);
    let big = large
        .image()
        .layers
        .iter()
        .map(|l| l.desc.clone())
        .max_by_key(|d| d.size)
        .unwrap();
    let dst = format!("docker://{}/graceful/large:v1", proxy.host());
    let push = {
        let (c, src, dst) = (clients.clone(), large.reference(), dst.clone());
        std::thread::spawn(move || c.skopeo_result(&["copy", "--preserve-digests", &src, &dst]))
    };
    let big_patch = |log: &[Exchange]| -> Option<Exchange> {
        log.iter()
            .find(|e| e.method == "PATCH" && e.req_body_bytes >= 24 * MIB)
            .cloned()
    };
    wait_for(
        "the large layer's PATCH in flight",
        Duration::from_secs(300),
        || big_patch(&proxy.log()).is_some_and(|e| e.status == 0),
    );
    reg.terminate();
    wait_for(
        "the in-flight PATCH to be answered",
        Duration::from_secs(300),
        || big_patch(&proxy.log()).is_some_and(|e| e.status != 0),
    );
    let patch = big_patch(&proxy.log()).unwrap();
    assert_eq!(
        patch.status,
        202,
        "in-flight PATCH finished: {}\n{}",
        patch.summary(),
        proxy.log_text()
    );
    assert_eq!(patch.req_body_bytes, big.size);
    assert!(
        reg.wait_exit(Duration::from_secs(120)),
        "registry exits after draining"
    );
    let _ = push.join().unwrap();

    reg.restart();
    let base = reg.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let loc = patch
        .resp_header("location")
        .expect("PATCH Location")
        .to_string();
    let (status, have, loc) = rt.block_on(upload_status(&http, &base, &loc));
    assert_eq!(
        (status, have),
        (204, Some(big.size)),
        "upload session after graceful restart"
    );
    let url = on_base(&base, &loc);
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = rt
        .block_on(http.put(format!("{url}{sep}digest={}", big.digest)).send())
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "completing the drained upload");
    let api = Api::new(&base);
    let b = api.blob("graceful/large", &big.digest, false);
    assert_eq!(
        (b.status, b.digest.as_str(), b.size),
        (200, big.digest.as_str(), big.size)
    );

    clients.skopeo(&["copy", "--preserve-digests", &large.reference(), &dst]);
    api.assert_same_as_layout("graceful/large", "v1", &large);
    assert_stored_blobs_intact(&reg.dir.join("storage"));
}

/// Raw upload sessions across a SIGKILL: a session idle after an
/// acknowledged 8 MiB PATCH must resume exactly where it was; a session
/// killed mid-PATCH (chunked body in flight) must resume from the offset
/// the registry reports or be restartable; both then complete with exact
/// bytes.
#[test]
fn upload_sessions_survive_sigkill_and_resume() {
    let mut reg = Registry::start();
    let kind = reg.kind;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = reg.url();
    let total = 24 * MIB;
    let blob_a = random_bytes(0xC1, total);
    let blob_b = random_bytes(0xC2, total);

    // Session A: POST, one acknowledged 8 MiB PATCH, then idle.
    let loc_a = rt.block_on(start_upload(&http, &base, "crash/raw"));
    let loc_a = rt.block_on(patch(
        &http,
        &base,
        &loc_a,
        blob_a.slice(..8 * MIB as usize),
        Some(0),
    ));

    // Session B: POST, acknowledged 8 MiB, then a streamed PATCH that sends
    // 8 MiB more and stalls until the registry dies.
    let loc_b = rt.block_on(start_upload(&http, &base, "crash/raw"));
    let loc_b = rt.block_on(patch(
        &http,
        &base,
        &loc_b,
        blob_b.slice(..8 * MIB as usize),
        Some(0),
    ));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stalled = {
        let (http, url, sent) = (http.clone(), absolute(&base, &loc_b), sent.clone());
        let body = reqwest::Body::wrap_stream(tokio_stream_from(rx, sent));
        rt.spawn(async move {
            http.patch(url)
                .header("Content-Type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    // Feed 8 MiB (the channel holds 4 x 1 MiB, so at least 4 MiB are taken
    // by the client), then hold the stream open.
    let feeder = {
        let (tx, data) = (
            tx.clone(),
            blob_b.slice(8 * MIB as usize..16 * MIB as usize),
        );
        rt.spawn(async move {
            for chunk in data.chunks(MIB as usize) {
                if tx.send(Ok(Bytes::copy_from_slice(chunk))).await.is_err() {
                    return;
                }
            }
        })
    };
    wait_for("streamed PATCH in flight", Duration::from_secs(60), || {
        sent.load(Ordering::Relaxed) >= 4 * MIB || stalled.is_finished()
    });
    assert!(
        !stalled.is_finished(),
        "the registry answered a streamed PATCH before its body ended"
    );
    reg.kill();
    let stalled_result = rt.block_on(stalled).unwrap();
    assert!(
        !matches!(stalled_result, Ok(s) if s == 202),
        "the in-flight PATCH cannot have completed: {stalled_result:?}"
    );
    drop(tx);
    feeder.abort();

    reg.restart();
    let base = reg.url();

    // A: status reports exactly the acknowledged bytes; resume and finish.
    let (status, range, loc) = rt.block_on(upload_status(&http, &base, &loc_a));
    assert_eq!(
        status, 204,
        "idle upload session lost by restart ({kind:?})"
    );
    assert_eq!(range, Some(8 * MIB), "Range after restart");
    let loc = rt.block_on(patch(
        &http,
        &base,
        &loc,
        blob_a.slice(8 * MIB as usize..),
        Some(8 * MIB),
    ));
    rt.block_on(finish(&http, &base, &loc, &blob_a));

    // B: resume from what the registry reports, or restart the upload.
    let (status, range, loc) = rt.block_on(upload_status(&http, &base, &loc_b));
    match (status, range) {
        (204, Some(have)) => {
            eprintln!("interrupted session resumed at {have} of {total} bytes ({kind:?})");
            assert!(
                (8 * MIB..=16 * MIB).contains(&have),
                "B resumes at {have}: at least the acknowledged bytes"
            );
            let loc = rt.block_on(patch(
                &http,
                &base,
                &loc,
                blob_b.slice(have as usize..),
                Some(have),
            ));
            rt.block_on(finish(&http, &base, &loc, &blob_b));
        }
        (400 | 404 | 416, _) => {
            eprintln!("interrupted session not resumable ({status}); restarting ({kind:?})");
            let loc = rt.block_on(start_upload(&http, &base, "crash/raw"));
            let loc = rt.block_on(patch(&http, &base, &loc, blob_b.clone(), Some(0)));
            rt.block_on(finish(&http, &base, &loc, &blob_b));
        }
        other => panic!("upload status of the interrupted session: {other:?}"),
    }
    let api = Api::new(&base);
    for blob in [&blob_a, &blob_b] {
        let d = images::sha256_digest(blob);
        let b = api.blob("crash/raw", &d, false);
        assert_eq!(
            (b.status, b.digest.as_str(), b.size),
            (200, d.as_str(), total)
        );
    }
    assert_stored_blobs_intact(&reg.dir.join("storage"));
}

fn random_bytes(seed: u64, len: u64) -> Bytes {
    use std::io::Read;
    let mut v = Vec::with_capacity(len as usize);
    RandomReader::new(seed, len).read_to_end(&mut v).unwrap();
    Bytes::from(v)
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Rewrites an absolute Location onto the (restarted) registry's base.
fn on_base(base: &str, location: &str) -> String {
    match location
        .strip_prefix("http://")
        .and_then(|r| r.find('/').map(|i| &r[i..]))
    {
        Some(path) => format!("{base}{path}"),
        None => absolute(base, location),
    }
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location header")
        .to_string()
}

async fn start_upload(http: &reqwest::Client, base: &str, repo: &str) -> String {
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "POST upload");
    location(&r)
}

/// PATCH `data` (with `Content-Range: start-end` when `start` is given);
/// asserts 202 and the new `Range`; returns the next Location.
async fn patch(
    http: &reqwest::Client,
    base: &str,
    loc: &str,
    data: Bytes,
    start: Option<u64>,
) -> String {
    let len = data.len() as u64;
    let mut req = http
        .patch(on_base(base, loc))
        .header("Content-Type", "application/octet-stream")
        .body(data);
    if let Some(s) = start {
        req = req.header("Content-Range", format!("{s}-{}", s + len - 1));
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "PATCH {loc}: {:?}", r.headers());
    if let Some(s) = start {
        let range = r
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(range, format!("0-{}", s + len - 1), "Range after PATCH");
    }
    location(&r)
}

/// GET upload status: (status, bytes the registry has, next Location).
async fn upload_status(
    http: &reqwest::Client,
    base: &str,
    loc: &str,
) -> (u16, Option<u64>, String) {
    let r = http.get(on_base(base, loc)).send().await.unwrap();
    let status = r.status().as_u16();
    let have = r
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('-'))
        .and_then(|(_, end)| end.parse::<u64>().ok())
        .map(|end| end + 1);
    let next = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map_or(loc.to_string(), String::from);
    (status, have, next)
}

async fn finish(http: &reqwest::Client, base: &str, loc: &str, blob: &Bytes) {
    let digest = images::sha256_digest(blob);
    let url = on_base(base, loc);
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{url}{sep}digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "PUT ?digest: {:?}", r.headers());
    assert_eq!(
        r.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
        Some(digest.as_str())
    );
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    sent: Arc<std::sync::atomic::AtomicU64>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::poll_fn(move |cx| {
        let r = rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(Ok(b))) = &r {
            sent.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        r
    })
}
