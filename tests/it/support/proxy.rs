//! A transparent recording HTTP/1.1 proxy between a real client and a
//! registry, on 127.0.0.1.
//!
//! Clients are pointed at the proxy instead of the registry; every exchange
//! (method, path and query, request headers, request body bytes, status,
//! response headers) is recorded, so a test can assert which requests a real
//! client made (e.g. containers/image's one PATCH + empty PUT) and what the
//! registry answered. The `Host` header is forwarded unchanged, so `Location`
//! URLs the registry builds point back at the proxy.
//!
//! Faults: [`Proxy::cut_response`] makes the proxy drop the connection after
//! a number of response body bytes, for interrupted-download tests.
//!
//! Load balancing: [`Proxy::round_robin`] sends each request (not each
//! connection) to the next of several upstreams, so consecutive requests of
//! one client, e.g. the PATCHes and PUT of one upload, reach different
//! replicas.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

type BoxError = Box<dyn StdError + Send + Sync>;
type ReqBody = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;
type RespBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// One request/response exchange as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Request method.
    pub method: Method,
    /// Path and query, as sent by the client.
    pub uri: String,
    /// Request headers.
    pub req_headers: HeaderMap,
    /// Request body bytes received from the client so far.
    pub req_body_bytes: u64,
    /// Response status (0 if the registry could not be reached).
    pub status: u16,
    /// Response headers.
    pub resp_headers: HeaderMap,
    /// The upstream that served it.
    pub upstream: SocketAddr,
}

impl Exchange {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    /// The query string (without `?`), or "".
    pub fn query(&self) -> &str {
        self.uri.split_once('?').map_or("", |(_, q)| q)
    }

