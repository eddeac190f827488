//! Docker Engine (a private `dockerd` per test) against a disco with access
//! control: `docker login`, push, pull and run, with htpasswd and with
//! bearer tokens from the tests' token service; a wrong password and a
//! missing login are refused.

use crate::auth_support::{htpasswd_file, start_with_auth};
use crate::support::docker::{Docker, DockerOptions};
use crate::support::images::{self, TestImage};
use crate::support::registry::{Kind, Options, Registry};
use crate::support::token_issuer::{Issuer, Pki};

/// Login, push, pull into an emptied daemon and run, as `user`.
fn login_push_pull_run(reg: &Registry, user: &str, password: &str) {
    let layout = images::cached(TestImage::Busybox).expect("busybox image");
    let docker = Docker::start_with(DockerOptions {
        insecure_registries: vec![reg.host()],
        ..DockerOptions::default()
    });
    let host = reg.host();
    docker.load(&layout, "disco-it/busybox:latest");
    let image = format!("{host}/team/app:v1");
    docker.docker(&["tag", "disco-it/busybox:latest", &image]);
    // No login: the push is refused (Docker words it by scheme).
    let r = docker.docker_result(&["push", &image]);
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(!r.status.success(), "push without login: {text}");
    assert!(
        [
            "no basic auth credentials",
            "denied",
            "unauthorized",
            "authentication required"
        ]
        .iter()
        .any(|m| text.contains(m)),
        "{text}"
    );
    let r = docker.login_result(&host, user, "wrong-password");
    assert!(
        !r.status.success(),
        "login with a wrong password: {}",
        r.stdout
    );
    docker.login_result(&host, user, password).ok();
    let digest = docker.push(&image);
    assert!(digest.starts_with("sha256:"), "{digest}");
    docker.remove_all_images();
    docker.docker(&["pull", &image]);
    assert_eq!(docker.image_id(&image), layout.image().config.digest);
    let out = docker.run(&[&image, "sh", "-c", "echo signed in"]);
    assert_eq!(out.stdout.trim(), "signed in");
    docker.docker(&["logout", &host]);
    docker.remove_all_images();
    let r = docker.docker_result(&["pull", &image]);
    assert!(!r.status.success(), "pull after logout: {}", r.stdout);
}

#[test]
fn docker_login_push_pull_with_htpasswd() {
    let dir = tempfile::tempdir().unwrap();
    let file = htpasswd_file(dir.path(), &[("alice", "s3cret")]);
    let reg = start_with_auth(
        dir.path(),
        &format!(
            "auth:\n  htpasswd:\n    realm: docker-test\n    path: {}\n",
            file.display()
        ),
    );
    login_push_pull_run(&reg, "alice", "s3cret");
}

#[test]
fn docker_login_push_pull_with_tokens() {
    let pki = Pki::new();
    let issuer = Issuer::start(
        pki.ec.clone(),
        vec![("alice", "s3cret")],
        vec![("alice", "team/*", &["pull", "push"])],
    );
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_in(
        dir.path(),
        Options {
            storage: Some(crate::auth_support::offline_storage(dir.path())),
            extra: pki.disco_auth(&issuer.realm),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    );
    login_push_pull_run(&reg, "alice", "s3cret");
}
