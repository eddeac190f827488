//! `auth.htpasswd` as CNCF Distribution reads it: every endpoint needs valid
//! Basic credentials (401 `UNAUTHORIZED` with `WWW-Authenticate: Basic
//! realm=...` otherwise), the file is re-read when it changes and on
//! SIGHUP, a missing or malformed file (or an auth kind disco does not
//! implement) stops disco at start, and real clients sign in: skopeo,
//! podman, containerd's ctr and ORAS.

use std::time::{Duration, Instant};

use crate::auth_support::{
    busybox, htpasswd_file, manifest_digest, oras, refused_start, skopeo_pull, skopeo_push,
    start_with_auth,
};
use crate::support::clients::Clients;
use crate::support::oci_api::Api;
use crate::support::registry::{Kind, Options, Registry};

fn auth_yaml(path: &std::path::Path) -> String {
    format!(
        "auth:\n  htpasswd:\n    realm: disco-test-realm\n    path: {}\n",
        path.display()
    )
}

#[track_caller]
fn assert_unauthorized(r: &crate::support::oci_api::Resp, what: &str) {
    assert_eq!(
        r.status,
        401,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="disco-test-realm""#),
        "{what}"
    );
    if !r.body.is_empty() {
        assert_eq!(r.json()["errors"][0]["code"], "UNAUTHORIZED", "{what}");
    }
}

#[test]
fn every_endpoint_needs_valid_basic_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd_file(dir.path(), &[("alice", "s3cret"), ("bob", "hunter2")]);
    let reg = start_with_auth(dir.path(), &auth_yaml(&file));
    let anon = Api::new(&reg.url());
    let wrong = Api::basic(&reg.url(), "alice", "wrong");
    let unknown = Api::basic(&reg.url(), "mallory", "s3cret");
    let alice = Api::basic(&reg.url(), "alice", "s3cret");
    let digest = format!("sha256:{}", "a".repeat(64));
    let requests: Vec<(&str, String)> = vec![
        ("GET", "/v2/".into()),
        ("GET", "/v2/_catalog".into()),
        ("GET", "/v2/app/tags/list".into()),
        ("GET", "/v2/app/manifests/latest".into()),
        ("HEAD", "/v2/app/manifests/latest".into()),
        ("PUT", "/v2/app/manifests/latest".into()),
        ("DELETE", format!("/v2/app/manifests/{digest}")),
        ("GET", format!("/v2/app/blobs/{digest}")),
        ("DELETE", format!("/v2/app/blobs/{digest}")),
        ("POST", "/v2/app/blobs/uploads/".into()),
        ("PATCH", "/v2/app/blobs/uploads/some-id".into()),
        ("GET", format!("/v2/app/referrers/{digest}")),
        ("GET", format!("/disco/v1/images/{digest}")),
        ("GET", "/disco/v1/node".into()),
        ("GET", "/disco/v1/peers".into()),
        ("POST", "/disco/v1/gc".into()),
        ("GET", "/no/such/path".into()),
    ];
    for (method, path) in &requests {
        let what = format!("{method} {path}");
        assert_unauthorized(
            &anon.request(method, path, &[], Vec::new()),
            &format!("anonymous {what}"),
        );
        assert_unauthorized(
            &wrong.request(method, path, &[], Vec::new()),
            &format!("wrong password {what}"),
        );
        assert_unauthorized(
            &unknown.request(method, path, &[], Vec::new()),
            &format!("unknown user {what}"),
        );
    }
    // Malformed Authorization headers: 401 as well, never a 500.
    for bad in [
        "Basic",
        "Basic !!!notbase64",
        "Basic bm9jb2xvbg==", // "nocolon"
        "Bearer abc.def.ghi",
        "Digest username=alice",
        &format!("Basic {}", "A".repeat(40_000)),
    ] {
        let r = Api::authorized(&reg.url(), bad).get("/v2/");
        assert_unauthorized(&r, bad.get(..30).unwrap_or(bad));
    }
    // The right credentials pass; the OCI error of the handler follows.
    let r = alice.get("/v2/");
    assert_eq!(r.status, 200);
    assert_eq!(
        alice.get("/v2/_catalog").json(),
        serde_json::json!({"repositories": []})
    );
    let r = alice.manifest("app", "latest");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let r = alice.request("POST", "/v2/app/blobs/uploads/", &[], Vec::new());
    assert_eq!(r.status, 202, "an upload starts");
    assert_eq!(
        Api::basic(&reg.url(), "bob", "hunter2").get("/v2/").status,
        200
    );
    // Nothing was stored by the refused requests.
    assert_eq!(
        alice.get("/v2/_catalog").json(),
        serde_json::json!({"repositories": []})
    );
}

