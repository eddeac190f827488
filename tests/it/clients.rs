//! Real clients against a running registry: skopeo, podman and containerd's
//! ctr push and pull the deterministic test images through a recording
//! proxy; the registry must serve back exactly what was pushed, and the
//! known request patterns of each client (see issue 2) must occur and
//! succeed.
//!
//! Runs against disco, or CNCF Distribution with
//! `DISCO_IT_REGISTRY=distribution`.

use crate::support::clients::Clients;
use crate::support::images::{self, OciLayout, TestImage};
use crate::support::oci_api::{Api, MT_DOCKER_LIST, MT_DOCKER_MANIFEST};
use crate::support::proxy::{Cut, Exchange, Proxy};
use crate::support::registry::Registry;

/// A registry, a recording proxy in front of it and confined clients that
/// trust both over plain HTTP.
struct Setup {
    proxy: Proxy,
    api: Api,
    clients: Clients,
    reg: Registry,
}

impl Setup {
    fn new() -> Self {
        let reg = Registry::start();
        let proxy = Proxy::start(reg.addr);
        let api = Api::new(&reg.url());
        let clients = Clients::new(&[proxy.host(), reg.host()]);
        Setup {
            proxy,
            api,
            clients,
            reg,
        }
    }

    /// `docker://<proxy>/<repo>:<tag>`.
    fn docker_ref(&self, repo: &str, tag: &str) -> String {
        format!("docker://{}/{repo}:{tag}", self.proxy.host())
    }

    /// `<proxy>/<repo>:<tag>` (podman, ctr).
    fn image_ref(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.proxy.host())
    }

    /// skopeo copy of a test layout to `repo:tag` keeping digests.
    fn skopeo_push(&self, layout: &OciLayout, repo: &str, tag: &str) {
        let dest = self.docker_ref(repo, tag);
        let src = layout.reference();
        let mut args = vec!["copy", "--preserve-digests"];
        if layout.is_index() {
            args.push("--all");
        }
        args.extend([src.as_str(), dest.as_str()]);
        self.clients.skopeo(&args);
    }

    /// Context for assertion messages: the proxy log and the registry log.
    fn context(&self) -> String {
        format!(
            "--- requests\n{}--- registry log (tail)\n{}",
            self.proxy.log_text(),
            tail(&self.reg.log(), 4000)
        )
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}

fn layout(image: TestImage) -> OciLayout {
    images::cached(image).unwrap_or_else(|e| panic!("building test image {}: {e}", image.name()))
}

/// `sha256:...` from a query value that may percent-encode the colon.
fn decode_digest(v: &str) -> String {
    v.replace("%3A", ":").replace("%3a", ":")
}

/// Exchanges of a blob upload session: the path of the final PUT.
fn upload_exchanges<'a>(log: &'a [Exchange], put: &Exchange) -> Vec<&'a Exchange> {
    log.iter().filter(|e| e.path() == put.path()).collect()
}

/// Asserts every blob in `digests` was uploaded to `repo` the way
/// containers/image does it: one PATCH carrying the whole blob (no
/// `Content-Range`), then a PUT `?digest=` with an empty body; the registry
/// answering 202 and 201 with the right `Docker-Content-Digest`.
fn assert_one_patch_then_empty_put(
    log: &[Exchange],
    repo: &str,
    blobs: &[images::Descriptor],
    ctx: &str,
) {
    let prefix = format!("/v2/{repo}/blobs/uploads/");
    for b in blobs {
        let puts: Vec<&Exchange> = log
            .iter()
            .filter(|e| {
                e.method == "PUT"
                    && e.path().starts_with(&prefix)
                    && e.query_param("digest").map(decode_digest).as_deref()
                        == Some(b.digest.as_str())
            })
            .collect();
        assert_eq!(puts.len(), 1, "one PUT for {}\n{ctx}", b.digest);
        let put = puts[0];
        assert_eq!(put.status, 201, "PUT {}\n{ctx}", b.digest);
        assert_eq!(
            put.req_body_bytes, 0,
            "containers/image's final PUT is empty\n{ctx}"
        );
        assert_eq!(
            put.resp_header("docker-content-digest"),
            Some(b.digest.as_str()),
            "{ctx}"
        );
        let session = upload_exchanges(log, put);
        let patches: Vec<_> = session.iter().filter(|e| e.method == "PATCH").collect();
        assert_eq!(patches.len(), 1, "one PATCH for {}\n{ctx}", b.digest);
        assert_eq!(
            patches[0].req_body_bytes, b.size,
            "the PATCH carries the whole blob\n{ctx}"
        );
        assert_eq!(patches[0].status, 202, "{ctx}");
        assert!(
            patches[0].req_header("content-range").is_none(),
            "no Content-Range\n{ctx}"
        );
    }
}

