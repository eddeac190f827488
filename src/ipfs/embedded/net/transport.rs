//! The libp2p transport: TCP (optionally behind a pnet private-network
//! handshake) with noise and yamux, DNS resolution, and QUIC only when no
//! swarm key is set (pnet cannot protect QUIC).

use std::time::Duration;

use futures::future::Either;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{PeerId, dns, noise, quic, tcp, yamux};

use super::NetError;

/// Time allowed for the whole connection upgrade (pnet, noise, yamux).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

macro_rules! secure {
    ($t:expr, $kp:expr) => {
        $t.upgrade(Version::V1Lazy)
            .authenticate(noise::Config::new($kp).map_err(|e| NetError::Transport(e.to_string()))?)
            .multiplex(yamux::Config::default())
            .timeout(UPGRADE_TIMEOUT)
            .map(|(p, m), _| (p, StreamMuxerBox::new(m)))
            .boxed()
    };
}

/// Builds the transport. `psk` enables the private network; `quic` adds
/// QUIC and is refused together with `psk`.
pub fn build(
    kp: &Keypair,
    psk: Option<PreSharedKey>,
    quic: bool,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetError> {
    if quic && psk.is_some() {
        return Err(NetError::Config(
            "QUIC cannot be used with a swarm key (private networks protect TCP only)".into(),
        ));
    }
    let tcp = || tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let dns_tcp = match dns::tokio::Transport::system(tcp()) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "no system DNS configuration; /dns addresses will not resolve");
            None
        }
    };
    let base: Boxed<(PeerId, StreamMuxerBox)> = match (dns_tcp, psk) {
        (Some(t), Some(psk)) => secure!(
            t.and_then(move |s, _| PnetConfig::new(psk).handshake(s)),
            kp
        ),
        (Some(t), None) => secure!(t, kp),
        (None, Some(psk)) => secure!(
            tcp().and_then(move |s, _| PnetConfig::new(psk).handshake(s)),
            kp
        ),
        (None, None) => secure!(tcp(), kp),
    };
    if !quic {
        return Ok(base);
    }
    let quic = quic::tokio::Transport::new(quic::Config::new(kp));
    Ok(base
        .or_transport(quic)
        .map(|either, _| match either {
            Either::Left(x) => x,
            Either::Right((p, c)) => (p, StreamMuxerBox::new(c)),
        })
        .boxed())
}
