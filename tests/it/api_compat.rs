//! Storage compatibility through the API: a storage directory written by
//! CNCF Distribution 2.x is served as is by the registry under test, and the
//! reverse (the issue: "in Distribution's on-disk layout ... readable by
//! disco as is"). With `DISCO_IT_REGISTRY=distribution` both sides are
//! Distribution, which checks the test itself.

use std::path::Path;

use crate::support::oci::{
    self, Client, Desc, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, bytes,
};
use crate::support::registry::{Kind, Options, Registry};

/// What was pushed: (repo, tag, manifest bytes, media type, blobs).
struct Pushed {
    repo: &'static str,
    tag: &'static str,
    manifest: Vec<u8>,
    media_type: &'static str,
    blobs: Vec<Vec<u8>>,
}

fn storage_opts(root: &Path, kind: Kind) -> Options {
    Options {
        storage: Some(format!(
            "  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            root.display()
        )),
        kind,
        ..Options::default()
    }
}

async fn push_all(c: &Client) -> Vec<Pushed> {
    let mut out = Vec::new();
    let mut children = Vec::new();
    for (i, (repo, tag)) in [
        ("compat/app", "v1"),
        ("compat/app", "v2"),
        ("compat/deep/nested/lib", "latest"),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = oci::config(100 + i as u64);
        let layers = vec![
            bytes(70_000 + i, 200 + i as u64),
            bytes(1_000 + i, 300 + i as u64),
        ];
        c.push_blob(repo, &cfg).await;
        for l in &layers {
            c.push_blob_chunked(repo, l, 16_384).await;
        }
        let descs: Vec<Desc> = layers.iter().map(|l| Desc::of(OCI_LAYER, l)).collect();
        let m = oci::oci_manifest(&Desc::of(OCI_CONFIG, &cfg), &descs);
        let d = c.push_manifest(repo, tag, OCI_MANIFEST, &m).await;
        if repo == "compat/app" {
            children.push(d);
        }
        let mut blobs = layers;
        blobs.push(cfg);
        out.push(Pushed {
            repo,
            tag,
            manifest: m,
            media_type: OCI_MANIFEST,
            blobs,
        });
    }
    let index = oci::oci_index(&children, &[("linux", "amd64"), ("linux", "arm64")]);
    c.push_manifest("compat/app", "multi", OCI_INDEX, &index)
        .await;
    out.push(Pushed {
        repo: "compat/app",
        tag: "multi",
        manifest: index,
        media_type: OCI_INDEX,
        blobs: vec![],
    });
    out
}

async fn verify_all(c: &Client, pushed: &[Pushed]) {
    for p in pushed {
        for reference in [p.tag.to_string(), oci::sha256(&p.manifest)] {
            let r = c.get_manifest(p.repo, &reference).await;
            r.expect(200);
            assert!(
                r.body == p.manifest,
                "{}:{reference}: manifest bytes differ",
                p.repo
            );
            assert_eq!(
                r.header("content-type"),
                p.media_type,
                "{}:{reference}",
                p.repo
            );
            assert_eq!(r.header("docker-content-digest"), oci::sha256(&p.manifest));
        }
        for b in &p.blobs {
            let r = c
                .get(&format!("/v2/{}/blobs/{}", p.repo, oci::sha256(b)))
                .await;
            r.expect(200);
            assert!(&r.body == b, "{}: blob bytes differ", p.repo);
        }
    }
    let mut tags = c.tags("compat/app").await;
    tags.sort();
    assert_eq!(tags, ["multi", "v1", "v2"]);
    let r = c.get("/v2/_catalog").await;
    r.expect(200);
    assert_eq!(
        oci::strings(&r.json()["repositories"]),
        ["compat/app", "compat/deep/nested/lib"]
    );
}

