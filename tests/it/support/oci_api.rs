//! A small blocking OCI Distribution API client for checking what a registry
//! holds after real clients pushed to it: exact manifest bytes, blob bytes
//! hashed while streaming (never buffered), decompressed layer digests.

use std::io::Write;

use reqwest::header::HeaderMap;
use sha2::{Digest, Sha256};

use super::images::{
    self, HashWriter, MT_INDEX, MT_LAYER_GZIP, MT_LAYER_TAR, MT_MANIFEST, OciLayout,
};

/// Media types sent in `Accept` for manifest requests.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest.
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker gzip layer.
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A response with its whole body.
#[derive(Debug)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Digests of a blob read from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobCheck {
    /// HTTP status of the GET.
    pub status: u16,
    /// `sha256:` of the bytes received.
    pub digest: String,
    /// Bytes received.
    pub size: u64,
    /// `sha256:` of the gunzipped bytes, when asked for.
    pub uncompressed: Option<String>,
}

/// Blocking client for one registry base URL.
pub struct Api {
    base: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    authorization: Option<String>,
}

impl Api {
    /// A client for `base` (`http://127.0.0.1:port`).
    pub fn new(base: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("reqwest client");
        Api {
            base: base.trim_end_matches('/').to_string(),
            rt,
            client,
            authorization: None,
        }
    }

    /// A client sending `Authorization: <authorization>` with every request.
    pub fn authorized(base: &str, authorization: &str) -> Self {
        let mut api = Self::new(base);
        api.authorization = Some(authorization.to_string());
        api
    }

    /// A client with Basic credentials.
    pub fn basic(base: &str, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Self::authorized(base, &format!("Basic {b}"))
    }

