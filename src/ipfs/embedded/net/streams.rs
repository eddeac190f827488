//! Inbound protocol streams that are never dropped under a burst.
//!
//! `libp2p_stream` hands inbound streams to its reader through a channel
//! with one slot and drops any stream that arrives while the slot is taken
//! (a debug log, nothing else): when twenty peers answer one want at once,
//! most of their streams are lost although their writes succeeded. This
//! behaviour accepts the bitswap and ping protocols instead: each
//! connection queues what it negotiated and hands it on only as fast as the
//! reader takes it (backpressure through a bounded channel). The queue of a
//! connection is bounded by [`PER_CONNECTION`], above the number of streams
//! yamux lets a peer keep open at once, so a well-behaved peer never meets
//! it; a stream beyond it is dropped and counted
//! ([`NetMetrics::streams_dropped`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::channel::mpsc;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{Endpoint, InboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, Stream, StreamProtocol, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::metrics::NetMetrics;

/// Streams one connection may have negotiated but not yet handed on.
pub const PER_CONNECTION: usize = 1024;

/// A negotiated inbound stream: who opened it, and on which protocol.
pub type Incoming = (PeerId, Stream, StreamProtocol);

/// Where the streams of some protocols go.
#[derive(Clone)]
pub struct Route {
    protocols: Vec<StreamProtocol>,
    sink: mpsc::Sender<Incoming>,
}

/// Creates a route for `protocols` and the receiver of its streams
/// (`capacity` waiting streams, plus one per connection).
pub fn route(protocols: Vec<StreamProtocol>, capacity: usize) -> (Route, mpsc::Receiver<Incoming>) {
    let (sink, rx) = mpsc::channel(capacity);
    (Route { protocols, sink }, rx)
}

/// The behaviour: accepts the routes' protocols on every connection.
pub struct InboundStreams {
    routes: Arc<Vec<Route>>,
    metrics: Arc<NetMetrics>,
}

impl InboundStreams {
    /// Accepts the protocols of `routes`.
    pub fn new(routes: Vec<Route>, metrics: Arc<NetMetrics>) -> Self {
        InboundStreams {
            routes: Arc::new(routes),
            metrics,
        }
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler {
            peer,
            routes: self.routes.iter().cloned().collect(),
            queue: VecDeque::new(),
            metrics: self.metrics.clone(),
        }
    }
}

impl NetworkBehaviour for InboundStreams {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        e: THandlerOutEvent<Self>,
    ) {
        match e {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// The upgrade: any of the routes' protocols, the stream as is.
pub struct Accept(Vec<StreamProtocol>);

impl UpgradeInfo for Accept {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Accept {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, s: Stream, p: StreamProtocol) -> Self::Future {
        ready(Ok((s, p)))
    }
}

/// Per-connection handler: queues negotiated streams, hands them on with
/// backpressure.
pub struct Handler {
    peer: PeerId,
    routes: Vec<Route>,
    queue: VecDeque<(usize, Stream, StreamProtocol)>,
    metrics: Arc<NetMetrics>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Accept;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Accept> {
        let all = self
            .routes
            .iter()
            .flat_map(|r| r.protocols.iter().cloned())
            .collect();
        SubstreamProtocol::new(Accept(all), ())
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        while let Some((i, _, _)) = self.queue.front() {
            let sink = &mut self.routes[*i].sink;
            match sink.poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => {
                    // The reader is gone (shutting down): nothing to deliver to.
                    self.queue.pop_front();
                }
                Poll::Ready(Ok(())) => {
                    let (i, s, p) = self.queue.pop_front().expect("front exists");
                    let _ = self.routes[i].sink.start_send((self.peer, s, p));
                }
            }
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, e: Infallible) {
        match e {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<Accept, DeniedUpgrade>) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            let Some(i) = self
                .routes
                .iter()
                .position(|r| r.protocols.contains(&protocol))
            else {
                return;
            };
            if self.queue.len() >= PER_CONNECTION {
                self.metrics.streams_dropped.inc();
                tracing::warn!(peer = %self.peer, %protocol, "too many inbound streams waiting; dropping one");
                return;
            }
            self.queue.push_back((i, stream, protocol));
        }
    }
}