async fn write_then_read(writer: Kind, reader: Kind) {
    let root = tempfile::tempdir().unwrap();
    let storage = root.path().join("storage");
    let pushed = {
        let mut reg = Registry::start_with(storage_opts(&storage, writer));
        let c = Client::new(&reg);
        let pushed = push_all(&c).await;
        reg.stop();
        pushed
    };
    let reg = Registry::start_with(storage_opts(&storage, reader));
    let c = Client::new(&reg);
    verify_all(&c, &pushed).await;
    // The reader can extend what the writer left.
    let (d, m) = c.push_image("compat/app", Some("v3"), 999).await;
    assert_eq!(
        c.get_manifest("compat/app", &d.digest)
            .await
            .expect(200)
            .body,
        m
    );
}

#[tokio::test]
async fn distribution_storage_is_served_as_is() {
    write_then_read(Kind::Distribution, Kind::from_env()).await;
}

#[tokio::test]
async fn storage_written_by_the_registry_is_readable_by_distribution() {
    write_then_read(Kind::from_env(), Kind::Distribution).await;
}

#[tokio::test]
async fn referrers_of_manifests_written_by_distribution_are_listed() {
    let reader = Kind::from_env();
    if reader == Kind::Distribution {
        eprintln!("SKIPPED against Distribution 2.8: no referrers API");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let storage = root.path().join("storage");
    let (subject, referrer) = {
        let mut reg = Registry::start_with(storage_opts(&storage, Kind::Distribution));
        let c = Client::new(&reg);
        let (subject, _) = c.push_image("compat/signed", Some("v1"), 1).await;
        c.push_blob("compat/signed", oci::EMPTY_JSON).await;
        let empty = Desc::of(oci::OCI_EMPTY, oci::EMPTY_JSON);
        let sig = oci::oci_manifest_ext(
            &empty,
            std::slice::from_ref(&empty),
            Some("application/vnd.example.sig.v1"),
            Some(&subject),
            Some(r#"{"org.example.k":"v"}"#),
        );
        let d = c
            .push_manifest("compat/signed", &oci::sha256(&sig), OCI_MANIFEST, &sig)
            .await;
        reg.stop();
        (subject, d)
    };
    let reg = Registry::start_with(storage_opts(&storage, reader));
    let c = Client::new(&reg);
    let r = c
        .get(&format!("/v2/compat/signed/referrers/{}", subject.digest))
        .await;
    r.expect(200);
    let v = r.json();
    let ds = v["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        ds.len(),
        1,
        "referrers of a Distribution-written subject: {v}"
    );
    assert_eq!(ds[0]["digest"], referrer.digest.as_str());
    assert_eq!(ds[0]["artifactType"], "application/vnd.example.sig.v1");
    assert_eq!(ds[0]["annotations"]["org.example.k"], "v");
}

#[tokio::test]
async fn inmemory_storage_serves_the_whole_flow() {
    let reg = Registry::start_with(Options {
        storage: Some("  inmemory: {}\n  delete:\n    enabled: true\n".into()),
        ..Options::default()
    });
    let c = Client::new(&reg);
    let pushed = push_all(&c).await;
    verify_all(&c, &pushed).await;
    let data = bytes(3000, 77);
    let digest = c.push_blob_chunked("compat/app", &data, 1000).await;
    let r = c
        .get_h(
            &format!("/v2/compat/app/blobs/{digest}"),
            &[("Range", "bytes=1000-1999")],
        )
        .await;
    r.expect(206);
    assert_eq!(r.body, &data[1000..2000]);
    c.delete(&format!("/v2/compat/app/blobs/{digest}"))
        .await
        .expect(202);
    c.head(&format!("/v2/compat/app/blobs/{digest}"))
        .await
        .expect(404);
    let m = &pushed[0];
    c.delete(&format!(
        "/v2/{}/manifests/{}",
        m.repo,
        oci::sha256(&m.manifest)
    ))
    .await
    .expect(202);
    c.get_manifest(m.repo, m.tag)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}
