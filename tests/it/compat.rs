//! disco serves a storage directory written by CNCF Distribution as is.

use crate::support::registry::{Kind, Options, Registry};
use sha2::{Digest as _, Sha256};

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

async fn push_blob(client: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> String {
    // POST then PUT: Distribution 2.8 does not take monolithic POSTs.
    let d = digest(data);
    let r = client
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "upload start on {base}");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let url = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = client
        .put(format!("{url}{sep}digest={d}"))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "blob push to {base}");
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_distribution_storage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
        dir.path().join("storage").display()
    );
    let client = reqwest::Client::new();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let manifest;
    let manifest_digest;
    {
        let opts = Options {
            storage: Some(storage.clone()),
            kind: Kind::Distribution,
            ..Options::default()
        };
        let reg = Registry::start_in(&dir.path().join("dist"), opts);
        let base = reg.url();
        let cd = push_blob(&client, &base, "library/app", &config).await;
        let ld = push_blob(&client, &base, "library/app", &layer).await;
        manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        manifest_digest = digest(manifest.as_bytes());
        let r = client
            .put(format!("{base}/v2/library/app/manifests/v1"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Distribution is stopped; disco serves the same directory.
    let opts = Options {
        storage: Some(storage),
        kind: Kind::Disco,
        ..Options::default()
    };
    let reg = Registry::start_in(&dir.path().join("disco"), opts);
    let base = reg.url();
    let r = client
        .get(format!("{base}/v2/library/app/manifests/v1"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["docker-content-digest"],
        manifest_digest.as_str()
    );
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(r.bytes().await.unwrap(), manifest.as_bytes());
    let r = client
        .get(format!("{base}/v2/library/app/blobs/{}", digest(&layer)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), layer);
    let tags: serde_json::Value = client
        .get(format!("{base}/v2/library/app/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"name": "library/app", "tags": ["v1"]})
    );
    let cat: serde_json::Value = client
        .get(format!("{base}/v2/_catalog"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cat, serde_json::json!({"repositories": ["library/app"]}));
    // And disco's own writes land in the same layout Distribution reads.
    let r = client
        .delete(format!("{base}/v2/library/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(
        !dir.path()
            .join("storage/docker/registry/v2/repositories/library/app/_manifests/tags/v1")
            .exists()
    );
}
