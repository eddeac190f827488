//! Docker Engine (Debian's `docker.io`, a private `dockerd` per test) against
//! disco: the quick start end to end on the default embedded IPFS storage,
//! and the harness's own options.

use crate::support::docker::{Docker, DockerOptions};
use crate::support::images::{self, TestImage};
use crate::support::oci_api::Api;
use crate::support::registry::{Options, Registry, free_port};

/// disco on the embedded IPFS node (the default store, under the test's
/// HOME), its node on loopback only and without mDNS.
fn embedded_disco() -> Registry {
    Registry::start_with(Options {
        storage: Some(
            "  ipfs:\n    embedded:\n      listen: [/ip4/127.0.0.1/tcp/0]\n      mdns: false\n  delete:\n    enabled: true\n"
                .into(),
        ),
        ..Options::default()
    })
}

/// The seed's quick start with Docker: `docker push <host>/my-image`, then
/// `docker pull -a` of the digest repository (tags `latest` and the CID),
/// then a pull by CID into an empty daemon and `docker run` of it.
#[test]
fn quick_start_push_pull_all_pull_by_cid_and_run() {
    let layout = images::cached(TestImage::Busybox).expect("busybox image");
    let want = layout.image();
    let reg = embedded_disco();
    let api = Api::new(&reg.url());
    let docker = Docker::start_with(DockerOptions {
        insecure_registries: vec![reg.host()],
        ..DockerOptions::default()
    });
    let host = reg.host();

    // Push.
    docker.load(&layout, "disco-it/busybox:latest");
    let image = format!("{host}/my-image");
    docker.docker(&["tag", "disco-it/busybox:latest", &image]);
    let digest = docker.push(&image);
    // What Docker pushed: its own re-compression of the same layer, the
    // same config bytes.
    let pushed = api.assert_image_matches_diff_ids("my-image", "latest", &layout);
    assert_eq!(pushed, digest, "manifest digest docker printed");

    // Published under the digest and a CID.
    let info = api.get(&format!("/disco/v1/images/{digest}"));
    assert_eq!(
        info.status,
        200,
        "{}\n{}",
        String::from_utf8_lossy(&info.body),
        reg.log()
    );
    let cid = info.json()["cid"].as_str().expect("cid").to_string();
    assert!(cid.starts_with("bafy"), "CIDv1 dag-pb: {cid}");
    let hex = digest.trim_start_matches("sha256:");

    // `docker pull -a` of the digest repository: tags latest and <cid>.
    docker.remove_all_images();
    let digest_repo = format!("{host}/{hex}");
    docker.docker(&["pull", "--all-tags", &digest_repo]);
    let tags = docker.docker(&["image", "ls", "--format", "{{.Tag}}", &digest_repo]);
    let mut tags: Vec<&str> = tags.stdout.split_whitespace().collect();
    tags.sort();
    let mut expected = vec!["latest", cid.as_str()];
    expected.sort();
    assert_eq!(tags, expected, "tags pulled from {digest_repo}");
    assert_eq!(
        docker.image_id(&format!("{digest_repo}:{cid}")),
        want.config.digest
    );

    // Pull by CID into an empty daemon: every layer comes from disco.
    docker.remove_all_images();
    let by_cid = format!("{host}/{cid}");
    docker.docker(&["pull", &by_cid]);
    assert_eq!(docker.image_id(&by_cid), want.config.digest, "image ID");
    let repo_digests = docker.docker(&[
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}",
        &by_cid,
    ]);
    assert!(
        repo_digests
            .stdout
            .lines()
            .any(|l| l.trim() == format!("{by_cid}@{digest}")),
        "RepoDigests of {by_cid}: {}",
        repo_digests.stdout
    );

    // And it runs.
    let out = docker.run(&[&by_cid, "sh", "-c", "echo disco $((6 * 7))"]);
    assert_eq!(out.stdout.trim(), "disco 42");
}

/// The harness hands its options to the daemon and keeps the client's
/// configuration private: insecure registries, mirrors, `daemon.json`
/// and `DOCKER_CONFIG` (where `docker login` writes credentials).
#[test]
fn harness_options_reach_the_daemon_and_client() {
    let mirror = format!("http://127.0.0.1:{}/", free_port());
    let insecure = format!("127.0.0.2:{}", free_port());
    let docker = Docker::start_with(DockerOptions {
        insecure_registries: vec![insecure.clone()],
        registry_mirrors: vec![mirror.clone()],
        daemon_json: Some(serde_json::json!({"labels": ["disco-it=harness"]})),
        ..DockerOptions::default()
    });
    let info = docker.docker(&["info", "--format", "{{json .RegistryConfig}}"]);
    let v: serde_json::Value = serde_json::from_str(info.stdout.trim()).expect("JSON");
    assert_eq!(v["Mirrors"], serde_json::json!([mirror]), "{v}");
    assert!(
        v["IndexConfigs"][&insecure]["Secure"] == serde_json::json!(false),
        "{insecure} insecure: {v}"
    );
    let labels = docker.docker(&["info", "--format", "{{json .Labels}}"]);
    assert_eq!(
        labels.stdout.trim(),
        r#"["disco-it=harness"]"#,
        "daemon.json read"
    );

    // Credentials for a registry go to this test's DOCKER_CONFIG only.
    // Distribution with htpasswd is the real registry checking them.
    let reg = Registry::start_with(Options {
        kind: crate::support::registry::Kind::Distribution,
        extra: htpasswd_auth(&docker.root.join("tmp")),
        ..Options::default()
    });
    let bad = docker.login_result(&reg.host(), "disco", "wrong");
    assert!(!bad.status.success(), "wrong password accepted");
    docker
        .login_result(&reg.host(), "disco", "secret-password")
        .ok();
    let config = std::fs::read_to_string(docker.config_dir.join("config.json")).unwrap();
    let auths: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert!(
        auths["auths"][reg.host()]["auth"].is_string(),
        "credentials stored in DOCKER_CONFIG: {config}"
    );
}

/// `auth.htpasswd` for Distribution: user `disco`, password
/// `secret-password`.
fn htpasswd_auth(dir: &std::path::Path) -> String {
    // bcrypt (cost 4) of "secret-password".
    let hash = "$2b$04$TVrS8k9.6io/RBh7MgyYTepSg4bsHpwDAGQkg7kEmWC3dMjoK9Uyy";
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("disco:{hash}\n")).unwrap();
    format!(
        "auth:\n  htpasswd:\n    realm: disco-it\n    path: {}\n",
        path.display()
    )
}
