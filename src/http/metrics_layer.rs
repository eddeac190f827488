//! Middleware recording request counts, latency, body bytes in and out and
//! uploads in flight.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

use super::route;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};

pin_project_lite::pin_project! {
    /// A body that adds the bytes of each data frame to a counter.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        counter: Counter,
    }
}

impl<B> CountingBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, counter: Counter) -> Self {
        Self { inner, counter }
    }
}

impl<B: HttpBody<Data = Bytes>> HttpBody for CountingBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let res = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &res
            && let Some(data) = frame.data_ref()
        {
            this.counter.inc_by(data.len() as u64);
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The middleware.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let label = route::parse(req.uri().path())
        .map(|r| r.label())
        .unwrap_or("other");
    let method = req.method().clone();
    let start = Instant::now();
    let _in_flight = (label == "upload"
        && matches!(method, Method::POST | Method::PATCH | Method::PUT))
    .then(|| {
        metrics.uploads_in_flight.inc();
        InFlight(metrics.uploads_in_flight.clone())
    });
    let (parts, body) = req.into_parts();
    let counter_in = metrics
        .bytes_in
        .get_or_create(&RouteLabels { route: label })
        .clone();
    let req = Request::from_parts(parts, Body::new(CountingBody::new(body, counter_in)));
    let resp = next.run(req).await;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.to_string(),
            route: label,
            status: resp.status().as_u16(),
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels { route: label })
        .observe(start.elapsed().as_secs_f64());
    let counter_out = metrics
        .bytes_out
        .get_or_create(&RouteLabels { route: label })
        .clone();
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, Body::new(CountingBody::new(body, counter_out)))
}
