//! OCI Distribution helpers for black-box HTTP tests: digests, exact-byte
//! manifests/indexes/configs, blob pushes (monolithic and chunked), OCI error
//! JSON assertions, `Link` header parsing, and a raw HTTP/1.1 client for
//! requests `reqwest` would normalise (dot segments, NUL, backslashes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url, header::HeaderMap};
use serde_json::Value;
use sha2::Digest as _;

use super::registry::{Kind, Registry};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI non-distributable gzip layer media type.
pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI empty descriptor media type (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker image manifest schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker schema 1 signed manifest.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema 1 unsigned manifest.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// The Accept header a modern client sends for manifests.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `sha512:<hex>` of `data`.
pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A content descriptor.
#[derive(Debug, Clone)]
pub struct Desc {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: usize,
}

impl Desc {
    /// Descriptor of `data` with `media_type` (sha256).
    pub fn of(media_type: &str, data: &[u8]) -> Self {
        Self {
            media_type: media_type.into(),
            digest: sha256(data),
            size: data.len(),
        }
    }

    /// The descriptor as compact JSON.
    pub fn json(&self) -> String {
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
            self.media_type, self.digest, self.size
        )
    }
}

/// The OCI empty JSON blob `{}`.
pub const EMPTY_JSON: &[u8] = b"{}";

/// A small image config, distinct per `seed`.
pub fn config(seed: u64) -> Vec<u8> {
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["SEED={seed}"]}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    )
    .into_bytes()
}

/// OCI image manifest bytes for `config` and `layers`.
pub fn oci_manifest(config: &Desc, layers: &[Desc]) -> Vec<u8> {
    oci_manifest_ext(config, layers, None, None, None)
}

/// OCI image manifest bytes with optional `artifactType`, `subject` and
/// annotations (a JSON object literal).
pub fn oci_manifest_ext(
    config: &Desc,
    layers: &[Desc],
    artifact_type: Option<&str>,
    subject: Option<&Desc>,
    annotations: Option<&str>,
) -> Vec<u8> {
    let mut s = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}""#);
    if let Some(at) = artifact_type {
        s.push_str(&format!(r#","artifactType":"{at}""#));
    }
    s.push_str(&format!(
        r#","config":{},"layers":[{}]"#,
        config.json(),
        join(layers)
    ));
    if let Some(sub) = subject {
        s.push_str(&format!(r#","subject":{}"#, sub.json()));
    }
    if let Some(a) = annotations {
        s.push_str(&format!(r#","annotations":{a}"#));
    }
    s.push('}');
    s.into_bytes()
}

/// OCI image index bytes listing `manifests` (each with a platform from
/// `platforms`, `(os, arch)`, when given).
pub fn oci_index(manifests: &[Desc], platforms: &[(&str, &str)]) -> Vec<u8> {
    oci_index_ext(manifests, platforms, None, None, None)
}

/// OCI image index bytes with optional `artifactType`, `subject` and
/// annotations (a JSON object literal).
pub fn oci_index_ext(
    manifests: &[Desc],
    platforms: &[(&str, &str)],
    artifact_type: Option<&str>,
    subject: Option<&Desc>,
    annotations: Option<&str>,
) -> Vec<u8> {
    let mut s = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}""#);
    if let Some(at) = artifact_type {
        s.push_str(&format!(r#","artifactType":"{at}""#));
    }
    s.push_str(&format!(
        r#","manifests":[{}]"#,
        join_platforms(manifests, platforms)
    ));
    if let Some(sub) = subject {
        s.push_str(&format!(r#","subject":{}"#, sub.json()));
    }
    if let Some(a) = annotations {
        s.push_str(&format!(r#","annotations":{a}"#));
    }
    s.push('}');
    s.into_bytes()
}

/// Docker schema 2 manifest bytes.
pub fn docker_manifest(config: &Desc, layers: &[Desc]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{},"layers":[{}]}}"#,
        config.json(),
        join(layers)
    )
    .into_bytes()
}

/// Docker manifest list bytes.
pub fn docker_list(manifests: &[Desc], platforms: &[(&str, &str)]) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{}]}}"#,
        join_platforms(manifests, platforms)
    )
    .into_bytes()
}

fn join(descs: &[Desc]) -> String {
    descs.iter().map(Desc::json).collect::<Vec<_>>().join(",")
}

fn join_platforms(descs: &[Desc], platforms: &[(&str, &str)]) -> String {
    descs
        .iter()
        .enumerate()
        .map(|(i, d)| match platforms.get(i) {
            Some((os, arch)) => format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"{os}"}}}}"#,
                d.media_type, d.digest, d.size
            ),
            None => d.json(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// True (and a note on stderr) when the registry under test is CNCF
/// Distribution 2.8 and the test asserts spec/issue behaviour it lacks.
pub fn skip_on_distribution(reg: &Registry, why: &str) -> bool {
    if reg.kind == Kind::Distribution {
        eprintln!("SKIPPED against Distribution 2.8: {why}");
        true
    } else {
        false
    }
}

/// A collected HTTP response.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body.
    pub body: Vec<u8>,
}