#[test]
fn credentials_are_re_read_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd_file(dir.path(), &[("alice", "first")]);
    let reg = start_with_auth(dir.path(), &auth_yaml(&file));
    let first = Api::basic(&reg.url(), "alice", "first");
    assert_eq!(first.get("/v2/").status, 200);
    // Cached now; a new password must still take effect.
    let tmp = tempfile::tempdir().unwrap();
    let new = htpasswd_file(tmp.path(), &[("alice", "second"), ("carol", "third")]);
    std::fs::rename(&new, &file).unwrap();
    let second = Api::basic(&reg.url(), "alice", "second");
    let carol = Api::basic(&reg.url(), "carol", "third");
    let deadline = Instant::now() + Duration::from_secs(30);
    while second.get("/v2/").status != 200 {
        assert!(
            Instant::now() < deadline,
            "new password not in effect:\n{}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(first.get("/v2/").status, 401, "the old password is gone");
    assert_eq!(carol.get("/v2/").status, 200);
    // A broken file keeps the last good users (and says so in the log).
    std::fs::write(&file, "this is not an htpasswd file\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(second.get("/v2/").status, 200, "last good contents stay");
    assert!(
        reg.log().contains("credential file invalid"),
        "{}",
        reg.log()
    );
    // SIGHUP re-reads at once.
    let tmp2 = tempfile::tempdir().unwrap();
    let hup = htpasswd_file(tmp2.path(), &[("dave", "fourth")]);
    std::fs::rename(&hup, &file).unwrap();
    unsafe { libc::kill(reg.pid().unwrap() as i32, libc::SIGHUP) };
    let dave = Api::basic(&reg.url(), "dave", "fourth");
    let deadline = Instant::now() + Duration::from_secs(30);
    while dave.get("/v2/").status != 200 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload:\n{}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(second.get("/v2/").status, 401);
    assert!(reg.log().contains("SIGHUP"), "{}", reg.log());
}

#[test]
fn unusable_auth_configuration_stops_disco() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("no-such-htpasswd");
    let err = refused_start(d, &auth_yaml(&missing));
    assert!(err.contains(&missing.display().to_string()), "{err}");
    // A malformed line: the file and the line are named.
    let bad = d.join("bad-htpasswd");
    let good = htpasswd_file(d, &[("alice", "x")]);
    let mut text = std::fs::read_to_string(&good).unwrap();
    text.push_str("# comment\nbob:{SHA}C+7Hteo/D9vJXQ3UfzxbwnXaijM=\n");
    std::fs::write(&bad, text).unwrap();
    let err = refused_start(d, &auth_yaml(&bad));
    assert!(
        err.contains("bad-htpasswd") && err.contains("line 3"),
        "{err}"
    );
    assert!(err.contains("bcrypt"), "{err}");
    // An auth kind disco does not implement: refused, not ignored.
    let err = refused_start(d, "auth:\n  silly:\n    realm: x\n    service: y\n");
    assert!(
        err.contains("silly") && err.contains("not supported"),
        "{err}"
    );
    // Both kinds at once, or rules without users.
    let err = refused_start(
        d,
        &format!(
            "{}  token:\n    realm: http://x\n    service: s\n    issuer: i\n    rootcertbundle: /x\n",
            auth_yaml(&good)
        ),
    );
    assert!(err.contains("not both"), "{err}");
    let err = refused_start(d, "auth:\n  access:\n    admins: [x]\n");
    assert!(err.contains("auth.access needs auth.htpasswd"), "{err}");
    let err = refused_start(
        d,
        &format!(
            "{}  access:\n    rules:\n      - repositories: [\"x/*\"]\n        anonymous: [push]\n",
            auth_yaml(&good)
        ),
    );
    assert!(err.contains("anonymous") && err.contains("pull"), "{err}");
    // TLS protections disco does not give.
    let err = refused_start(d, "http:\n  tls:\n    letsencrypt:\n      cachefile: /x\n");
    assert!(err.contains("letsencrypt"), "{err}");
    let err = refused_start(d, "http:\n  tls:\n    clientcas: [/x]\n");
    assert!(
        err.contains("clientcas") && err.contains("TLS is not enabled"),
        "{err}"
    );
    let err = refused_start(
        d,
        "validation:\n  manifests:\n    urls:\n      allow: ['^https://']\n",
    );
    assert!(err.contains("validation.manifests.urls"), "{err}");
}

#[test]
fn distribution_config_and_environment_forms_protect() {
    // A Distribution config.yml with auth.htpasswd, unchanged.
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd_file(dir.path(), &[("alice", "s3cret")]);
    let reg = Registry::start_in(
        dir.path(),
        Options {
            extra: format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                file.display()
            ),
            kind: Kind::Disco,
            ..Options::default()
        },
    );
    assert_eq!(Api::new(&reg.url()).get("/v2/").status, 401);
    assert_eq!(
        Api::new(&reg.url())
            .request("POST", "/v2/x/blobs/uploads/", &[], Vec::new())
            .status,
        401
    );
    assert_eq!(
        Api::basic(&reg.url(), "alice", "s3cret").get("/v2/").status,
        200
    );
    drop(reg);
    // Distribution's documented environment form.
    let dir2 = tempfile::tempdir().unwrap();
    let reg = Registry::start_in(
        dir2.path(),
        Options {
            env: vec![
                ("REGISTRY_AUTH".into(), "htpasswd".into()),
                (
                    "REGISTRY_AUTH_HTPASSWD_REALM".into(),
                    "Registry Realm".into(),
                ),
                (
                    "REGISTRY_AUTH_HTPASSWD_PATH".into(),
                    file.display().to_string(),
                ),
            ],
            kind: Kind::Disco,
            ..Options::default()
        },
    );
    let r = Api::new(&reg.url()).get("/v2/");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="Registry Realm""#)
    );
    assert_eq!(
        Api::basic(&reg.url(), "alice", "s3cret").get("/v2/").status,
        200
    );
}

