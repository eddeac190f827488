//! The combined libp2p behaviour of the embedded node.

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{connection_limits, identify, kad, mdns};

use super::streams::InboundStreams;

/// Identify, Kademlia, optional mDNS, connection limits, inbound bitswap
/// and ping streams, and the stream behaviour for outbound streams.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Caps on established connections.
    pub limits: connection_limits::Behaviour,
    /// `/ipfs/id/1.0.0`.
    pub identify: identify::Behaviour,
    /// Inbound bitswap and `/ipfs/ping/1.0.0` streams, none dropped.
    pub inbound: InboundStreams,
    /// `/ipfs/kad/1.0.0`.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// LAN discovery, when enabled.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Outbound protocol streams (bitswap, ping, provider records).
    pub stream: libp2p_stream::Behaviour,
}