impl Resp {
    /// A header as a string ("" when missing).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
            .unwrap_or_default()
    }

    /// Whether the header is present.
    pub fn has(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status, printing the body on mismatch.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; headers {:?}; body {:?}",
            self.headers,
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts the response is an OCI error with `status` whose `errors`
    /// include `code`, and that the body has the spec's shape.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        if status != 405 || !self.body.is_empty() {
            assert!(
                self.header("content-type").starts_with("application/json"),
                "error Content-Type {:?}",
                self.header("content-type")
            );
        }
        let codes = error_codes(&self.body);
        assert!(
            codes.iter().any(|c| c == code),
            "expected error code {code}, got {codes:?}; body {:?}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// Parses an OCI error body, asserting the shape
/// `{"errors":[{"code":string,"message":string,"detail"?:any}, ...]}`, and
/// returns the codes.
#[track_caller]
pub fn error_codes(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let v: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text:?}"));
    let errors = v
        .get("errors")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("error body has no \"errors\" array: {text}"));
    assert!(!errors.is_empty(), "empty \"errors\" array: {text}");
    errors
        .iter()
        .map(|e| {
            let obj = e
                .as_object()
                .unwrap_or_else(|| panic!("error entry not an object: {text}"));
            for k in obj.keys() {
                assert!(
                    ["code", "message", "detail"].contains(&k.as_str()),
                    "unexpected key {k:?} in error entry: {text}"
                );
            }
            let code = obj
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("error entry without string \"code\": {text}"));
            assert!(
                obj.get("message").is_some_and(Value::is_string),
                "error entry without string \"message\": {text}"
            );
            code.to_string()
        })
        .collect()
}

