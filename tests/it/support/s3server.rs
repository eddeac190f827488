//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`,
//! installed by `scripts/test` into `tests/py/.venv`) on 127.0.0.1 with a
//! port it picks itself, killed by PID when the handle drops.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use disco::storage::s3::S3Config;
use tempfile::TempDir;

use super::registry::http_status;

/// Access key the tests sign with (moto accepts any unless auth is on).
pub const ACCESS_KEY: &str = "disco-test-access";
/// Secret key the tests sign with.
pub const SECRET_KEY: &str = "disco-test-secret";

/// Path of the `moto_server` entry point in the test venv.
pub fn moto_server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/.venv/bin/moto_server")
}

/// A running moto server.
pub struct S3Server {
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: TempDir,
}

static SHARED: Mutex<Weak<S3Server>> = Mutex::new(Weak::new());

impl S3Server {
    /// Starts a fresh server (authentication off: any key is accepted).
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts a fresh server with extra environment for moto.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let bin = moto_server_bin();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test (it creates tests/py/.venv and installs \
             tests/py/requirements-s3.txt)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("disco-s3-")
            .tempdir()
            .unwrap();
        let log_path = dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .envs(env.iter().copied())
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut server = S3Server {
            addr: "127.0.0.1:0".parse().unwrap(),
            child: Some(child),
            dir,
        };
        server.wait_ready(Duration::from_secs(60));
        server
    }

    /// A server shared by every test of this process that holds it; it is
    /// killed when the last holder drops it (and restarted on next use).
    pub fn shared() -> Arc<S3Server> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(S3Server::start());
        *slot = Arc::downgrade(&server);
        server
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("moto.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("moto_server exited early ({status}); log:\n{}", self.log());
            }
            if self.addr.port() == 0 {
                // moto prints " * Running on http://127.0.0.1:PORT" once bound.
                if let Some(port) = self.log().lines().find_map(|l| {
                    l.split("Running on http://127.0.0.1:")
                        .nth(1)
                        .and_then(|p| p.trim().parse::<u16>().ok())
                }) {
                    self.addr = SocketAddr::from(([127, 0, 0, 1], port));
                }
            }
            if self.addr.port() != 0 && http_status(&self.addr, "/moto-api/") == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "moto_server not ready after {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A driver configuration for `bucket` on this server, signed with the
    /// test keys, small parts (5 MiB) and few retries.
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            accesskey: ACCESS_KEY.into(),
            secretkey: SECRET_KEY.into(),
            region: "us-east-1".into(),
            regionendpoint: self.endpoint(),
            forcepathstyle: true,
            bucket: bucket.into(),
            chunksize: 5 * 1024 * 1024,
            multipartcopychunksize: 5 * 1024 * 1024,
            multipartcopythresholdsize: 5 * 1024 * 1024,
            multipartcopymaxconcurrency: 4,
            maxattempts: 3,
            ..S3Config::default()
        }
    }

    /// A plain SDK client for checking what the driver stored.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// Creates a bucket with a fresh unique name and returns the name.
    pub async fn create_bucket(&self) -> String {
        let name = format!("disco-{}", uuid::Uuid::new_v4().simple());
        self.client()
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {name}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
        name
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An SDK client for an endpoint with static keys, path-style addressing.
pub fn client_for(endpoint: &str, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .build();
    Client::from_conf(conf)
}

/// Percent-encodes a form value.
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text between `<tag>` and `</tag>` in an XML answer.
fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_string())
}

impl S3Server {
    /// One IAM Query API call. While authentication is off moto checks no
    /// signature; the header only routes the request to IAM.
    async fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut body = String::from("Version=2010-05-08");
        for (k, v) in params {
            body.push_str(&format!("&{k}={}", form_encode(v)));
        }
        let resp = reqwest::Client::new()
            .post(format!("{}/", self.endpoint()))
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAROUTING/20240101/us-east-1/iam/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("IAM request");
        let status = resp.status();
        let text = resp.text().await.expect("IAM response");
        assert!(status.is_success(), "IAM {params:?}: {status} {text}");
        text
    }

    /// Creates an IAM user allowed `s3:*`, then turns authentication on:
    /// from then on only that user's keys are accepted. Returns
    /// `(access key id, secret key)`.
    pub async fn enable_auth_with_user(&self) -> (String, String) {
        self.iam(&[("Action", "CreateUser"), ("UserName", "disco")])
            .await;
        let keys = self
            .iam(&[("Action", "CreateAccessKey"), ("UserName", "disco")])
            .await;
        let access = xml_field(&keys, "AccessKeyId").expect("AccessKeyId");
        let secret = xml_field(&keys, "SecretAccessKey").expect("SecretAccessKey");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        self.iam(&[
            ("Action", "PutUserPolicy"),
            ("UserName", "disco"),
            ("PolicyName", "s3-all"),
            ("PolicyDocument", policy),
        ])
        .await;
        let resp = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint()))
            .body("0")
            .send()
            .await
            .expect("reset-auth");
        assert!(resp.status().is_success(), "reset-auth: {}", resp.status());
        (access, secret)
    }
}

