//! Three disco replicas on shared storage behind a round-robin load
//! balancer (each request to the next replica): concurrent pushes of the
//! same and of different images to different replicas, uploads whose PATCH
//! and PUT requests land on different replicas, the same image published
//! twice at once, and a delete while the image is being pulled; then every
//! image is checked byte for byte on every replica. Once per shared
//! storage: a filesystem directory, an S3 bucket (moto), a Kubo-API node
//! (js-ipfs) with content-addressed publication.

use std::path::Path;

use futures::future::join_all;

use crate::support::jsipfs::JsIpfs;
use crate::support::oci::{
    self, ACCEPT_ALL_MANIFESTS, Client, Desc, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST,
};
use crate::support::proxy::Proxy;
use crate::support::registry::{Kind, Options, Registry};
use crate::support::s3server::{ACCESS_KEY, S3Server, SECRET_KEY};

const REPLICAS: usize = 3;

/// A test image: its blobs and manifest.
struct Image {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

impl Image {
    /// An image with two layers (one over 1 MiB), distinct per `seed`.
    fn new(seed: u64) -> Self {
        let config = oci::config(seed);
        let layers = vec![
            oci::bytes(1_300_000 + seed as usize, seed),
            oci::bytes(5_000 + seed as usize, seed + 1000),
        ];
        let descs: Vec<Desc> = layers.iter().map(|l| Desc::of(OCI_LAYER, l)).collect();
        let manifest = oci::oci_manifest(&Desc::of(OCI_CONFIG, &config), &descs);
        Image {
            config,
            layers,
            manifest,
        }
    }

    fn digest(&self) -> String {
        oci::sha256(&self.manifest)
    }

    fn blobs(&self) -> impl Iterator<Item = &Vec<u8>> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// Pushes blobs then the manifest under `tag` (asserting 201s).
    async fn push(&self, c: &Client, repo: &str, tag: &str) {
        for b in self.blobs() {
            c.push_blob(repo, b).await;
        }
        c.push_manifest(repo, tag, OCI_MANIFEST, &self.manifest)
            .await;
    }

