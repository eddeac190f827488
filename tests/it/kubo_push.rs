//! A real client (skopeo) pushes to and pulls from disco with `storage.ipfs`
//! on a js-ipfs daemon as the primary store: the image round-trips byte for
//! byte, every blob's CID is the canonical `ipfs add --cid-version=1` CID,
//! and two independent pushes of the same image give identical CIDs.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use disco::ipfs::Ipfs;
use disco::ipfs::kubo::{KuboClient, KuboConfig};
use futures::StreamExt;
use futures::stream;
use sha2::{Digest, Sha256};

use crate::support::jsipfs::{self, JsIpfs};
use crate::support::registry::{Options, Registry};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A gzipped tar with one file of `len` patterned bytes.
fn layer(name: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = disco::storage::testsuite::pattern(len, seed);
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, name, &data[..]).unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

/// Writes an OCI image layout with two layers to `dir`; returns the
/// digests (hex) of all its blobs: config, layers, manifest.
fn oci_image(dir: &Path) -> Vec<String> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha(data);
        std::fs::write(blobs.join(&d), data).unwrap();
        d
    };
    let layers = [
        layer("big.bin", 3 * 1024 * 1024 + 17, 1),
        layer("small.txt", 1000, 2),
    ];
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&l[..]), &mut raw)
                .unwrap();
            format!("sha256:{}", sha(&raw))
        })
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/big.bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut all = vec![put(&config)];
    let mut layer_descs = Vec::new();
    for l in &layers {
        let d = put(l);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{d}"), "size": l.len(),
        }));
        all.push(d);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", all[0]), "size": config.len()},
        "layers": layer_descs,
    }))
    .unwrap();
    let md = put(&manifest);
    all.push(md.clone());
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{md}"), "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "v1"}}],
        }))
        .unwrap(),
    )
    .unwrap();
    all
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("skopeo missing ({e}): run scripts/test"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ipfs_registry(daemon: &JsIpfs, root: &str) -> Registry {
    let storage = format!(
        "  ipfs:\n    rootdirectory: {root}\n    router:\n      nodes:\n        - url: {}\n  delete:\n    enabled: true\n",
        daemon.api
    );
    Registry::start_with(Options {
        storage: Some(storage),
        ..Options::default()
    })
}

/// CID of the blob `hex` in the MFS tree of the registry rooted at `root`.
async fn blob_cid(c: &KuboClient, root: &str, hex: &str) -> String {
    let path = format!(
        "{root}/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    );
    c.files_stat(&path).await.unwrap().cid.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_push_pull_with_canonical_cids() {
    let daemon: Arc<JsIpfs> = tokio::task::spawn_blocking(jsipfs::shared).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let digests = oci_image(&src);
    let c = KuboClient::new(&daemon.api, &KuboConfig::with_nodes([&daemon.api])).unwrap();

    let mut cids_per_push = Vec::new();
    for (i, root) in [
        format!("/push-a-{}", uuid::Uuid::new_v4().simple()),
        format!("/push-b-{}", uuid::Uuid::new_v4().simple()),
    ]
    .iter()
    .enumerate()
    {
        let d2 = daemon.clone();
        let root2 = root.clone();
        let reg = tokio::task::spawn_blocking(move || ipfs_registry(&d2, &root2))
            .await
            .unwrap();
        let dest = format!("docker://{}/library/app:v1", reg.host());
        let src_ref = format!("oci:{}:v1", src.display());
        let pulled = work.path().join(format!("pulled-{i}"));
        let pulled_ref = format!("oci:{}:v1", pulled.display());
        tokio::task::spawn_blocking(move || {
            skopeo(&["copy", "--dest-tls-verify=false", &src_ref, &dest]);
            skopeo(&["copy", "--src-tls-verify=false", &dest, &pulled_ref]);
        })
        .await
        .unwrap();
        // Byte for byte: every blob comes back with its digest.
        for d in &digests {
            let got = std::fs::read(pulled.join("blobs/sha256").join(d))
                .unwrap_or_else(|e| panic!("blob {d} not pulled: {e}\n{}", reg.log()));
            assert_eq!(&sha(&got), d);
        }
        // Every blob in MFS has the canonical CID of its bytes.
        let mut cids = Vec::new();
        for d in &digests {
            let bytes = std::fs::read(src.join("blobs/sha256").join(d)).unwrap();
            let canonical = c
                .add(
                    stream::once(async move { Ok(Bytes::from(bytes)) }).boxed(),
                    false,
                )
                .await
                .unwrap()
                .to_string();
            let stored = blob_cid(&c, root, d).await;
            assert_eq!(stored, canonical, "blob {d} of push {i}");
            cids.push(stored);
        }
        cids_per_push.push(cids);
        drop(reg);
    }
    assert_eq!(
        cids_per_push[0], cids_per_push[1],
        "two pushes, different CIDs"
    );
}