/// A response body of unknown length (so a short one with a longer
/// Content-Length header is sent as is, then the connection closes).
type ProxyBody = http_body_util::StreamBody<
    futures::stream::Iter<
        std::vec::IntoIter<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>,
    >,
>;

fn proxy_body(data: bytes::Bytes) -> ProxyBody {
    http_body_util::StreamBody::new(futures::stream::iter(vec![Ok(hyper::body::Frame::data(
        data,
    ))]))
}

/// An HTTP proxy in front of an S3 server that answers a share of requests
/// with S3 throttling and server errors instead of forwarding them, to
/// exercise retries. Stopped when dropped.
pub struct FaultProxy {
    /// `127.0.0.1:port` to point the driver at.
    pub addr: SocketAddr,
    seen: Arc<std::sync::atomic::AtomicU64>,
    injected: Arc<std::sync::atomic::AtomicU64>,
    truncated: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Forwards to `upstream` (`http://host:port`), failing every
    /// `every`-th request (1 = all but retries) alternately with
    /// `503 SlowDown` and `500 InternalError`; a failed request is not
    /// failed again when retried.
    pub async fn start(upstream: String, every: u64) -> Self {
        Self::start_with(upstream, every, 0).await
    }

    /// Forwards to `upstream`, failing every `every`-th request (0 = none)
    /// and cutting the bodies of the first `truncate` successful GETs
    /// longer than 64 KiB off half way (the connection closes short of the
    /// announced length).
    pub async fn start_with(upstream: String, every: u64, truncate: u64) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};

        use http_body_util::BodyExt;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let injected = Arc::new(AtomicU64::new(0));
        let truncated = Arc::new(AtomicU64::new(0));
        let client = reqwest::Client::new();
        let (seen2, injected2, truncated2) = (seen.clone(), injected.clone(), truncated.clone());
        let failed: Arc<parking_lot::Mutex<std::collections::HashSet<String>>> = Arc::default();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, upstream) = (client.clone(), upstream.clone());
                let (seen, injected) = (seen2.clone(), injected2.clone());
                let truncated = truncated2.clone();
                let failed = failed.clone();
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (client, upstream) = (client.clone(), upstream.clone());
                    let (seen, injected) = (seen.clone(), injected.clone());
                    let truncated = truncated.clone();
                    let failed = failed.clone();
                    async move {
                        let n = seen.fetch_add(1, Ordering::SeqCst);
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        // A request failed once goes through when retried:
                        // the driver's retries must suffice, whatever other
                        // requests run meanwhile.
                        let key = format!("{} {}", parts.method, parts.uri);
                        let retried = failed.lock().remove(&key);
                        if every > 0 && n % every == 0 && !retried {
                            failed.lock().insert(key);
                            let k = injected.fetch_add(1, Ordering::SeqCst);
                            let (status, code) = if k % 2 == 0 {
                                (503, "SlowDown")
                            } else {
                                (500, "InternalError")
                            };
                            let xml = format!(
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                                 <Message>injected by the test proxy</Message></Error>"
                            );
                            return Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/xml")
                                    .body(proxy_body(bytes::Bytes::from(xml)))
                                    .unwrap(),
                            );
                        }
                        let pq = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/");
                        let mut fwd =
                            client.request(parts.method.clone(), format!("{upstream}{pq}"));
                        for (name, value) in &parts.headers {
                            if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                                fwd = fwd.header(name, value);
                            }
                        }
                        let resp = match fwd.body(body).send().await {
                            Ok(r) => r,
                            Err(e) => {
                                return Ok(hyper::Response::builder()
                                    .status(502)
                                    .body(proxy_body(bytes::Bytes::from(e.to_string())))
                                    .unwrap());
                            }
                        };
                        let mut out = hyper::Response::builder().status(resp.status().as_u16());
                        for (name, value) in resp.headers() {
                            if !matches!(name.as_str(), "transfer-encoding" | "connection") {
                                out = out.header(name, value);
                            }
                        }
                        let is_get = parts.method == hyper::Method::GET;
                        let status_ok = resp.status().is_success();
                        let mut data = resp.bytes().await.unwrap_or_default();
                        if is_get
                            && status_ok
                            && data.len() > 64 * 1024
                            && truncated
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                                    (t < truncate).then_some(t + 1)
                                })
                                .is_ok()
                        {
                            // Keeps the upstream Content-Length: hyper ends the
                            // connection when the short body runs out.
                            data.truncate(data.len() / 2);
                        }
                        Ok(out.body(proxy_body(data)).unwrap())
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            addr,
            seen,
            injected,
            truncated,
            task,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered with an injected error so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// GET bodies cut short so far.
    pub fn truncated(&self) -> u64 {
        self.truncated.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn seen(&self) -> u64 {
        self.seen.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