    /// Asserts `repo:tag` serves exactly this image through `c`.
    async fn check(&self, c: &Client, repo: &str, tag: &str, who: &str) {
        let m = c.get_manifest(repo, tag).await;
        assert_eq!(m.status.as_u16(), 200, "{who}: {repo}:{tag} manifest");
        assert!(
            m.body == self.manifest,
            "{who}: {repo}:{tag} manifest bytes"
        );
        for b in self.blobs() {
            let d = oci::sha256(b);
            let r = c.get(&format!("/v2/{repo}/blobs/{d}")).await;
            assert_eq!(r.status.as_u16(), 200, "{who}: {repo} blob {d}");
            assert!(r.body == *b, "{who}: {repo} blob {d} bytes differ");
        }
    }
}

/// Replicas on one storage section, each with its own home directory.
fn start_replicas(dir: &Path, storage: impl Fn(usize) -> String) -> Vec<Registry> {
    (0..REPLICAS)
        .map(|i| {
            Registry::start_in(
                &dir.join(format!("replica-{i}")),
                Options {
                    storage: Some(storage(i)),
                    kind: Kind::Disco,
                    ..Options::default()
                },
            )
        })
        .collect()
}

/// The whole scenario against `replicas` (started on shared storage).
async fn scenario(replicas: &[Registry]) {
    let proxy = Proxy::round_robin(replicas.iter().map(|r| r.addr).collect());
    let lb = Client::for_url(&proxy.url());
    let direct: Vec<Client> = replicas.iter().map(Client::new).collect();

    // The same image pushed to every replica at once, and through the
    // balancer; different images to different replicas at once.
    let same = Image::new(1);
    let others: Vec<Image> = (0..REPLICAS as u64).map(|i| Image::new(10 + i)).collect();
    let mut pushes = Vec::new();
    for (i, c) in direct.iter().enumerate() {
        let (same, other) = (&same, &others[i]);
        pushes.push(Box::pin(async move {
            same.push(c, "shared/same", "v1").await;
            other.push(c, &format!("shared/other-{i}"), "v1").await;
        })
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>);
    }
    pushes.push(Box::pin(same.push(&lb, "shared/same", "v1")));
    join_all(pushes).await;

    // An upload whose chunks and final PUT go to different replicas.
    let big = oci::bytes(3 * 1024 * 1024 + 17, 99);
    proxy.clear_log();
    let digest = lb
        .push_blob_chunked("shared/chunked", &big, 512 * 1024)
        .await;
    let upstreams: std::collections::HashSet<_> = proxy.log().iter().map(|e| e.upstream).collect();
    assert_eq!(upstreams.len(), REPLICAS, "{}", proxy.log_text());
    for (i, c) in direct.iter().enumerate() {
        let r = c.get(&format!("/v2/shared/chunked/blobs/{digest}")).await;
        assert_eq!(r.status.as_u16(), 200, "replica {i}");
        assert!(r.body == big, "replica {i}: chunked blob bytes differ");
    }

    // The same image published twice at once (blobs first, then two
    // manifest PUTs on two replicas concurrently).
    let twice = Image::new(2);
    for b in twice.blobs() {
        direct[0].push_blob("shared/twice", b).await;
    }
    let puts =
        join_all((0..2).map(|i| {
            direct[i].put_manifest("shared/twice", "latest", OCI_MANIFEST, &twice.manifest)
        }))
        .await;
    for r in puts {
        r.expect(201);
    }

    // A delete (on one replica) while the image is pulled through the
    // others: every pull answers the exact bytes or 404, nothing else.
    let victim = Image::new(3);
    victim.push(&direct[0], "shared/victim", "v1").await;
    let pulls = async {
        for _ in 0..10 {
            for c in &direct[1..] {
                let m = c.get_manifest("shared/victim", &victim.digest()).await;
                match m.status.as_u16() {
                    200 => assert!(m.body == victim.manifest, "victim manifest bytes"),
                    404 => {}
                    s => panic!("victim manifest: {s} {}", String::from_utf8_lossy(&m.body)),
                }
                for b in victim.blobs() {
                    let r = c
                        .get(&format!("/v2/shared/victim/blobs/{}", oci::sha256(b)))
                        .await;
                    match r.status.as_u16() {
                        200 => assert!(r.body == *b, "victim blob bytes"),
                        404 => {}
                        s => panic!("victim blob: {s} {}", String::from_utf8_lossy(&r.body)),
                    }
                }
            }
        }
    };
    let delete = async {
        direct[0]
            .delete(&format!("/v2/shared/victim/manifests/{}", victim.digest()))
            .await
            .expect(202);
    };
    futures::join!(pulls, delete);

    // Everything, byte for byte, from every replica and the balancer.
    let mut clients: Vec<(String, &Client)> = direct
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("replica {i}"), c))
        .collect();
    clients.push(("balancer".into(), &lb));
    for (who, c) in &clients {
        same.check(c, "shared/same", "v1", who).await;
        for (i, img) in others.iter().enumerate() {
            img.check(c, &format!("shared/other-{i}"), "v1", who).await;
        }
        twice.check(c, "shared/twice", "latest", who).await;
        let gone = c
            .get_h(
                &format!("/v2/shared/victim/manifests/{}", victim.digest()),
                &[("Accept", ACCEPT_ALL_MANIFESTS)],
            )
            .await;
        gone.expect_error(404, "MANIFEST_UNKNOWN");
        let tags = c.tags("shared/twice").await;
        assert_eq!(tags, vec!["latest".to_string()], "{who}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_a_shared_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shared-storage");
    let d = dir.path().to_path_buf();
    let replicas = tokio::task::spawn_blocking(move || {
        start_replicas(&d, |_| {
            format!(
                "  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
                root.display()
            )
        })
    })
    .await
    .unwrap();
    scenario(&replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_a_shared_s3_bucket() {
    let server = S3Server::shared();
    let bucket = server.create_bucket().await;
    let s3 = format!(
        "  s3:\n    accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    region: us-east-1\n    regionendpoint: {}\n    forcepathstyle: true\n    bucket: {bucket}\n    secure: false\n    rootdirectory: /registry\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n",
        server.endpoint()
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let replicas = tokio::task::spawn_blocking(move || start_replicas(&d, |_| s3.clone()))
        .await
        .unwrap();
    scenario(&replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_a_shared_kubo_node() {
    let kubo = tokio::task::spawn_blocking(JsIpfs::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("shared-spool");
    let d = dir.path().to_path_buf();
    let api = kubo.api.clone();
    let replicas = tokio::task::spawn_blocking(move || {
        start_replicas(&d, |_| {
            format!(
                "  ipfs:\n    spooldirectory: {}\n    router:\n      nodes:\n        - url: {api}\n  delete:\n    enabled: true\n",
                spool.display()
            )
        })
    })
    .await
    .unwrap();
    scenario(&replicas).await;
    // Published once, whoever published: the same CID on every replica.
    let mut cids = Vec::new();
    for r in &replicas {
        let c = Client::new(r);
        let res = c
            .get(&format!("/disco/v1/images/{}", Image::new(2).digest()))
            .await;
        res.expect(200);
        cids.push(res.json()["cid"].clone());
    }
    assert!(
        cids.iter().all(|c| *c == cids[0] && !c.is_null()),
        "{cids:?}"
    );
    drop(kubo);
}
