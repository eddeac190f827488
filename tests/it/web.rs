//! The web page at `/`, checked in a real browser: headless Debian
//! Chromium driven over WebDriver (`support/webdriver.rs`) loads the pages
//! of a disco with pushed images and reads what they show; security
//! headers and the session cookie's scope are checked over HTTP.
//!
//! `DISCO_WEB_SCREENSHOTS=1` writes the screenshots to `docs/web-*.png`
//! (the ones the README shows); otherwise to the test's temp dir.

use std::path::PathBuf;

use crate::auth_support::{htpasswd_file, offline_storage, start_with_auth};
use crate::support::images::{self, OciLayout, TestImage};
use crate::support::oci::{Desc, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, bytes, oci_manifest_ext};
use crate::support::oci_api::Api;
use crate::support::registry::{Kind, Options, Registry};
use crate::support::webdriver::{self, Browser};

/// A hostile string: markup, quotes and an ampersand.
const HOSTILE: &str = "<script>alert(\"x\")</script><img src=x onerror=alert(1)> & 'q'";

fn skip() -> bool {
    if !webdriver::available() {
        eprintln!("skipped: chromium and chromedriver are not installed (tests/deps/apt-web.txt)");
        return true;
    }
    false
}

/// Pushes a blob with a monolithic upload.
fn push_blob(api: &Api, repo: &str, data: &[u8]) {
    let r = api.request(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        Vec::new(),
    );
    assert_eq!(
        r.status,
        202,
        "start upload: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    let loc = r.header("location").expect("Location").to_string();
    let path = match loc.find("/v2/") {
        Some(i) => loc[i..].to_string(),
        None => loc,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let digest = images::sha256_digest(data);
    let r = api.request(
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        data.to_vec(),
    );
    assert_eq!(
        r.status,
        201,
        "finish upload: {:?}",
        String::from_utf8_lossy(&r.body)
    );
}

/// Pushes a manifest; returns the `Disco-Cid` header.
fn push_manifest(api: &Api, repo: &str, reference: &str, mt: &str, body: &[u8]) -> Option<String> {
    let r = api.request(
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", mt)],
        body.to_vec(),
    );
    assert_eq!(
        r.status,
        201,
        "push manifest: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    r.header("disco-cid").map(str::to_string)
}

/// Pushes a test layout to `repo:tag`; returns its CID.
fn push_layout(api: &Api, layout: &OciLayout, repo: &str, tag: &str) -> Option<String> {
    for img in &layout.images {
        push_blob(api, repo, &layout.read_blob(&img.config.digest).unwrap());
        for l in &img.layers {
            push_blob(
                api,
                repo,
                &std::fs::read(layout.blob_path(&l.desc.digest)).unwrap(),
            );
        }
        if layout.is_index() {
            let m = layout.read_blob(&img.manifest.digest).unwrap();
            push_manifest(
                api,
                repo,
                &img.manifest.digest,
                &img.manifest.media_type,
                &m,
            );
        }
    }
    let root = layout.read_blob(&layout.root.digest).unwrap();
    push_manifest(api, repo, tag, &layout.root.media_type, &root)
}

/// Pushes a small image whose config and annotations hold [`HOSTILE`],
/// with a referrer whose annotation does too; returns the image digest.
fn push_hostile(api: &Api, repo: &str) -> String {
    let env = serde_json::to_string(&format!("NOTE={HOSTILE}")).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":[{env}],"Cmd":[{}]}},"rootfs":{{"type":"layers","diff_ids":[]}},"history":[{{"created_by":{}}}]}}"#,
        serde_json::to_string(HOSTILE).unwrap(),
        serde_json::to_string(HOSTILE).unwrap()
    )
    .into_bytes();
    let layer = bytes(3000, 7);
    push_blob(api, repo, &config);
    push_blob(api, repo, &layer);
    let ann = serde_json::json!({ "org.example.note": HOSTILE }).to_string();
    let m = oci_manifest_ext(
        &Desc::of(OCI_CONFIG, &config),
        &[Desc::of(OCI_LAYER, &layer)],
        None,
        None,
        Some(&ann),
    );
    push_manifest(api, repo, "v1", OCI_MANIFEST, &m);
    let subject = Desc::of(OCI_MANIFEST, &m);
    let sig_cfg = br#"{"signer":"web-test"}"#.to_vec();
    push_blob(api, repo, &sig_cfg);
    let sig = oci_manifest_ext(
        &Desc::of("application/vnd.example.sig.config.v1+json", &sig_cfg),
        &[Desc::of(OCI_LAYER, &layer)],
        Some("application/vnd.example.signature.v1"),
        Some(&subject),
        Some(&ann),
    );
    let sig_digest = images::sha256_digest(&sig);
    push_manifest(api, repo, &sig_digest, OCI_MANIFEST, &sig);
    subject.digest
}

fn screenshot_dir(reg: &Registry) -> PathBuf {
    match std::env::var("DISCO_WEB_SCREENSHOTS").as_deref() {
        Ok("1") => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs"),
        _ => reg.dir.join("screenshots"),
    }
}

fn start_open(dir: &std::path::Path) -> Registry {
    Registry::start_in(
        dir,
        Options {
            storage: Some(offline_storage(dir)),
            extra: String::new(),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    )
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("disco-it-web-")
        .tempdir()
        .unwrap()
}

/// Without access control: the repository list (search, paging, digest
/// and CID names hidden), tags with digests, sizes and platforms, an image
/// with config, layers, CIDs, referrers and pull commands, the node page,
/// hostile strings shown as text, and the security headers.
#[test]
fn web_pages_show_repositories_tags_images_and_the_node() {
    if skip() {
        return;
    }
    let temp = temp_dir();
    let reg = start_open(temp.path());
    let base = reg.url();
    let host = reg.addr.to_string();
    let api = Api::new(&base);
    let busybox = images::cached(TestImage::Busybox).unwrap();
    let multi = images::cached(TestImage::MultiArch).unwrap();
    let cid = push_layout(&api, &busybox, "library/busybox", "latest").expect("Disco-Cid");
    push_layout(&api, &busybox, "library/busybox", "1.36");
    push_layout(&api, &multi, "tools/multi", "v1");
    let hostile = push_hostile(&api, "hostile/app");
    for i in 0..3 {
        let cfg = crate::support::oci::config(100 + i);
        push_blob(&api, &format!("extra/r{i}"), &cfg);
        let m = oci_manifest_ext(&Desc::of(OCI_CONFIG, &cfg), &[], None, None, None);
        push_manifest(&api, &format!("extra/r{i}"), "t", OCI_MANIFEST, &m);
    }

    // Security headers on pages and assets; none of the cookie business on /v2/.
    for path in [
        "/",
        "/repo?name=library/busybox",
        "/node",
        "/login",
        "/static/app.js",
    ] {
        let r = api.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("content-security-policy").unwrap_or_default(),
            disco::web::CSP,
            "{path}"
        );
        assert!(
            r.header("content-security-policy")
                .unwrap()
                .contains("script-src 'self'")
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
    }
    let page = String::from_utf8(api.get("/").body).unwrap();
    assert!(
        !page.contains("<script>") && !page.contains("onclick"),
        "no inline script"
    );
    assert_eq!(api.get("/v2/").status, 200);
    assert_eq!(
        api.get("/?q=%3Cscript%3E").status,
        200,
        "a hostile search is answered"
    );

    let b = Browser::start(1280, 900);
    let shots = screenshot_dir(&reg);

    // Repositories: normal names only, sorted; search; paging.
    b.goto(&format!("{base}/"));
    assert_eq!(b.title(), "Repositories · disco");
    let repos = b.texts("#repos tbody td");
    assert_eq!(
        repos,
        [
            "extra/r0",
            "extra/r1",
            "extra/r2",
            "hostile/app",
            "library/busybox",
            "tools/multi"
        ]
    );
    b.save_screenshot(&shots, "web-repositories.png");
    b.goto(&format!("{base}/?all=1"));
    let all = b.texts("#repos tbody td");
    assert!(
        all.contains(&cid),
        "CID repositories listed with all=1: {all:?}"
    );
    assert!(all.contains(&busybox.root.hex().to_string()));
    b.goto(&format!("{base}/?q=busy"));
    assert_eq!(b.texts("#repos tbody td"), ["library/busybox"]);
    b.goto(&format!("{base}/?n=4"));
    assert_eq!(
        b.texts("#repos tbody td"),
        ["extra/r0", "extra/r1", "extra/r2", "hostile/app"]
    );
    b.click(&b.find("#next"));
    assert_eq!(
        b.texts("#repos tbody td"),
        ["library/busybox", "tools/multi"]
    );
    assert!(b.all("#next").is_empty(), "last page has no next link");
    // A hostile search term is shown as typed, not run.
    b.goto(&format!("{base}/"));
    let search = b.find("input[name=q]");
    b.type_text(&search, HOSTILE);
    b.click(&b.find("form.search button"));
    assert!(b.text(&b.find("#count")).contains(HOSTILE));
    assert_eq!(b.all("script").len(), 1, "only the page's own script");

    // Tags.
    b.goto(&format!("{base}/"));
    b.click(&b.find("#repos a[href='/repo?name=library%2Fbusybox']"));
    assert!(
        b.url().ends_with("/repo?name=library%2Fbusybox"),
        "{}",
        b.url()
    );
    assert_eq!(b.all("#tags tbody tr").len(), 2);
    let cells = b.texts("#tags tbody td");
    assert_eq!(cells[0], "1.36");
    assert_eq!(cells[1], busybox.root.digest);
    let size = busybox.blobs().iter().map(|d| d.size).sum::<u64>();
    assert_eq!(cells[2], disco::web::html::size(size));
    assert_eq!(cells[3], busybox.root.media_type);
    // The IPFS store keeps no modification times: no pushed time.
    assert_eq!(cells[5], "—");
    assert_eq!(cells[6], "latest");
    b.save_screenshot(&shots, "web-tags.png");
    b.goto(&format!("{base}/repo?name=tools/multi"));
    let cells = b.texts("#tags tbody td");
    assert_eq!(cells[0], "v1");
    assert_eq!(cells[1], multi.root.digest);
    let platforms = b.texts("#tags tbody td .tag");
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);

    // An image: digest, CID, pull commands, config, layers with CIDs.
    b.goto(&format!("{base}/repo?name=library/busybox"));
    b.click(&b.find("#tags tbody tr:nth-child(2) td:first-child a"));
    assert_eq!(b.text(&b.find("#digest")), busybox.root.digest);
    assert_eq!(b.text(&b.find("#cid")), cid);
    let pulls: Vec<String> = b
        .all("#pull button.copy")
        .iter()
        .filter_map(|e| b.attr(e, "data-copy"))
        .collect();
    for want in [
        format!("docker pull {host}/library/busybox:latest"),
        format!("docker pull {host}/library/busybox@{}", busybox.root.digest),
        format!("docker pull {host}/{cid}"),
        format!("podman pull {host}/library/busybox:latest"),
        format!("podman pull {host}/{cid}"),
    ] {
        assert!(pulls.contains(&want), "{want} in {pulls:?}");
    }
    let config = b.text(&b.find("#config"));
    assert!(config.contains("linux/amd64"), "{config}");
    let layer = &busybox.image().layers[0].desc;
    let cells = b.texts("#layers tbody td");
    assert_eq!(cells[1], layer.digest);
    assert_eq!(cells[2], disco::web::html::size(layer.size));
    let info = api
        .get(&format!("/disco/v1/images/{}", busybox.root.digest))
        .json();
    let layer_cid = info["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["digest"] == layer.hex() || x["digest"] == layer.digest.as_str())
        .and_then(|x| x["cid"].as_str())
        .expect("layer CID")
        .to_string();
    assert_eq!(cells[3], layer_cid);
    assert!(b.text(&b.find("#disco-json")).contains(&layer_cid));
    assert!(b.text(&b.find("#manifest")).contains(&layer.digest));
    b.save_screenshot(&shots, "web-image.png");

    // An index links its platform manifests.
    b.goto(&format!("{base}/image?name=tools/multi&ref=v1"));
    let children = b.texts("#manifests tbody td");
    assert!(
        children.contains(&"linux/arm64/v8".to_string()),
        "{children:?}"
    );
    assert!(
        children.contains(&multi.images[0].manifest.digest),
        "{children:?}"
    );

    // Hostile strings are text: in the config, history, annotations and
    // the referrer's annotations; no script runs (an alert would fail the
    // next WebDriver command).
    b.goto(&format!("{base}/image?name=hostile/app&ref=v1"));
    assert_eq!(b.text(&b.find("#digest")), hostile);
    assert_eq!(b.all("script").len(), 1);
    assert!(b.all("img").is_empty(), "no injected element");
    assert_eq!(b.text(&b.find("#annotations dd")), HOSTILE);
    assert!(
        b.text(&b.find("#config"))
            .contains(&format!("NOTE={HOSTILE}"))
    );
    assert_eq!(
        b.text(&b.find("#history tbody td:nth-child(2) code")),
        HOSTILE
    );
    let referrer = b.texts("#referrers tbody td");
    assert_eq!(referrer[0], "application/vnd.example.signature.v1");
    assert_eq!(referrer[3], format!("org.example.note={HOSTILE}"));
    assert!(b.source().contains("&lt;script&gt;"));

    // The node.
    b.goto(&format!("{base}/node"));
    let peer = b.text(&b.find("#peer-id"));
    let node = api.get("/disco/v1/node").json();
    assert_eq!(peer, node["peerId"].as_str().unwrap());
    let facts = b.text(&b.find("#node"));
    assert!(facts.contains("offline"), "{facts}");
    assert!(facts.contains("Store size"), "{facts}");
    assert!(b.text(&b.find("main")).contains("Clones in progress (0)"));
    b.save_screenshot(&shots, "web-node.png");
}

/// With htpasswd: pages send to the sign-in form; a user sees only the
/// repositories they may pull; another repository's pages and the node
/// page are refused; the session cookie is HttpOnly and SameSite=Strict,
/// works on web pages and never on `/v2/`; signing out ends it.
#[test]
fn web_login_and_access_control() {
    if skip() {
        return;
    }
    let temp = temp_dir();
    let dir = temp.path();
    let htpasswd = htpasswd_file(dir, &[("root", "root-pw"), ("alice", "alice-pw")]);
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: web\n    path: {}\n  access:\n    admins: [root]\n    rules:\n      - repositories: [\"team/**\"]\n        users: [alice]\n        actions: [pull]\n",
        htpasswd.display()
    );
    let reg = start_with_auth(dir, &auth);
    let base = reg.url();
    let root = Api::basic(&base, "root", "root-pw");
    let busybox = images::cached(TestImage::Busybox).unwrap();
    push_layout(&root, &busybox, "team/app", "latest");
    push_layout(&root, &busybox, "secret/db", "latest");

    let anon = Api::new(&base);
    let r = anon.get("/");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=%2F"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        anon.get("/static/style.css").status,
        200,
        "assets are public"
    );
    assert_eq!(anon.get("/login").status, 200);

    let b = Browser::start(1280, 900);
    b.goto(&format!("{base}/repo?name=team/app"));
    assert!(b.url().contains("/login?next="), "{}", b.url());
    // A wrong password.
    b.type_text(&b.find("#user"), "alice");
    b.type_text(&b.find("#password"), "wrong");
    b.click(&b.find("#signin"));
    assert_eq!(b.text(&b.find("#login-error")), "Wrong user or password.");
    // The right one: back to the page asked for.
    b.type_text(&b.find("#user"), "alice");
    b.type_text(&b.find("#password"), "alice-pw");
    b.click(&b.find("#signin"));
    assert!(b.url().ends_with("/repo?name=team/app"), "{}", b.url());
    assert_eq!(b.texts("#tags tbody td:first-child"), ["latest"]);
    let cookies = b.cookies();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "disco_session")
        .expect("session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    let value = session["value"].as_str().unwrap().to_string();

    // Only what alice may pull.
    b.goto(&format!("{base}/"));
    assert_eq!(b.texts("#repos tbody td"), ["team/app"]);
    // The image's digest and CID names are readable through team/app.
    b.goto(&format!("{base}/?all=1"));
    let all = b.texts("#repos tbody td");
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all.contains(&busybox.root.hex().to_string()) && !all.contains(&"secret/db".to_string())
    );
    assert_eq!(b.text(&b.find("header .user span")), "alice");
    b.goto(&format!("{base}/image?name=secret/db&ref=latest"));
    assert_eq!(b.title(), "Forbidden · disco");
    b.goto(&format!("{base}/node"));
    assert_eq!(b.title(), "Forbidden · disco");

    // The cookie opens web pages only.
    let cookie = format!("disco_session={value}");
    let r = anon.request("GET", "/", &[("Cookie", cookie.as_str())], Vec::new());
    assert_eq!(r.status, 200);
    for path in [
        "/v2/",
        "/v2/_catalog",
        "/v2/team/app/tags/list",
        "/disco/v1/node",
    ] {
        let r = anon.request("GET", path, &[("Cookie", cookie.as_str())], Vec::new());
        assert_eq!(r.status, 401, "{path} with the session cookie");
    }

    // Signing out ends the session.
    b.goto(&format!("{base}/"));
    b.click(&b.find("header .user button"));
    assert!(b.url().ends_with("/login"), "{}", b.url());
    let r = anon.request("GET", "/", &[("Cookie", cookie.as_str())], Vec::new());
    assert_eq!(r.status, 303, "closed session");

    // An admin sees everything, the node page included.
    b.goto(&format!("{base}/login"));
    b.type_text(&b.find("#user"), "root");
    b.type_text(&b.find("#password"), "root-pw");
    b.click(&b.find("#signin"));
    assert_eq!(b.texts("#repos tbody td"), ["secret/db", "team/app"]);
    b.goto(&format!("{base}/node"));
    assert_eq!(b.title(), "Node · disco");
}

/// On a filesystem store the tags page shows when each tag was pushed;
/// `web.enabled: false` leaves `/` to the API (404).
#[test]
fn web_pushed_times_on_a_filesystem_store_and_the_switch() {
    let reg = Registry::start_with(Options {
        kind: Kind::Disco,
        ..Options::default()
    });
    let api = Api::new(&reg.url());
    let cfg = crate::support::oci::config(5);
    push_blob(&api, "fs/app", &cfg);
    let m = oci_manifest_ext(&Desc::of(OCI_CONFIG, &cfg), &[], None, None, None);
    push_manifest(&api, "fs/app", "t1", OCI_MANIFEST, &m);
    let page = String::from_utf8(api.get("/repo?name=fs/app").body).unwrap();
    let year = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    assert!(page.contains(&format!("<td>{}", &year[..4])), "{page}");

    let off = Registry::start_with(Options {
        kind: Kind::Disco,
        extra: "web:\n  enabled: false\n".into(),
        ..Options::default()
    });
    let api = Api::new(&off.url());
    assert_eq!(api.get("/").status, 404);
    assert_eq!(api.get("/login").status, 404);
    assert!(api.get("/").header("content-security-policy").is_none());
    assert_eq!(api.get("/v2/").status, 200);
}
