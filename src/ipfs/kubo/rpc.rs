//! The HTTP side of the Kubo RPC API: `POST /api/v0/<cmd>?arg=...`,
//! multipart request bodies streamed from the caller, response bodies
//! streamed to the caller with the `X-Stream-Error` trailer honoured,
//! timeouts, and retries with backoff for idempotent calls.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt, stream};
use http_body_util::BodyExt;
use reqwest::Url;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::KuboConfig;
use super::error::{classify, error_message};
use crate::ipfs::{IpfsError, Result};
use crate::storage::ByteStream;

/// Name of the trailer carrying an error that happened after a 200.
const STREAM_ERROR: &str = "x-stream-error";
/// Largest error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest single JSON object accepted in an answer.
pub const MAX_JSON: usize = 64 * 1024 * 1024;

/// Wraps an [`IpfsError`] into an `io::Error` for byte streams; the typed
/// error stays reachable with [`from_io`].
pub fn to_io(e: IpfsError) -> io::Error {
    let kind = match e {
        IpfsError::NotFound(_) => io::ErrorKind::NotFound,
        IpfsError::Timeout(_) => io::ErrorKind::TimedOut,
        IpfsError::Unavailable(_) => io::ErrorKind::ConnectionAborted,
        IpfsError::Invalid(_) => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

/// The typed error inside an `io::Error` made by [`to_io`], or a
/// classification of a foreign one.
pub fn from_io(e: io::Error) -> IpfsError {
    if e.get_ref().is_some_and(|inner| inner.is::<IpfsError>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(ipfs) = inner.downcast::<IpfsError>()
        {
            return *ipfs;
        }
        return IpfsError::Other("stream error".into());
    }
    match e.kind() {
        io::ErrorKind::NotFound => IpfsError::NotFound(e.to_string()),
        io::ErrorKind::TimedOut => IpfsError::Timeout(e.to_string()),
        _ => IpfsError::Other(e.to_string()),
    }
}

/// A request body.
pub enum ReqBody {
    /// No body.
    Empty,
    /// One multipart file part from memory (can be resent on retry).
    Bytes(Bytes),
    /// One multipart file part streamed from the caller (sent once).
    Stream(ByteStream),
}

/// One RPC call.
pub struct Call {
    /// Command path below `/api/v0/`, e.g. `files/stat`.
    pub cmd: &'static str,
    /// Query parameters in order (`arg` may repeat).
    pub args: Vec<(&'static str, String)>,
    /// The body.
    pub body: ReqBody,
    /// Safe to send again after a failure that may have reached the node.
    pub idempotent: bool,
    /// Time the node may take before its answer starts (or, with a streamed
    /// body, after the last byte was sent).
    pub wait: Duration,
}

impl Call {
    /// A call with no body, waiting up to `wait`.
    pub fn new(cmd: &'static str, wait: Duration) -> Self {
        Self {
            cmd,
            args: Vec::new(),
            body: ReqBody::Empty,
            idempotent: false,
            wait,
        }
    }

    /// Adds a query parameter.
    pub fn arg(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.args.push((key, value.into()));
        self
    }

    /// Marks the call idempotent (retried on connection failures).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: ReqBody) -> Self {
        self.body = body;
        self
    }
}

/// Progress of a streamed request body, watched while waiting for the
/// answer: a node that stops reading is detected by the idle timeout.
struct Progress {
    start: Instant,
    last_ms: AtomicU64,
    done: AtomicBool,
    source_error: parking_lot::Mutex<Option<io::Error>>,
}

impl Progress {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            done: AtomicBool::new(false),
            source_error: parking_lot::Mutex::new(None),
        })
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// An answer that started with 200, holding one of the node's call slots
/// until it (or the stream made of it) is dropped.
#[derive(Debug)]
pub struct Answer {
    resp: reqwest::Response,
    _slot: OwnedSemaphorePermit,
}

/// The transport to one node.
pub struct Rpc {
    http: reqwest::Client,
    api: Url,
    cfg: KuboConfig,
    slots: Arc<Semaphore>,
}

impl Rpc {
    /// A transport to the node at `url` (its `/api/v0` is appended).
    pub fn new(url: &str, cfg: &KuboConfig) -> Result<Self> {
        let mut api = Url::parse(url.trim_end_matches('/'))
            .map_err(|e| IpfsError::Invalid(format!("bad Kubo URL {url:?}: {e}")))?;
        if !matches!(api.scheme(), "http" | "https") {
            return Err(IpfsError::Invalid(format!(
                "Kubo URL {url:?} must be http or https"
            )));
        }
        let path = format!("{}/api/v0/", api.path().trim_end_matches('/'));
        api.set_path(&path);
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(cfg.connecttimeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| IpfsError::Other(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            api,
            cfg: cfg.clone(),
            slots: Arc::new(Semaphore::new(cfg.maxconcurrency.max(1))),
        })
    }

    /// The node's base URL (for messages).
    pub fn base(&self) -> &str {
        self.api.as_str()
    }

    /// The settings.
    pub fn config(&self) -> &KuboConfig {
        &self.cfg
    }

    fn url(&self, call: &Call) -> Result<Url> {
        let mut url = self
            .api
            .join(call.cmd)
            .map_err(|e| IpfsError::Invalid(format!("bad command {}: {e}", call.cmd)))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &call.args {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends a call and returns the answer once it started with 200;
    /// any other status becomes a typed error. At most `maxconcurrency`
    /// calls (streamed answers included) are in flight; a call waits up to
    /// `requesttimeout` for a slot.
    pub async fn send(&self, call: Call) -> Result<Answer> {
        let slot =
            tokio::time::timeout(self.cfg.requesttimeout, self.slots.clone().acquire_owned())
                .await
                .map_err(|_| {
                    IpfsError::Timeout(format!(
                        "{}: {} calls already in flight to {}",
                        call.cmd, self.cfg.maxconcurrency, self.api
                    ))
                })?
                .map_err(|_| IpfsError::Other("client closed".into()))?;
        self.send_slotted(call)
            .await
            .map(|resp| Answer { resp, _slot: slot })
    }

    async fn send_slotted(&self, call: Call) -> Result<reqwest::Response> {
        let url = self.url(&call)?;
        let Call {
            cmd,
            body,
            idempotent,
            wait,
            ..
        } = call;
        let retryable_body = !matches!(body, ReqBody::Stream(_));
        let mut body = Some(body);
        let mut attempt = 0u32;
        loop {
            let this_body = match body.take() {
                Some(ReqBody::Bytes(b)) => {
                    body = Some(ReqBody::Bytes(b.clone()));
                    ReqBody::Bytes(b)
                }
                Some(ReqBody::Empty) => {
                    body = Some(ReqBody::Empty);
                    ReqBody::Empty
                }
                Some(stream @ ReqBody::Stream(_)) => stream,
                None => {
                    return Err(IpfsError::Other(format!(
                        "{cmd}: request body already consumed"
                    )));
                }
            };
            let res = self.send_once(&url, cmd, this_body, wait).await;
            let retry = match &res {
                Err(IpfsError::Unavailable(_)) => idempotent && retryable_body,
                Err(_) | Ok(_) => false,
            };
            if retry && attempt < self.cfg.retries {
                let delay = self.cfg.retrybackoff * 2u32.saturating_pow(attempt);
                tracing::debug!(node = %self.api, cmd, attempt, ?delay, "retrying Kubo RPC call");
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            return res;
        }
    }

    async fn send_once(
        &self,
        url: &Url,
        cmd: &str,
        body: ReqBody,
        wait: Duration,
    ) -> Result<reqwest::Response> {
        let mut req = self.http.post(url.clone());
        let mut progress = None;
        match body {
            ReqBody::Empty => {}
            ReqBody::Bytes(data) => {
                let boundary = boundary();
                let (head, tail) = multipart_frame(&boundary);
                let mut all = BytesMut::with_capacity(head.len() + data.len() + tail.len());
                all.extend_from_slice(&head);
                all.extend_from_slice(&data);
                all.extend_from_slice(&tail);
                req = req
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(all.freeze());
            }
            ReqBody::Stream(data) => {
                let boundary = boundary();
                let (head, tail) = multipart_frame(&boundary);
                let p = Progress::new();
                let watch = p.clone();
                let data = data.map(move |item| {
                    watch.touch();
                    match item {
                        Ok(b) => Ok(b),
                        Err(e) => {
                            let msg = e.to_string();
                            *watch.source_error.lock() = Some(e);
                            Err(io::Error::other(msg))
                        }
                    }
                });
                let end = p.clone();
                let body = stream::once(async move { Ok::<_, io::Error>(head) })
                    .chain(data)
                    .chain(stream::once(async move {
                        end.touch();
                        end.done.store(true, Ordering::Relaxed);
                        Ok(tail)
                    }));
                req = req
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(reqwest::Body::wrap_stream(body));
                progress = Some(p);
            }
        }
        let fut = req.send();
        let res = match &progress {
            None => match tokio::time::timeout(wait, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(IpfsError::Timeout(format!(
                        "{cmd} on {}: no answer within {wait:?}",
                        self.api
                    )));
                }
            },
            Some(p) => {
                tokio::pin!(fut);
                loop {
                    // While the body is sent, allow `idletimeout` between
                    // chunks; once it is sent, `wait` for the answer.
                    let limit = if p.done.load(Ordering::Relaxed) {
                        wait
                    } else {
                        self.cfg.idletimeout
                    };
                    let deadline = p.last() + limit;
                    tokio::select! {
                        r = &mut fut => break r,
                        _ = tokio::time::sleep_until(deadline.into()) => {
                            if p.last() + limit <= Instant::now() {
                                return Err(IpfsError::Timeout(format!(
                                    "{cmd} on {}: stalled for {limit:?}", self.api
                                )));
                            }
                        }
                    }
                }
            }
        };
        if let Some(e) = progress.as_ref().and_then(|p| p.source_error.lock().take()) {
            return Err(from_io(e));
        }
        let resp = res.map_err(|e| self.transport_error(cmd, e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::OK {
            return Ok(resp);
        }
        let body = read_error_body(resp).await;
        let message = error_message(&body);
        Err(match status.as_u16() {
            404 | 405 => IpfsError::Other(format!(
                "{cmd} is not supported by {} ({status}): {message}",
                self.api
            )),
            502..=504 => IpfsError::Unavailable(format!("{} ({status}): {message}", self.api)),
            s => classify(Some(s), &message),
        })
    }

    fn transport_error(&self, cmd: &str, e: reqwest::Error) -> IpfsError {
        let text = format!("{cmd} on {}: {}", self.api, error_chain(&e));
        if e.is_timeout() {
            IpfsError::Timeout(text)
        } else {
            IpfsError::Unavailable(text)
        }
    }

    /// Sends a call and parses its (single-object) JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let cmd = call.cmd;
        let resp = self.send(call).await?;
        let body = collect(body_stream(resp, self.cfg.idletimeout), MAX_JSON).await?;
        serde_json::from_slice(&body)
            .map_err(|e| IpfsError::Other(format!("{cmd}: unexpected answer: {e}")))
    }

    /// Sends a call whose answer is ignored (but its trailer is checked).
    pub async fn unit(&self, call: Call) -> Result<()> {
        let resp = self.send(call).await?;
        collect(body_stream(resp, self.cfg.idletimeout), MAX_JSON).await?;
        Ok(())
    }

    /// Sends a call and feeds each object of its newline-delimited JSON
    /// answer to `f`, without holding the whole answer.
    pub async fn json_lines<T, F>(&self, call: Call, idle: Duration, mut f: F) -> Result<()>
    where
        T: DeserializeOwned,
        F: FnMut(T) -> Result<()>,
    {
        let cmd = call.cmd;
        let resp = self.send(call).await?;
        let mut body = body_stream(resp, idle);
        let mut buf = BytesMut::new();
        let mut parse = |line: &[u8]| -> Result<()> {
            let line = line.trim_ascii();
            if line.is_empty() {
                return Ok(());
            }
            let obj = serde_json::from_slice(line)
                .map_err(|e| IpfsError::Other(format!("{cmd}: unexpected answer: {e}")))?;
            f(obj)
        };
        while let Some(chunk) = body.try_next().await.map_err(from_io)? {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(pos + 1);
                parse(&line)?;
            }
            if buf.len() > MAX_JSON {
                return Err(IpfsError::Other(format!("{cmd}: answer line too long")));
            }
        }
        parse(&buf)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn boundary() -> String {
    format!("disco-{}", uuid::Uuid::new_v4().simple())
}

/// The bytes around the single file part of a multipart body.
fn multipart_frame(boundary: &str) -> (Bytes, Bytes) {
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"data\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    (Bytes::from(head), Bytes::from(tail))
}

async fn read_error_body(resp: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = s.next().await {
            let room = MAX_ERROR_BODY.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    out
}

/// Streams an answer's body; a non-empty `X-Stream-Error` trailer, a broken
/// connection, or a pause longer than `idle` ends the stream with an error.
pub fn body_stream(answer: Answer, idle: Duration) -> ByteStream {
    let Answer { resp, _slot: slot } = answer;
    let resp: http::Response<reqwest::Body> = resp.into();
    let body = resp.into_body();
    stream::unfold(Some((body, slot)), move |state| async move {
        let (mut body, slot) = state?;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    let e = IpfsError::Timeout(format!("answer stalled for {idle:?}"));
                    return Some((Err(to_io(e)), None));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    let e =
                        IpfsError::Unavailable(format!("answer interrupted: {}", error_chain(&e)));
                    return Some((Err(to_io(e)), None));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => return Some((Ok(data), Some((body, slot)))),
                Err(frame) => {
                    if let Some(value) = frame.trailers_ref().and_then(|t| t.get(STREAM_ERROR)) {
                        let msg = error_message(value.as_bytes());
                        if !msg.is_empty() {
                            return Some((Err(to_io(classify(None, &msg))), None));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

/// Collects a stream of at most `limit` bytes.
pub async fn collect(mut s: ByteStream, limit: usize) -> Result<Bytes> {
    let mut out = BytesMut::new();
    while let Some(chunk) = s.try_next().await.map_err(from_io)? {
        if out.len() + chunk.len() > limit {
            return Err(IpfsError::Other(format!(
                "answer larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Serves one canned HTTP/1.1 answer per connection (a unit test of the
    /// trailer parsing; the real daemons are in the integration tests).
    async fn canned(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut seen = Vec::new();
                    loop {
                        let n = sock.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn rpc(url: &str) -> Rpc {
        let cfg = KuboConfig {
            retries: 0,
            ..KuboConfig::default()
        };
        Rpc::new(url, &cfg).unwrap()
    }

    #[tokio::test]
    async fn stream_error_trailer_fails_the_stream() {
        let url = canned(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Stream-Error\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Stream-Error: {\"Message\":\"file does not exist\",\"Code\":0,\"Type\":\"error\"}\r\n\r\n",
        )
        .await;
        let r = rpc(&url);
        let resp = r
            .send(Call::new("cat", Duration::from_secs(5)))
            .await
            .unwrap();
        let mut s = body_stream(resp, Duration::from_secs(5));
        assert_eq!(&s.try_next().await.unwrap().unwrap()[..], b"hello");
        let err = from_io(s.try_next().await.unwrap_err());
        assert!(err.is_not_found(), "{err:?}");
    }

    #[tokio::test]
    async fn empty_trailer_is_success() {
        let url = canned(
            "HTTP/1.1 200 OK\r\nTrailer: X-Stream-Error\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Stream-Error: \r\n\r\n",
        )
        .await;
        let resp = rpc(&url)
            .send(Call::new("cat", Duration::from_secs(5)))
            .await
            .unwrap();
        let all = collect(body_stream(resp, Duration::from_secs(5)), 100)
            .await
            .unwrap();
        assert_eq!(&all[..], b"abc");
    }

    #[tokio::test]
    async fn error_status_is_typed_by_message_not_code() {
        let url = canned(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 58\r\nConnection: close\r\n\r\n{\"Message\":\"/nope does not exist\",\"Code\":0,\"Type\":\"error\"}",
        )
        .await;
        let err = rpc(&url)
            .send(Call::new("files/stat", Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        let url = canned(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 52\r\nConnection: close\r\n\r\n{\"Message\":\"something broke\",\"Code\":0,\"Type\":\"error\"}",
        )
        .await;
        let err = rpc(&url)
            .send(Call::new("files/stat", Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(err, IpfsError::Other(_)), "{err:?}");
    }

    #[tokio::test]
    async fn refused_connection_is_unavailable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = KuboConfig {
            retries: 2,
            retrybackoff: Duration::from_millis(10),
            ..KuboConfig::default()
        };
        let r = Rpc::new(&format!("http://127.0.0.1:{port}"), &cfg).unwrap();
        let err = r
            .send(Call::new("id", Duration::from_secs(5)).idempotent())
            .await
            .unwrap_err();
        assert!(matches!(err, IpfsError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn silent_node_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Accepts and never answers.
        let hold = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                socks.push(s);
            }
        });
        let err = rpc(&url)
            .send(Call::new("id", Duration::from_millis(200)))
            .await
            .unwrap_err();
        assert!(matches!(err, IpfsError::Timeout(_)), "{err:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn calls_in_flight_are_bounded() {
        let url = canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").await;
        let cfg = KuboConfig {
            retries: 0,
            maxconcurrency: 1,
            requesttimeout: Duration::from_millis(300),
            ..KuboConfig::default()
        };
        let r = Rpc::new(&url, &cfg).unwrap();
        let held = r
            .send(Call::new("cat", Duration::from_secs(5)))
            .await
            .unwrap();
        let stream = body_stream(held, Duration::from_secs(5));
        // The unread answer holds the only slot.
        let err = r
            .send(Call::new("id", Duration::from_secs(5)))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, IpfsError::Timeout(_)), "{err:?}");
        drop(stream);
        r.send(Call::new("id", Duration::from_secs(5)))
            .await
            .unwrap();
    }

    #[test]
    fn io_round_trip_keeps_the_type() {
        let e = to_io(IpfsError::NotFound("x".into()));
        assert!(from_io(e).is_not_found());
        let e = to_io(IpfsError::Timeout("x".into()));
        assert!(matches!(from_io(e), IpfsError::Timeout(_)));
    }
}