/// Parses an RFC 8288 `Link` header and returns the `rel="next"` target.
pub fn link_next(link: &str) -> Option<String> {
    for part in link.split(',') {
        let part = part.trim();
        let (target, params) = part.strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').map(str::trim).any(|p| {
            let p = p.replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

/// HTTP client bound to one registry.
#[derive(Clone)]
pub struct Client {
    /// `http://127.0.0.1:port/`.
    pub base: Url,
    /// Underlying client (no redirects followed, so tests see them).
    pub http: reqwest::Client,
}

impl Client {
    /// A client for `reg`.
    pub fn new(reg: &Registry) -> Self {
        Self::for_url(&reg.url())
    }

    /// A client for the registry at `url`.
    pub fn for_url(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client");
        Self {
            base: Url::parse(url).expect("base url").join("/").expect("join"),
            http,
        }
    }

    /// Resolves a path or (absolute/relative) `Location` against the base.
    pub fn url(&self, path_or_url: &str) -> Url {
        self.base
            .join(path_or_url)
            .unwrap_or_else(|e| panic!("bad url {path_or_url:?}: {e}"))
    }

    /// Sends a request and collects the response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut req = self.http.request(method.clone(), self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        collect(
            req.send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}")),
        )
        .await
    }

    /// Sends a request built by the caller (e.g. with a streaming body).
    pub async fn send_req(&self, req: reqwest::RequestBuilder) -> Resp {
        collect(req.send().await.expect("request failed")).await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], None).await
    }

    /// HEAD.
    pub async fn head(&self, path: &str) -> Resp {
        self.send(Method::HEAD, path, &[], None).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// GET with extra headers.
    pub async fn get_h(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, path, headers, None).await
    }

    /// `POST /v2/<name>/blobs/uploads/` and asserts a 202 session; returns
    /// the `Location`.
    pub async fn start_upload(&self, name: &str) -> String {
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/"),
                &[("Content-Length", "0")],
                None,
            )
            .await;
        r.expect(202);
        let loc = r.header("location");
        assert!(!loc.is_empty(), "POST upload without Location");
        loc
    }

    /// Monolithic push (`POST ?digest=` with the body); asserts 201 and
    /// returns the digest.
    pub async fn push_blob(&self, name: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        self.push_blob_digest(name, data, &digest).await;
        digest
    }

    /// Monolithic push under the given digest; asserts 201.
    pub async fn push_blob_digest(&self, name: &str, data: &[u8], digest: &str) {
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
                &[("Content-Type", "application/octet-stream")],
                Some(data.to_vec()),
            )
            .await;
        if r.status == StatusCode::ACCEPTED {
            // Registries MAY ignore the monolithic POST and open a session.
            let loc = r.header("location");
            self.put_upload(&loc, digest, Some(data.to_vec()))
                .await
                .expect(201);
        } else {
            r.expect(201);
        }
    }

    /// Chunked push: POST, one PATCH per `chunk` bytes with `Content-Range`,
    /// then an empty PUT. Returns the digest.
    pub async fn push_blob_chunked(&self, name: &str, data: &[u8], chunk: usize) -> String {
        let digest = sha256(data);
        let mut loc = self.start_upload(name).await;
        for (i, part) in data.chunks(chunk).enumerate() {
            let start = i * chunk;
            let r = self.patch_chunk(&loc, start, part).await;
            r.expect(202);
            assert_eq!(r.header("range"), format!("0-{}", start + part.len() - 1));
            loc = r.header("location");
        }
        self.put_upload(&loc, &digest, None).await.expect(201);
        digest
    }

    /// PATCH one chunk with `Content-Range: start-end`.
    pub async fn patch_chunk(&self, loc: &str, start: usize, data: &[u8]) -> Resp {
        let range = format!("{}-{}", start, start + data.len() - 1);
        self.send(
            Method::PATCH,
            loc,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            Some(data.to_vec()),
        )
        .await
    }

    /// PUT `loc?digest=` with an optional final chunk.
    pub async fn put_upload(&self, loc: &str, digest: &str, body: Option<Vec<u8>>) -> Resp {
        let mut url = self.url(loc);
        url.query_pairs_mut().append_pair("digest", digest);
        let len = body.as_ref().map_or(0, Vec::len).to_string();
        let mut req = self
            .http
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len);
        req = req.body(body.unwrap_or_default());
        self.send_req(req).await
    }

    /// PUT a manifest; returns the response.
    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Resp {
        self.send(
            Method::PUT,
            &format!("/v2/{name}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            Some(body.to_vec()),
        )
        .await
    }

    /// PUT a manifest and asserts 201 with the right `Docker-Content-Digest`;
    /// returns its descriptor.
    pub async fn push_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Desc {
        let r = self.put_manifest(name, reference, media_type, body).await;
        r.expect(201);
        let d = Desc::of(media_type, body);
        assert_eq!(
            r.header("docker-content-digest"),
            d.digest,
            "Docker-Content-Digest of manifest PUT"
        );
        d
    }

    /// GET a manifest with the all-types Accept header.
    pub async fn get_manifest(&self, name: &str, reference: &str) -> Resp {
        self.get_h(
            &format!("/v2/{name}/manifests/{reference}"),
            &[("Accept", ACCEPT_ALL_MANIFESTS)],
        )
        .await
    }

    /// Pushes a config and `n` small layers and an OCI manifest tagged
    /// `tag` (or by digest when `tag` is None); returns the manifest
    /// descriptor and its bytes.
    pub async fn push_image(&self, name: &str, tag: Option<&str>, seed: u64) -> (Desc, Vec<u8>) {
        let cfg = config(seed);
        self.push_blob(name, &cfg).await;
        let layer = bytes(1000 + seed as usize, seed);
        self.push_blob(name, &layer).await;
        let m = oci_manifest(&Desc::of(OCI_CONFIG, &cfg), &[Desc::of(OCI_LAYER, &layer)]);
        let d = Desc::of(OCI_MANIFEST, &m);
        self.push_manifest(name, tag.unwrap_or(&d.digest), OCI_MANIFEST, &m)
            .await;
        (d, m)
    }

    /// Tags of `name` (asserts 200).
    pub async fn tags(&self, name: &str) -> Vec<String> {
        let r = self.get(&format!("/v2/{name}/tags/list")).await;
        r.expect(200);
        strings(&r.json()["tags"])
    }
}

/// A JSON array of strings (null → empty).
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap_or_else(|| panic!("not a string: {s}"))
                    .to_string()
            })
            .collect(),
        other => panic!("not an array: {other}"),
    }
}

async fn collect(r: reqwest::Response) -> Resp {
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("response body cut off").to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// A response from [`raw_request`].
#[derive(Debug)]
pub struct RawResp {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResp {
    /// First header value named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with the exact request target `target`
/// (bytes sent as given) and reads the response (`Connection: close`). The
/// body is written from a separate thread so a server that answers early
/// (e.g. 413) is still heard; write errors are ignored.
pub fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> RawResp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let mut head = Vec::new();
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(target);
    head.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").as_bytes(),
    );
    for (k, v) in headers {
        head.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "PUT" || method == "POST" || method == "PATCH" {
        head.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    s.write_all(&head).expect("write request head");
    let mut w = s.try_clone().expect("clone socket");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&body);
        let _ = w.flush();
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the response arrived (server closed with our
            // body unread) ends the response.
            Err(e) if !buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading response to {method}: {e}"),
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    parse_raw(&buf)
}

fn parse_raw(buf: &[u8]) -> RawResp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no header end in response: {:?}",
                String::from_utf8_lossy(buf)
            )
        });
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    RawResp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&data[..eol]).to_string();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_str:?}"));
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// Every file and directory under `root`, as paths relative to it.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}
