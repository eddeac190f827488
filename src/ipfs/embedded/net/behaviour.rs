//! The combined libp2p behaviour of the embedded node.

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{connection_limits, identify, kad, mdns, ping};

/// Identify, ping, Kademlia, optional mDNS, connection limits, and the
/// stream behaviour bitswap runs on.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Caps on established connections.
    pub limits: connection_limits::Behaviour,
    /// `/ipfs/id/1.0.0`.
    pub identify: identify::Behaviour,
    /// `/ipfs/ping/1.0.0`.
    pub ping: ping::Behaviour,
    /// `/ipfs/kad/1.0.0`.
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    /// LAN discovery, when enabled.
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Raw protocol streams (bitswap).
    pub stream: libp2p_stream::Behaviour,
}
