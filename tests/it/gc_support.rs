//! Support for the garbage collection tests: images pushed over the API
//! whose every byte the test keeps, checks that an image is whole (byte
//! for byte) or that a blob is gone (404 `BLOB_UNKNOWN`), and collections
//! asked over HTTP.

use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::support::oci::{
    Client, Desc, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, bytes, config, oci_index,
    oci_manifest_ext, sha256,
};
use crate::support::registry::{Kind, Options, Registry};

/// An image (or index) as pushed: what must come back byte for byte.
#[derive(Debug, Clone)]
pub struct Img {
    /// Repository.
    pub repo: String,
    /// Manifest descriptor.
    pub desc: Desc,
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// Config and layers: digest and bytes.
    pub blobs: Vec<(String, Vec<u8>)>,
}

/// Pushes an image of a config and `layers` fresh layers plus `shared`
/// layers, tagged `tag` (by digest when None), with an optional subject.
pub async fn push_img(
    c: &Client,
    repo: &str,
    tag: Option<&str>,
    seed: u64,
    layers: usize,
    shared: &[Vec<u8>],
    subject: Option<&Desc>,
) -> Img {
    let cfg = config(seed);
    let mut blobs = vec![(sha256(&cfg), cfg.clone())];
    let mut descs = Vec::new();
    for i in 0..layers {
        let l = bytes(512 + (seed as usize % 97) * 13 + i, seed * 1000 + i as u64);
        blobs.push((sha256(&l), l));
    }
    for s in shared {
        blobs.push((sha256(s), s.clone()));
    }
    for (_, b) in &blobs {
        c.push_blob(repo, b).await;
    }
    for (_, b) in &blobs[1..] {
        descs.push(Desc::of(OCI_LAYER, b));
    }
    let m = oci_manifest_ext(&Desc::of(OCI_CONFIG, &cfg), &descs, None, subject, None);
    let desc = Desc::of(OCI_MANIFEST, &m);
    c.push_manifest(repo, tag.unwrap_or(&desc.digest), OCI_MANIFEST, &m)
        .await;
    Img {
        repo: repo.into(),
        desc,
        manifest: m,
        blobs,
    }
}

/// Pushes an index of `children` (already pushed) tagged `tag`.
pub async fn push_index(c: &Client, repo: &str, tag: &str, children: &[&Img]) -> Img {
    let descs: Vec<Desc> = children.iter().map(|i| i.desc.clone()).collect();
    let plats: Vec<(&str, &str)> = (0..children.len())
        .map(|i| ("linux", if i == 0 { "amd64" } else { "arm64" }))
        .collect();
    let m = oci_index(&descs, &plats);
    let desc = c.push_manifest(repo, tag, OCI_INDEX, &m).await;
    Img {
        repo: repo.into(),
        desc,
        manifest: m,
        blobs: Vec::new(),
    }
}

/// Asserts the image's manifest and blobs come back byte for byte.
pub async fn assert_whole(c: &Client, img: &Img) {
    let r = c.get_manifest(&img.repo, &img.desc.digest).await;
    r.expect(200);
    assert_eq!(
        r.body, img.manifest,
        "manifest {} of {}",
        img.desc.digest, img.repo
    );
    for (d, b) in &img.blobs {
        let r = c.get(&format!("/v2/{}/blobs/{d}", img.repo)).await;
        r.expect(200);
        assert!(r.body == *b, "blob {d} of {} differs", img.repo);
    }
}

/// Asserts a blob is gone: 404 `BLOB_UNKNOWN`.
pub async fn assert_blob_gone(c: &Client, repo: &str, digest: &str) {
    c.get(&format!("/v2/{repo}/blobs/{digest}"))
        .await
        .expect_error(404, "BLOB_UNKNOWN");
}

/// `POST /disco/v1/gc?<query>`; asserts 200 and returns the report.
pub async fn gc(c: &Client, query: &str) -> Value {
    let r = c
        .send(Method::POST, &format!("/disco/v1/gc?{query}"), &[], None)
        .await;
    r.expect(200);
    r.json()
}

/// The digests of a report's `blobs`, sorted.
pub fn report_blobs(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["blobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no blobs in {v}"))
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// Bytes of the files under `dir`.
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

/// A disco on filesystem storage (deletes on) with `gc` settings (YAML
/// body of the `gc:` section) and extra top-level YAML.
pub fn start_fs(dir: &Path, gc: &str, extra: &str) -> Registry {
    Registry::start_in(
        dir,
        Options {
            storage: None,
            extra: format!("gc:\n{gc}{extra}"),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    )
}
