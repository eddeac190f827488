//! `auth.access`: per-repository permissions of htpasswd users, with no way
//! around a rule: an image is readable under its digest and CID names only
//! by someone who may read a named repository holding it; the catalog
//! lists only what the caller may read; anonymous pull where a rule allows
//! it; the `/disco/v1` administration endpoints need an admin; cloning by
//! CID needs pull on the CID name; a mount from an unreadable repository
//! becomes a plain upload.

use std::collections::BTreeSet;

use crate::auth_support::{
    busybox, htpasswd_file, manifest_digest, skopeo_pull, skopeo_push, start_with_auth,
};
use crate::disco_support::{assert_pulled_same, multi_layer_image};
use crate::support::clients::Clients;
use crate::support::oci_api::{Api, Resp};
use crate::support::registry::Registry;

const USERS: &[(&str, &str)] = &[
    ("root", "root-pw"),
    ("alice", "alice-pw"),
    ("bob", "bob-pw"),
    ("carol", "carol-pw"),
];

fn access_yaml(htpasswd: &std::path::Path) -> String {
    format!(
        r#"auth:
  htpasswd:
    realm: rules
    path: {}
  access:
    admins: [root]
    groups:
      team-a: [alice]
    rules:
      - repositories: ["team-a/**"]
        groups: [team-a]
        actions: [pull, push, delete]
      - repositories: ["team-a/*"]
        users: [carol]
        actions: [pull]
      - repositories: ["team-b/**"]
        users: [bob]
        actions: ["*"]
      - repositories: ["public/**"]
        users: ["*"]
        actions: [pull]
        anonymous: [pull]
"#,
        htpasswd.display()
    )
}