#[test]
fn real_clients_sign_in_with_htpasswd() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd_file(dir.path(), &[("alice", "s3cret")]);
    let reg = start_with_auth(dir.path(), &auth_yaml(&file));
    let host = reg.host();
    let clients = Clients::new(std::slice::from_ref(&host));
    let layout = busybox();

    // skopeo: no credentials and wrong ones fail; the right ones push.
    skopeo_push(&clients, &layout, &host, "app", None).failed();
    skopeo_push(&clients, &layout, &host, "app", Some("alice:wrong")).failed();
    let api = Api::basic(&reg.url(), "alice", "s3cret");
    assert_eq!(
        api.get("/v2/_catalog").json()["repositories"],
        serde_json::json!([])
    );
    skopeo_push(&clients, &layout, &host, "app", Some("alice:s3cret")).ok();
    let digest = manifest_digest(&layout);
    assert_eq!(
        api.manifest_head("app", "latest")
            .header("docker-content-digest"),
        Some(digest.as_str())
    );
    let (run, _) = skopeo_pull(&clients, &host, "app", None, "anon");
    run.failed();
    let (run, out) = skopeo_pull(&clients, &host, "app", Some("alice:s3cret"), "skopeo");
    run.ok();
    crate::disco_support::assert_pulled_same(&out, &layout);

    // podman: login, pull, logout.
    let reference = format!("{host}/app:latest");
    clients
        .podman_result(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "wrong",
            &host,
        ])
        .failed();
    clients.podman(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "s3cret",
        &host,
    ]);
    let id = clients.podman_pull(&reference, &[]);
    assert!(!id.is_empty());
    clients.podman(&["logout", &host]);
    clients.podman(&["rmi", "-f", &reference]);
    clients
        .podman_result(&["pull", "--tls-verify=false", &reference])
        .failed();

    // containerd's ctr with --user.
    let ctrd = clients.start_containerd();
    ctrd.pull_result(&reference, &[]).failed();
    ctrd.pull_result(&reference, &["--user", "alice:wrong"])
        .failed();
    ctrd.pull(&reference, &["--user", "alice:s3cret"]);
    let config = &layout.image().config.digest;
    assert_eq!(ctrd.content_digest(config).0, *config);

    // ORAS (oras-py, basic auth backend).
    let artifact = dir.path().join("artifact.txt");
    std::fs::write(&artifact, b"an ORAS artifact\n").unwrap();
    let target = format!("{host}/artifacts/notes:v1");
    let a = artifact.display().to_string();
    let (ok, out) = oras(&["push", "basic", &host, "", "", &target, &a]);
    assert!(!ok, "anonymous ORAS push must fail: {out}");
    let (ok, out) = oras(&["push", "basic", &host, "alice", "s3cret", &target, &a]);
    assert!(ok, "ORAS push: {out}");
    let pulled = dir.path().join("oras-out");
    let p = pulled.display().to_string();
    let (ok, out) = oras(&["pull", "basic", &host, "alice", "s3cret", &target, &p]);
    assert!(ok, "ORAS pull: {out}");
    assert_eq!(
        std::fs::read(pulled.join("artifact.txt")).unwrap(),
        b"an ORAS artifact\n"
    );
}