    /// Query parameter names in order.
    pub fn query_keys(&self) -> Vec<&str> {
        self.query()
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| kv.split('=').next().unwrap_or(""))
            .collect()
    }

    /// A query parameter's raw value.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query().split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }

    /// A request header as a string.
    pub fn req_header(&self, name: &str) -> Option<&str> {
        self.req_headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A response header as a string.
    pub fn resp_header(&self, name: &str) -> Option<&str> {
        self.resp_headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// One line for failure messages.
    pub fn summary(&self) -> String {
        format!(
            "{} {} -> {} (body {} bytes)",
            self.method, self.uri, self.status, self.req_body_bytes
        )
    }
}

struct Record {
    method: Method,
    uri: String,
    req_headers: HeaderMap,
    req_body_bytes: Arc<AtomicU64>,
    status: u16,
    resp_headers: HeaderMap,
    upstream: SocketAddr,
}

/// Drop the connection after `after_bytes` of a response body, for the next
/// `times` requests with `method` whose path ends with `path_suffix`.
#[derive(Debug, Clone)]
pub struct Cut {
    /// Method to match.
    pub method: Method,
    /// Path suffix to match (e.g. `/blobs/sha256:...`).
    pub path_suffix: String,
    /// Body bytes passed through before the connection is dropped.
    pub after_bytes: u64,
    /// How many matching responses to cut.
    pub times: usize,
}

struct State {
    log: Mutex<Vec<Record>>,
    cuts: Mutex<VecDeque<Cut>>,
    upstreams: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl State {
    /// The upstream for the next request, in turn.
    fn pick(&self) -> SocketAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.upstreams[i % self.upstreams.len()]
    }
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    /// `127.0.0.1:port` the proxy listens on.
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy forwarding to `upstream` (`127.0.0.1:port`).
    pub fn start(upstream: SocketAddr) -> Self {
        Self::round_robin(vec![upstream])
    }

    /// Starts a load balancer sending each request to the next of
    /// `upstreams` in turn.
    pub fn round_robin(upstreams: Vec<SocketAddr>) -> Self {
        assert!(!upstreams.is_empty(), "no upstream");
        let state = Arc::new(State {
            log: Mutex::default(),
            cuts: Mutex::default(),
            upstreams,
            next: AtomicUsize::new(0),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("it-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(serve(st, addr_tx, rx));
                rt.shutdown_background();
            })
            .expect("spawn proxy thread");
        let addr = addr_rx.recv().expect("proxy address");
        Proxy {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:port`, as clients want it in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every exchange so far, in request order.
    pub fn log(&self) -> Vec<Exchange> {
        self.state
            .log
            .lock()
            .iter()
            .map(|r| Exchange {
                method: r.method.clone(),
                uri: r.uri.clone(),
                req_headers: r.req_headers.clone(),
                req_body_bytes: r.req_body_bytes.load(Ordering::Relaxed),
                status: r.status,
                resp_headers: r.resp_headers.clone(),
                upstream: r.upstream,
            })
            .collect()
    }

    /// Forgets the exchanges recorded so far.
    pub fn clear_log(&self) {
        self.state.log.lock().clear();
    }

    /// The log rendered one exchange per line (for assertion messages).
    pub fn log_text(&self) -> String {
        self.log().iter().map(|e| e.summary() + "\n").collect()
    }

    /// Adds a response cut (see [`Cut`]).
    pub fn cut_response(&self, cut: Cut) {
        self.state.cuts.lock().push_back(cut);
    }

    /// Request body bytes received so far by requests matching `pred`.
    pub fn body_bytes_where(&self, pred: impl Fn(&Exchange) -> bool) -> u64 {
        self.log()
            .iter()
            .filter(|e| pred(e))
            .map(|e| e.req_body_bytes)
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    state: Arc<State>,
    addr_tx: std::sync::mpsc::Sender<SocketAddr>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let _ = addr_tx.send(listener.local_addr().expect("proxy addr"));
    let client: Client<HttpConnector, ReqBody> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req| forward(req, state.clone(), client.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn forward(
    req: Request<Incoming>,
    state: Arc<State>,
    client: Client<HttpConnector, ReqBody>,
) -> Result<Response<RespBody>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    let body = body
        .map_frame(move |f| {
            if let Some(d) = f.data_ref() {
                c.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
            f
        })
        .boxed();
    let method = parts.method.clone();
    let req_headers = parts.headers.clone();
    let upstream = state.pick();
    let idx = {
        let mut log = state.log.lock();
        log.push(Record {
            method: method.clone(),
            uri: uri.clone(),
            req_headers,
            req_body_bytes: counter,
            status: 0,
            resp_headers: HeaderMap::new(),
            upstream,
        });
        log.len() - 1
    };
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        parts.headers.remove(h);
    }
    parts.uri = match format!("http://{upstream}{uri}").parse() {
        Ok(u) => u,
        Err(_) => return Ok(error_response(400, "bad uri")),
    };
    let resp = match client.request(Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => return Ok(error_response(502, &format!("proxy: upstream error: {e}"))),
    };
    let (parts, body) = resp.into_parts();
    {
        let mut log = state.log.lock();
        if let Some(r) = log.get_mut(idx) {
            r.status = parts.status.as_u16();
            r.resp_headers = parts.headers.clone();
        }
    }
    let path = uri.split('?').next().unwrap_or("");
    let cut = {
        let mut cuts = state.cuts.lock();
        let mut hit = None;
        for c in cuts.iter_mut() {
            if c.times > 0 && c.method == method && path.ends_with(&c.path_suffix) {
                c.times -= 1;
                hit = Some(c.after_bytes);
                break;
            }
        }
        cuts.retain(|c| c.times > 0);
        hit
    };
    let body: RespBody = match cut {
        Some(after) => CutBody {
            inner: body,
            left: after,
        }
        .boxed(),
        None => body.map_err(|e| Box::new(e) as BoxError).boxed(),
    };
    Ok(Response::from_parts(parts, body))
}

fn error_response(status: u16, msg: &str) -> Response<RespBody> {
    let body = http_body_util::Full::new(Bytes::from(msg.to_string()))
        .map_err(|e: Infallible| match e {})
        .boxed();
    let mut r = Response::new(body);
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    r
}

/// Passes `left` body bytes through, then fails (hyper drops the connection).
struct CutBody {
    inner: Incoming,
    left: u64,
}

impl Body for CutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Ready(Some(Err("proxy: response cut by test".into())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 > self.left {
                        data = data.slice(..self.left as usize);
                    }
                    self.left -= data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