struct Site {
    reg: Registry,
    clients: Clients,
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let file = htpasswd_file(dir.path(), USERS);
        let reg = start_with_auth(dir.path(), &access_yaml(&file));
        let clients = Clients::new(&[reg.host()]);
        Site { reg, clients, dir }
    }

    fn api(&self, user: &str) -> Api {
        match USERS.iter().find(|(u, _)| *u == user) {
            Some((u, p)) => Api::basic(&self.reg.url(), u, p),
            None => Api::new(&self.reg.url()),
        }
    }

    fn creds(user: &str) -> String {
        let p = USERS.iter().find(|(u, _)| *u == user).unwrap().1;
        format!("{user}:{p}")
    }

    fn catalog(&self, user: &str) -> BTreeSet<String> {
        let r = self.api(user).get("/v2/_catalog?n=1000");
        assert_eq!(
            r.status,
            200,
            "{user}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }
}

#[track_caller]
fn denied(r: &Resp, what: &str) {
    assert_eq!(
        r.status,
        403,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    if !r.body.is_empty() {
        assert_eq!(r.json()["errors"][0]["code"], "DENIED", "{what}");
    }
}

#[test]
fn rules_follow_images_under_every_name() {
    let s = Site::new();
    let host = s.reg.host();
    let a_image = busybox();
    let b_image = multi_layer_image(&s.dir.path().join("b-image"), 7);
    let p_image = multi_layer_image(&s.dir.path().join("p-image"), 8);
    skopeo_push(
        &s.clients,
        &a_image,
        &host,
        "team-a/app",
        Some(&Site::creds("alice")),
    )
    .ok();
    skopeo_push(
        &s.clients,
        &b_image,
        &host,
        "team-b/secret",
        Some(&Site::creds("bob")),
    )
    .ok();
    skopeo_push(
        &s.clients,
        &p_image,
        &host,
        "public/base",
        Some(&Site::creds("root")),
    )
    .ok();
    // Pushing outside one's rules is refused.
    skopeo_push(
        &s.clients,
        &a_image,
        &host,
        "team-b/sneaky",
        Some(&Site::creds("alice")),
    )
    .failed();
    skopeo_push(
        &s.clients,
        &a_image,
        &host,
        "team-a/new",
        Some(&Site::creds("carol")),
    )
    .failed();
    skopeo_push(&s.clients, &a_image, &host, "public/x", None).failed();

    let root = s.api("root");
    let info = |digest: &str| {
        let r = root.get(&format!("/disco/v1/images/{digest}"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["cid"].as_str().unwrap().to_string()
    };
    let a_digest = manifest_digest(&a_image);
    let b_digest = manifest_digest(&b_image);
    let p_digest = manifest_digest(&p_image);
    let (a_hex, b_hex, p_hex) = (
        a_digest[7..].to_string(),
        b_digest[7..].to_string(),
        p_digest[7..].to_string(),
    );
    let (a_cid, b_cid, p_cid) = (info(&a_digest), info(&b_digest), info(&p_digest));
    let b_config = b_image.image().config.digest.clone();
    let b_layer = b_image.image().layers[0].desc.digest.clone();

    // Alice gets no byte of team-b's image under any name.
    let alice = s.api("alice");
    for name in ["team-b/secret", b_hex.as_str(), b_cid.as_str()] {
        denied(
            &alice.manifest(name, "latest"),
            &format!("manifest of {name}"),
        );
        denied(
            &alice.manifest(name, &b_digest),
            &format!("manifest by digest in {name}"),
        );
        denied(
            &alice.manifest_head(name, "latest"),
            &format!("HEAD {name}"),
        );
        denied(
            &alice.get(&format!("/v2/{name}/tags/list")),
            &format!("tags of {name}"),
        );
        for blob in [&b_config, &b_layer] {
            denied(
                &alice.get(&format!("/v2/{name}/blobs/{blob}")),
                &format!("blob in {name}"),
            );
        }
        denied(
            &alice.get(&format!("/v2/{name}/referrers/{b_digest}")),
            &format!("referrers in {name}"),
        );
    }
    denied(
        &alice.get(&format!("/disco/v1/images/{b_digest}")),
        "image info",
    );
    denied(
        &alice.get(&format!("/disco/v1/images/{b_hex}")),
        "image info by hex",
    );
    // Her own image, under every name.
    for name in ["team-a/app", a_hex.as_str(), a_cid.as_str()] {
        let r = alice.manifest(name, "latest");
        assert_eq!(
            r.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("docker-content-digest"), Some(a_digest.as_str()));
    }
    assert_eq!(
        alice.get(&format!("/disco/v1/images/{a_digest}")).status,
        200
    );
    let (run, out) = skopeo_pull(
        &s.clients,
        &host,
        &a_cid,
        Some(&Site::creds("alice")),
        "a-cid",
    );
    run.ok();
    assert_pulled_same(&out, &a_image);
    skopeo_pull(
        &s.clients,
        &host,
        &b_cid,
        Some(&Site::creds("alice")),
        "b-cid",
    )
    .0
    .failed();

    // The catalog lists exactly what each may read.
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let public = ["public/base", p_hex.as_str(), p_cid.as_str()];
    let mut want = set(&public);
    want.extend(set(&["team-a/app", &a_hex, &a_cid]));
    assert_eq!(s.catalog("alice"), want, "alice");
    assert_eq!(s.catalog("carol"), want, "carol (pull on team-a/*)");
    let mut want_b = set(&public);
    want_b.extend(set(&["team-b/secret", &b_hex, &b_cid]));
    assert_eq!(s.catalog("bob"), want_b, "bob");
    assert_eq!(s.catalog("nobody"), set(&public), "anonymous");
    assert_eq!(
        s.catalog("root").len(),
        9,
        "root sees all: {:?}",
        s.catalog("root")
    );

    // The same image in a repository alice may read opens its names to her.
    skopeo_push(
        &s.clients,
        &b_image,
        &host,
        "team-a/copy",
        Some(&Site::creds("alice")),
    )
    .ok();
    // (a refusal is reused for 1 s)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while alice.manifest(&b_hex, "latest").status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "digest repository not opened"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(alice.manifest(&b_cid, "latest").status, 200);
    denied(
        &alice.manifest("team-b/secret", "latest"),
        "the named repository stays closed",
    );

    // Anonymous pull where a rule allows it, and only there.
    let (run, out) = skopeo_pull(&s.clients, &host, "public/base", None, "anon-public");
    run.ok();
    assert_pulled_same(&out, &p_image);
    let anon = s.api("nobody");
    assert_eq!(
        anon.manifest(&p_cid, "latest").status,
        200,
        "public image by CID"
    );
    let r = anon.manifest("team-a/app", "latest");
    assert_eq!(r.status, 401, "anonymous elsewhere is asked to sign in");
    assert_eq!(r.header("www-authenticate"), Some(r#"Basic realm="rules""#));
    assert_eq!(anon.get("/v2/").status, 401);

    // Pull-only users cannot delete; owners can.
    denied(
        &s.api("carol").request(
            "DELETE",
            &format!("/v2/team-a/app/manifests/{a_digest}"),
            &[],
            Vec::new(),
        ),
        "carol deletes",
    );
    let r = alice.request(
        "DELETE",
        &format!("/v2/team-a/copy/manifests/{b_digest}"),
        &[],
        Vec::new(),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn admin_endpoints_and_clones_need_their_permissions() {
    let s = Site::new();
    let root = s.api("root");
    let alice = s.api("alice");
    for (method, path) in [
        ("GET", "/disco/v1/node"),
        ("GET", "/disco/v1/peers"),
        ("POST", "/disco/v1/gc"),
        ("POST", "/disco/v1/gc?registry=true&dryRun=true"),
    ] {
        denied(&alice.request(method, path, &[], Vec::new()), path);
        assert_eq!(
            s.api("nobody")
                .request(method, path, &[], Vec::new())
                .status,
            401,
            "{path}"
        );
        let r = root.request(method, path, &[], Vec::new());
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // The CLI takes credentials as the registry clients do.
    let disco = |args: &[&str], creds: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_disco"));
        c.args(args)
            .arg("--url")
            .arg(s.reg.url())
            .env("HOME", s.dir.path());
        if let Some(cr) = creds {
            c.env("DISCO_CREDS", cr);
        }
        c.output().unwrap()
    };
    let out = disco(&["gc", "--json"], Some("root:root-pw"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.get("removed").is_some(), "{v}");
    let out = disco(&["gc", "--registry", "--json"], Some("root:root-pw"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dryRun"], false, "{v}");
    let out = disco(&["gc", "--registry"], Some("alice:alice-pw"));
    assert!(!out.status.success());
    let out = disco(&["peers"], Some("alice:alice-pw"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("denied"),
        "{out:?}"
    );
    let out = disco(&["peers", "--creds", "root:root-pw"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = disco(&["gc"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );

    // Pull by CID from the network needs pull on the CID name: alice has
    // none for a CID this registry does not hold, and no clone starts.
    let cid = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354";
    denied(&alice.manifest(cid, "latest"), "unknown CID");
    let metrics = Api::new(&format!("http://{}", s.reg.debug_addr)).get("/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines().any(|l| l == "disco_clones_started_total 0"),
        "no clone may start:\n{text}"
    );

    // A mount from a repository alice may not read becomes an upload.
    let image = busybox();
    skopeo_push(
        &s.clients,
        &image,
        &s.reg.host(),
        "team-b/x",
        Some(&Site::creds("bob")),
    )
    .ok();
    skopeo_push(
        &s.clients,
        &image,
        &s.reg.host(),
        "team-a/y",
        Some(&Site::creds("alice")),
    )
    .ok();
    let layer = &image.image().layers[0].desc.digest;
    for (from, want) in [("team-b/x", 202), ("team-a/y", 201)] {
        let r = alice.request(
            "POST",
            &format!("/v2/team-a/z/blobs/uploads/?mount={layer}&from={from}"),
            &[],
            Vec::new(),
        );
        assert_eq!(
            r.status,
            want,
            "mount from {from}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = alice.request(
        "POST",
        &format!("/v2/team-a/z/blobs/uploads/?mount={layer}"),
        &[],
        Vec::new(),
    );
    assert_eq!(r.status, 202, "a mount without `from` is declined");
}
