//! Pull-through mirror with real container runtimes (issue 15): containerd
//! (`ctr` with a `hosts.toml` mirror, requests carrying `?ns=docker.io`)
//! pulls through one disco and Docker Engine (`registry-mirrors`, plain
//! names) through a second disco peered with the first. Docker Hub itself
//! is unreachable in both configurations, so every byte comes through the
//! mirrors; the upstream (a real Distribution behind the recording proxy)
//! serves each layer once for both.

use std::fs;

use crate::disco_cid::push;
use crate::disco_support::{Node, NodeOpts};
use crate::mirror::{distribution, layer_digests, upstream_blob_gets, wait_published};
use crate::support::clients::Clients;
use crate::support::docker::{Docker, DockerOptions};
use crate::support::images::{self, TestImage};
use crate::support::proxy::Proxy;

#[test]
fn containerd_and_docker_pull_through_two_discos_fetch_each_layer_once() {
    let layout = images::cached(TestImage::Busybox).expect("busybox image");
    let want = layout.image();
    let upstream = distribution("");
    let proxy = Proxy::start(upstream.addr);
    let top = format!(
        "proxy:\n  upstreams:\n    - name: docker.io\n      url: {}\n      ttl: 1h\n  default: docker.io\n",
        proxy.url()
    );
    let a = Node::start(NodeOpts {
        top: top.clone(),
        ..NodeOpts::default()
    });
    let b = Node::start(NodeOpts {
        bootstrap: vec![a.peer_addr()],
        top,
        ..NodeOpts::default()
    });
    let clients = Clients::new(&[upstream.host(), a.host(), b.host()]);
    push(
        &clients,
        &layout,
        &upstream.host(),
        "library/busybox",
        "latest",
    );
    proxy.clear_log();

    // containerd: disco A is docker.io's mirror; the server itself is a
    // closed port, so a pull that bypassed the mirror would fail.
    let hosts = clients.out_dir("hosts.d");
    fs::create_dir_all(hosts.join("docker.io")).unwrap();
    fs::write(
        hosts.join("docker.io/hosts.toml"),
        format!(
            "server = \"http://127.0.0.1:9\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            a.host()
        ),
    )
    .unwrap();
    let containerd = clients.start_containerd();
    let hosts_dir = hosts.to_str().unwrap().to_string();
    containerd
        .pull_result(
            "docker.io/library/busybox:latest",
            &["--hosts-dir", &hosts_dir],
        )
        .ok();
    let listed = containerd.ctr(&["images", "ls"]).stdout;
    assert!(
        listed.contains(&layout.root.digest),
        "ctr images ls shows the upstream digest {}:\n{listed}",
        layout.root.digest
    );
    // docker.io is A's default upstream: containerd's `?ns=docker.io`
    // requests are served under the plain name, as Docker's would be.
    a.api
        .assert_same_as_layout("library/busybox", "latest", &layout);
    wait_published(&a, &layout.root.digest);

    // Docker Engine: disco B is its registry mirror (Docker Hub names, no
    // ns); B resolves the tag upstream and takes the blobs from A.
    let docker = Docker::start_with(DockerOptions {
        insecure_registries: vec![b.host()],
        registry_mirrors: vec![format!("http://{}", b.host())],
        ..DockerOptions::default()
    });
    docker.docker(&["pull", "busybox:latest"]);
    assert_eq!(
        docker.image_id("busybox:latest"),
        want.config.digest,
        "image ID (config digest)"
    );
    let out = docker.run(&["busybox:latest", "echo", "mirrored"]);
    assert_eq!(out.stdout.trim(), "mirrored");
    b.api
        .assert_same_as_layout("library/busybox", "latest", &layout);

    // Each layer (and the config) crossed the uplink once for both nodes.
    let gets = upstream_blob_gets(&proxy);
    for d in layer_digests(&layout) {
        assert_eq!(
            gets.get(&d),
            Some(&1),
            "{d} fetched upstream: {gets:?}\n{}",
            proxy.log_text()
        );
    }
    assert_eq!(
        b.metric("disco_mirror_peer_hits_total"),
        1,
        "B took the image from A\n{}",
        b.log_tail()
    );
}