/// Asserts a pulled OCI layout holds exactly the source's root and blobs.
fn assert_pulled_layout_equal(pulled_dir: &std::path::Path, src: &OciLayout) {
    let pulled = OciLayout::open(src.image, pulled_dir).expect("open pulled layout");
    assert_eq!(pulled.root.digest, src.root.digest);
    assert_eq!(pulled.images, src.images);
    for d in src.blobs() {
        let got = images::sha256_file(&pulled.blob_path(&d.digest)).expect("pulled blob");
        assert_eq!(got, (d.digest.clone(), d.size), "pulled blob {}", d.digest);
    }
}

/// skopeo: push with `--preserve-digests`, inspect, list-tags, pull, delete.
fn skopeo_roundtrip(image: TestImage) {
    let s = Setup::new();
    let l = layout(image);
    let repo = format!("skopeo/{}", image.name());
    s.skopeo_push(&l, &repo, "v1");
    s.api.assert_same_as_layout(&repo, "v1", &l);
    // containers/image upload pattern, for every config and layer.
    let mut uploaded = Vec::new();
    for img in &l.images {
        uploaded.push(img.config.clone());
        uploaded.extend(img.layers.iter().map(|x| x.desc.clone()));
    }
    uploaded.sort_by(|a, b| a.digest.cmp(&b.digest));
    uploaded.dedup_by(|a, b| a.digest == b.digest);
    assert_one_patch_then_empty_put(&s.proxy.log(), &repo, &uploaded, &s.context());

    // inspect
    let raw = s
        .clients
        .skopeo(&["inspect", "--raw", &s.docker_ref(&repo, "v1")]);
    assert_eq!(
        raw.stdout.as_bytes(),
        l.read_blob(&l.root.digest).unwrap().as_slice()
    );
    let info = s
        .clients
        .skopeo(&["inspect", &s.docker_ref(&repo, "v1")])
        .json();
    if !l.is_index() {
        assert_eq!(info["Digest"], l.root.digest.as_str());
        let layers: Vec<&str> = info["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let want: Vec<&str> = l
            .image()
            .layers
            .iter()
            .map(|x| x.desc.digest.as_str())
            .collect();
        assert_eq!(layers, want);
    }
    assert_eq!(info["Architecture"], "amd64");

    // a second tag, then list-tags
    s.clients.skopeo(&[
        "copy",
        "--preserve-digests",
        "--all",
        &s.docker_ref(&repo, "v1"),
        &s.docker_ref(&repo, "v2"),
    ]);
    let tags = s
        .clients
        .skopeo(&["list-tags", &format!("docker://{}/{repo}", s.proxy.host())])
        .json();
    assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2"]));
    assert_eq!(s.api.tags(&repo), vec!["v1", "v2"]);

    // pull back into a fresh layout: identical bytes
    let out = s.clients.out_dir("pulled");
    let mut args = vec!["copy", "--preserve-digests"];
    if l.is_index() {
        args.push("--all");
    }
    let dst = format!("oci:{}:{}", out.display(), images::TAG);
    let src = s.docker_ref(&repo, "v1");
    args.extend([src.as_str(), dst.as_str()]);
    s.clients.skopeo(&args);
    assert_pulled_layout_equal(&out, &l);

    // delete (by tag: skopeo resolves it and deletes the manifest by digest)
    s.clients.skopeo(&["delete", &s.docker_ref(&repo, "v1")]);
    let del = s
        .proxy
        .log()
        .into_iter()
        .rfind(|e| e.method == "DELETE")
        .expect("a DELETE request");
    assert_eq!(
        del.path(),
        format!("/v2/{repo}/manifests/{}", l.root.digest),
        "{}",
        s.context()
    );
    assert_eq!(del.status, 202, "{}", s.context());
    assert_eq!(s.api.manifest(&repo, &l.root.digest).status, 404);
    assert_eq!(s.api.manifest(&repo, "v1").status, 404);
    s.clients
        .skopeo_result(&["inspect", "--raw", &s.docker_ref(&repo, "v1")])
        .failed();
}

#[test]
fn skopeo_push_inspect_tags_pull_delete_busybox() {
    skopeo_roundtrip(TestImage::Busybox);
}

#[test]
fn skopeo_push_inspect_tags_pull_delete_large() {
    skopeo_roundtrip(TestImage::Large);
}

#[test]
fn skopeo_push_inspect_tags_pull_delete_multiarch_index() {
    skopeo_roundtrip(TestImage::MultiArch);
}

/// containers/image compresses uncompressed layers on push unless told to
/// preserve digests; both results must be complete, consistent images.
#[test]
fn skopeo_recompresses_uncompressed_layers_unless_preserve_digests() {
    let s = Setup::new();
    let l = layout(TestImage::BusyboxUncompressed);
    let src_layer = &l.image().layers[0];
    assert_eq!(src_layer.desc.media_type, images::MT_LAYER_TAR);

    s.clients
        .skopeo(&["copy", &l.reference(), &s.docker_ref("recompressed", "v1")]);
    s.api
        .assert_image_matches_diff_ids("recompressed", "v1", &l);
    let m = s.api.manifest("recompressed", "v1").json();
    assert_eq!(
        m["layers"][0]["mediaType"],
        images::MT_LAYER_GZIP,
        "skopeo compressed the layer"
    );
    assert_ne!(m["layers"][0]["digest"], src_layer.desc.digest.as_str());

    s.skopeo_push(&l, "preserved", "v1");
    s.api.assert_same_as_layout("preserved", "v1", &l);
    let m = s.api.manifest("preserved", "v1").json();
    assert_eq!(m["layers"][0]["digest"], src_layer.desc.digest.as_str());
}

/// Copying between repositories of one registry mounts layers instead of
/// uploading them (the config is re-uploaded: containers/image reads it);
/// containers/image puts `from` before `mount` in the query.
#[test]
fn skopeo_cross_repo_copy_mounts_blobs_with_from_before_mount() {
    let s = Setup::new();
    let l = layout(TestImage::Busybox);
    s.skopeo_push(&l, "mount/src", "v1");
    s.proxy.clear_log();
    s.clients.skopeo(&[
        "copy",
        "--preserve-digests",
        &s.docker_ref("mount/src", "v1"),
        &s.docker_ref("mount/dst", "v1"),
    ]);
    s.api.assert_same_as_layout("mount/dst", "v1", &l);
    let log = s.proxy.log();
    let ctx = s.context();
    for b in l.image().layers.iter().map(|x| &x.desc) {
        let mounts: Vec<_> = log
            .iter()
            .filter(|e| {
                e.method == "POST"
                    && e.path() == "/v2/mount/dst/blobs/uploads/"
                    && e.query_param("mount").map(decode_digest).as_deref()
                        == Some(b.digest.as_str())
            })
            .collect();
        assert_eq!(mounts.len(), 1, "one mount request for {}\n{ctx}", b.digest);
        let m = mounts[0];
        assert_eq!(m.query_keys(), vec!["from", "mount"], "{ctx}");
        assert_eq!(
            m.query_param("from").map(|f| f.replace("%2F", "/")),
            Some("mount/src".into())
        );
        assert_eq!(m.status, 201, "mount answered 201 Created\n{ctx}");
        assert_eq!(
            m.resp_header("docker-content-digest"),
            Some(b.digest.as_str()),
            "{ctx}"
        );
        assert!(m.resp_header("location").is_some(), "{ctx}");
    }
    let uploaded: u64 = log
        .iter()
        .filter(|e| e.method == "PATCH")
        .map(|e| e.req_body_bytes)
        .sum();
    assert_eq!(
        uploaded,
        l.image().config.size,
        "only the config is uploaded\n{ctx}"
    );
}

/// podman (rootful, vfs, no daemon): load a test image, push it, remove it,
/// pull it back; the registry holds a consistent image whose layers are
/// the test image's, the pulled image has the same ID and digest, and (for
/// busybox) a container of it runs.
fn podman_push_pull(image: TestImage) {
    let s = Setup::new();
    let l = layout(image);
    let id = s.clients.podman_pull(&l.reference(), &[]);
    assert_eq!(
        id,
        l.image().config.hex(),
        "podman image ID is the config digest"
    );
    let repo = format!("podman/{}", image.name());
    let dest = s.image_ref(&repo, "v1");
    s.clients.podman_push(&id, &format!("docker://{dest}"), &[]);
    let digest = s.api.assert_image_matches_diff_ids(&repo, "v1", &l);
    // podman's push goes through containers/image too.
    let log = s.proxy.log();
    assert!(
        log.iter().any(|e| e.method == "PATCH" && e.status == 202),
        "{}",
        s.context()
    );
    assert!(
        log.iter()
            .filter(|e| e.method == "PUT")
            .all(|e| e.status == 201),
        "{}",
        s.context()
    );

    s.clients.podman(&["rmi", "--all", "--force"]);
    assert_eq!(s.clients.podman(&["images", "--quiet"]).stdout.trim(), "");
    let pulled = s.clients.podman_pull(&dest, &[]);
    assert_eq!(pulled, l.image().config.hex());
    let inspect = s.clients.podman(&["image", "inspect", &dest]).json();
    assert_eq!(inspect[0]["Digest"], digest.as_str(), "{}", s.context());
    let diff_ids: Vec<&str> = inspect[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let want: Vec<&str> = l
        .image()
        .layers
        .iter()
        .map(|x| x.diff_id.as_str())
        .collect();
    assert_eq!(diff_ids, want);
    if image == TestImage::Busybox {
        // The pulled image runs (runc, cgroupfs): its busybox is the host's.
        let out = s.clients.podman(&[
            "run",
            "--rm",
            "--network",
            "none",
            &dest,
            "sha256sum",
            "/bin/busybox",
        ]);
        let (want, _) = images::sha256_file(std::path::Path::new(images::BUSYBOX)).unwrap();
        let got = out.stdout.split_whitespace().next().unwrap_or_default();
        assert_eq!(format!("sha256:{got}"), want, "{}", out.stdout);
    }
}

#[test]
fn podman_push_pull_busybox() {
    podman_push_pull(TestImage::Busybox);
}

#[test]
fn podman_push_pull_large() {
    podman_push_pull(TestImage::Large);
}

/// podman pulls each platform of the two-platform index pushed by skopeo.
#[test]
fn podman_pulls_each_platform_of_index() {
    let s = Setup::new();
    let l = layout(TestImage::MultiArch);
    s.skopeo_push(&l, "podman/multiarch", "v1");
    let dest = s.image_ref("podman/multiarch", "v1");
    for (platform, arch) in [("linux/amd64", "amd64"), ("linux/arm64/v8", "arm64")] {
        let id = s.clients.podman_pull(&dest, &["--platform", platform]);
        assert_eq!(
            id,
            l.image_for(arch).unwrap().config.hex(),
            "{platform}\n{}",
            s.context()
        );
    }
}

/// containerd resolves a tag with HEAD, then fetches the manifest by digest.
fn assert_head_then_get_by_digest(log: &[Exchange], repo: &str, tag: &str, root: &str, ctx: &str) {
    let manifest_reqs: Vec<_> = log
        .iter()
        .filter(|e| e.path().starts_with(&format!("/v2/{repo}/manifests/")))
        .collect();
    let first = manifest_reqs
        .first()
        .unwrap_or_else(|| panic!("no manifest request\n{ctx}"));
    assert_eq!(
        (first.method.as_str(), first.path()),
        ("HEAD", format!("/v2/{repo}/manifests/{tag}").as_str()),
        "{ctx}"
    );
    assert_eq!(first.status, 200, "{ctx}");
    assert_eq!(
        first.resp_header("docker-content-digest"),
        Some(root),
        "{ctx}"
    );
    assert!(
        manifest_reqs.iter().any(|e| e.method == "GET"
            && e.path() == format!("/v2/{repo}/manifests/{root}")
            && e.status == 200),
        "GET by digest\n{ctx}"
    );
    assert!(
        !manifest_reqs
            .iter()
            .any(|e| e.method == "GET" && e.path().ends_with(&format!("/manifests/{tag}"))),
        "no GET by tag\n{ctx}"
    );
}

/// ctr: pull what skopeo pushed (HEAD, then GET by digest), content equal;
/// push it back under another name (containerd needs Docker-Content-Digest
/// on every upload response), and import+push the layout archive.
fn ctr_pull_push(image: TestImage) {
    let s = Setup::new();
    let l = layout(image);
    let ctr = s.clients.start_containerd();
    let repo = format!("ctr/{}", image.name());
    s.skopeo_push(&l, &repo, "v1");
    s.proxy.clear_log();

    let name = s.image_ref(&repo, "v1");
    let extra: &[&str] = if l.is_index() {
        &["--all-platforms"]
    } else {
        &[]
    };
    ctr.pull(&name, extra);
    assert_head_then_get_by_digest(&s.proxy.log(), &repo, "v1", &l.root.digest, &s.context());
    let ls = ctr.ctr(&["images", "ls"]).stdout;
    assert!(
        ls.lines()
            .any(|x| x.starts_with(&name) && x.contains(&l.root.digest)),
        "{ls}"
    );
    for d in l.blobs() {
        assert_eq!(
            ctr.content_digest(&d.digest),
            (d.digest.clone(), d.size),
            "ctr content {}",
            d.digest
        );
    }

    // Push under a new name (blobs may be mounted from the source repo).
    let pushed = s.image_ref(&format!("{repo}-pushed"), "v1");
    ctr.ctr(&["images", "tag", &name, &pushed]);
    s.proxy.clear_log();
    ctr.ctr(&["images", "push", "--plain-http", &pushed]);
    s.api
        .assert_same_as_layout(&format!("{repo}-pushed"), "v1", &l);
    assert_push_digests(&s.proxy.log(), &l, &s.context());

    // Import the OCI archive in another containerd namespace (no source
    // labels there: every blob is uploaded, none mounted).
    let archive = s.clients.root.join("image.tar");
    l.write_archive(&archive).expect("write archive");
    let base = format!("{}/{repo}-imported", s.proxy.host());
    let mut import = vec![
        "images",
        "import",
        "--snapshotter",
        "native",
        "--base-name",
        &base,
    ];
    if l.is_index() {
        import.push("--all-platforms");
    }
    let archive_s = archive.to_string_lossy().to_string();
    import.push(&archive_s);
    ctr.ctr_ns("disco-import", &import);
    let imported = format!("{base}:{}", images::TAG);
    s.proxy.clear_log();
    ctr.ctr_ns(
        "disco-import",
        &["images", "push", "--plain-http", &imported],
    );
    s.api
        .assert_same_as_layout(&format!("{repo}-imported"), images::TAG, &l);
    let log = s.proxy.log();
    assert_push_digests(&log, &l, &s.context());
    let mut uploads: Vec<String> = log
        .iter()
        .filter(|e| e.method == "PUT" && e.path().contains("/blobs/uploads/"))
        .filter_map(|e| e.query_param("digest").map(decode_digest))
        .collect();
    uploads.sort();
    let mut want: Vec<String> = l
        .blobs()
        .into_iter()
        .filter(|d| d.media_type != images::MT_MANIFEST && d.media_type != images::MT_INDEX)
        .map(|d| d.digest)
        .collect();
    want.sort();
    assert_eq!(
        uploads,
        want,
        "every config and layer uploaded once\n{}",
        s.context()
    );
}

/// Every upload completion, mount and manifest PUT answers 201 with the
/// `Docker-Content-Digest` containerd checks: the digest of the content,
/// which must be one of `layout`'s blobs.
fn assert_push_digests(log: &[Exchange], layout: &OciLayout, ctx: &str) {
    let known: Vec<String> = layout.blobs().into_iter().map(|d| d.digest).collect();
    for e in log
        .iter()
        .filter(|e| e.method == "PUT" || (e.method == "POST" && e.status == 201))
    {
        assert_eq!(e.status, 201, "{ctx}");
        let d = e
            .resp_header("docker-content-digest")
            .unwrap_or_else(|| panic!("no Docker-Content-Digest: {}\n{ctx}", e.summary()));
        assert!(
            known.iter().any(|k| k == d),
            "unknown digest {d}: {}\n{ctx}",
            e.summary()
        );
        if let Some(q) = e.query_param("digest").or(e.query_param("mount")) {
            assert_eq!(d, decode_digest(q), "{ctx}");
        } else if let Some(r) = e
            .path()
            .rsplit('/')
            .next()
            .filter(|r| r.starts_with("sha256:"))
        {
            assert_eq!(d, r, "{ctx}");
        }
    }
}

#[test]
fn ctr_pull_push_busybox() {
    ctr_pull_push(TestImage::Busybox);
}

#[test]
fn ctr_pull_push_large() {
    ctr_pull_push(TestImage::Large);
}

#[test]
fn ctr_pull_push_multiarch_index() {
    ctr_pull_push(TestImage::MultiArch);
}

/// An interrupted layer download is resumed by containerd with
/// `Range: bytes=N-`; the registry answers 206 from offset N and the
/// content ends up intact.
#[test]
fn ctr_resumes_interrupted_layer_download_with_range() {
    let s = Setup::new();
    let l = layout(TestImage::Large);
    let big = l
        .image()
        .layers
        .iter()
        .max_by_key(|x| x.desc.size)
        .unwrap()
        .desc
        .clone();
    let ctr = s.clients.start_containerd();
    s.skopeo_push(&l, "ctr/resume", "v1");
    s.proxy.clear_log();
    let cut_at = 64 * 1024 * 1024;
    s.proxy.cut_response(Cut {
        method: http::Method::GET,
        path_suffix: format!("/blobs/{}", big.digest),
        after_bytes: cut_at,
        times: 1,
    });
    let name = s.image_ref("ctr/resume", "v1");
    let first = ctr.pull_result(&name, &[]);
    if !first.status.success() {
        ctr.pull(&name, &[]);
    }
    let ctx = s.context();
    let gets: Vec<_> = s
        .proxy
        .log()
        .into_iter()
        .filter(|e| e.method == "GET" && e.path().ends_with(&big.digest))
        .collect();
    assert!(gets.len() >= 2, "the cut download was retried\n{ctx}");
    let resumed: Vec<_> = gets
        .iter()
        .filter(|e| e.req_header("range").is_some())
        .collect();
    assert!(!resumed.is_empty(), "containerd resumed with Range\n{ctx}");
    for e in resumed {
        let range = e.req_header("range").unwrap();
        let start: u64 = range
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("Range is bytes=N-: {range}\n{ctx}"));
        assert!(
            start > 0 && start <= cut_at,
            "resumes from what it had: {start}\n{ctx}"
        );
        assert_eq!(e.status, 206, "{ctx}");
        let want = format!("bytes {start}-{}/{}", big.size - 1, big.size);
        assert_eq!(e.resp_header("content-range"), Some(want.as_str()), "{ctx}");
    }
    assert_eq!(
        ctr.content_digest(&big.digest),
        (big.digest.clone(), big.size)
    );
}

/// skopeo converts to Docker schema 2 (`--format v2s2`): an image and a
/// manifest list; the registry serves them with Docker media types, and
/// podman and ctr pull them.
#[test]
fn docker_schema2_image_and_manifest_list_pull_with_podman_and_ctr() {
    let s = Setup::new();
    let bb = layout(TestImage::Busybox);
    let multi = layout(TestImage::MultiArch);
    s.clients.skopeo(&[
        "copy",
        "--format",
        "v2s2",
        &bb.reference(),
        &s.docker_ref("docker/busybox", "v1"),
    ]);
    s.clients.skopeo(&[
        "copy",
        "--all",
        "--format",
        "v2s2",
        &multi.reference(),
        &s.docker_ref("docker/multi", "v1"),
    ]);

    let m = s.api.manifest("docker/busybox", "v1");
    assert_eq!(
        m.header("content-type"),
        Some(MT_DOCKER_MANIFEST),
        "{}",
        s.context()
    );
    assert_eq!(m.json()["mediaType"], MT_DOCKER_MANIFEST);
    let bb_digest = s
        .api
        .assert_image_matches_diff_ids("docker/busybox", "v1", &bb);
    let m = s.api.manifest("docker/multi", "v1");
    assert_eq!(
        m.header("content-type"),
        Some(MT_DOCKER_LIST),
        "{}",
        s.context()
    );
    let multi_digest = s
        .api
        .assert_image_matches_diff_ids("docker/multi", "v1", &multi);

    let id = s
        .clients
        .podman_pull(&s.image_ref("docker/busybox", "v1"), &[]);
    assert_eq!(id, bb.image().config.hex());
    let id = s.clients.podman_pull(
        &s.image_ref("docker/multi", "v1"),
        &["--platform", "linux/arm64/v8"],
    );
    assert_eq!(id, multi.image_for("arm64").unwrap().config.hex());

    let ctr = s.clients.start_containerd();
    for (repo, digest) in [
        ("docker/busybox", &bb_digest),
        ("docker/multi", &multi_digest),
    ] {
        let name = s.image_ref(repo, "v1");
        ctr.pull(&name, &[]);
        let ls = ctr.ctr(&["images", "ls"]).stdout;
        assert!(
            ls.lines()
                .any(|x| x.starts_with(&name) && x.contains(digest.as_str())),
            "{ls}"
        );
    }
}