    /// Any request; `path` starts with `/v2/`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.rt.block_on(async {
            let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{path}: body: {e}"))
                .to_vec();
            Resp {
                status,
                headers,
                body,
            }
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], Vec::new())
    }

    /// `GET /v2/<repo>/manifests/<reference>` accepting every manifest type.
    pub fn manifest(&self, repo: &str, reference: &str) -> Resp {
        self.request(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", ACCEPT_MANIFESTS)],
            Vec::new(),
        )
    }

    /// `HEAD /v2/<repo>/manifests/<reference>` accepting every manifest type.
    pub fn manifest_head(&self, repo: &str, reference: &str) -> Resp {
        self.request(
            "HEAD",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", ACCEPT_MANIFESTS)],
            Vec::new(),
        )
    }

    /// Tags of a repository (one page of up to 1000).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("/v2/{repo}/tags/list?n=1000"));
        assert_eq!(
            r.status,
            200,
            "tags/list of {repo}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Streams a blob, hashing it (and its gunzipped form if `gunzip`).
    pub fn blob(&self, repo: &str, digest: &str, gunzip: bool) -> BlobCheck {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        self.rt.block_on(async {
            let mut resp = self
                .client
                .get(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = resp.status().as_u16();
            let mut outer = Sha256::new();
            let mut size = 0u64;
            let mut gz =
                gunzip.then(|| flate2::write::GzDecoder::new(HashWriter::new(std::io::sink())));
            while let Some(chunk) = resp
                .chunk()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: body: {e}"))
            {
                outer.update(&chunk);
                size += chunk.len() as u64;
                if let Some(gz) = gz.as_mut() {
                    gz.write_all(&chunk)
                        .unwrap_or_else(|e| panic!("{digest}: not gzip: {e}"));
                }
            }
            let uncompressed = gz.map(|gz| {
                let inner = gz
                    .finish()
                    .unwrap_or_else(|e| panic!("{digest}: gzip: {e}"));
                inner.finish().0
            });
            BlobCheck {
                status,
                digest: format!("sha256:{}", hex::encode(outer.finalize())),
                size,
                uncompressed,
            }
        })
    }

    /// Asserts the registry serves `layout`'s content under `repo:reference`
    /// byte for byte: the root manifest/index bytes, every child manifest,
    /// config and layer (digests and sizes equal).
    pub fn assert_same_as_layout(&self, repo: &str, reference: &str, layout: &OciLayout) {
        let m = self.manifest(repo, reference);
        assert_eq!(
            m.status,
            200,
            "GET manifest {repo}:{reference}: {}",
            String::from_utf8_lossy(&m.body)
        );
        assert_eq!(
            m.body,
            layout.read_blob(&layout.root.digest).unwrap(),
            "manifest bytes of {repo}:{reference}"
        );
        assert_eq!(
            m.header("docker-content-digest"),
            Some(layout.root.digest.as_str())
        );
        assert_eq!(
            m.header("content-type"),
            Some(layout.root.media_type.as_str())
        );
        for d in layout.blobs().into_iter().skip(1) {
            if d.media_type == MT_MANIFEST || d.media_type == MT_INDEX {
                let r = self.manifest(repo, &d.digest);
                assert_eq!(r.status, 200, "child manifest {}", d.digest);
                assert_eq!(images::sha256_digest(&r.body), d.digest);
            } else {
                let b = self.blob(repo, &d.digest, false);
                assert_eq!(
                    (b.status, b.digest.as_str(), b.size),
                    (200, d.digest.as_str(), d.size),
                    "blob {}",
                    d.digest
                );
            }
        }
    }

    /// Asserts that `repo:reference` is a complete, self-consistent image
    /// (or index of images) whose layers decompress to `diff_ids` — for
    /// pushes where the client may have re-compressed layers. Returns the
    /// manifest digest.
    pub fn assert_image_matches_diff_ids(
        &self,
        repo: &str,
        reference: &str,
        layout: &OciLayout,
    ) -> String {
        let m = self.manifest(repo, reference);
        assert_eq!(
            m.status,
            200,
            "GET manifest {repo}:{reference}: {}",
            String::from_utf8_lossy(&m.body)
        );
        let digest = images::sha256_digest(&m.body);
        if let Some(d) = m.header("docker-content-digest") {
            assert_eq!(d, digest, "Docker-Content-Digest of {repo}:{reference}");
        }
        let v = m.json();
        if let Some(children) = v["manifests"].as_array() {
            for c in children {
                let child = c["digest"].as_str().expect("child digest");
                let arch = c["platform"]["architecture"].as_str().expect("platform");
                let want = layout
                    .image_for(arch)
                    .unwrap_or_else(|| panic!("no {arch} image in layout"));
                self.assert_one_image(repo, child, want);
            }
        } else {
            self.assert_one_image(repo, reference, layout.image());
        }
        digest
    }

    fn assert_one_image(&self, repo: &str, reference: &str, want: &images::Image) {
        let m = self.manifest(repo, reference);
        assert_eq!(m.status, 200, "GET manifest {repo}@{reference}");
        let v = m.json();
        let config = v["config"]["digest"].as_str().expect("config digest");
        assert_eq!(config, want.config.digest, "config of {repo}@{reference}");
        let c = self.blob(repo, config, false);
        assert_eq!((c.status, c.digest.as_str()), (200, config));
        let layers = v["layers"].as_array().expect("layers");
        assert_eq!(
            layers.len(),
            want.layers.len(),
            "layer count of {repo}@{reference}"
        );
        for (l, w) in layers.iter().zip(&want.layers) {
            let d = l["digest"].as_str().expect("layer digest");
            let mt = l["mediaType"].as_str().unwrap_or("");
            let gz = mt == MT_LAYER_GZIP || mt == MT_DOCKER_LAYER;
            let b = self.blob(repo, d, gz);
            assert_eq!(
                (b.status, b.digest.as_str()),
                (200, d),
                "layer {d} of {repo}@{reference}"
            );
            assert_eq!(Some(b.size), l["size"].as_u64(), "layer size {d}");
            let diff_id = if gz {
                b.uncompressed.clone().unwrap_or_default()
            } else {
                b.digest.clone()
            };
            assert!(
                gz || mt == MT_LAYER_TAR || mt.ends_with(".tar"),
                "unexpected layer type {mt}"
            );
            assert_eq!(diff_id, w.diff_id, "diff_id of layer {d}");
        }
    }
}
