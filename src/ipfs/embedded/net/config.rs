//! Networking settings of the embedded node, flattened under
//! `storage.ipfs.embedded` in disco's config.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The public IPFS bootstrap peers (Kubo's default list), used only with
/// `public: true`.
pub const PUBLIC_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// Networking of the embedded IPFS node. Every field has a default; an
/// empty section gives a node that listens on port 4001, finds LAN peers by
/// mDNS and contacts nobody else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NetConfig {
    /// Multiaddrs to listen on. Default `["/ip4/0.0.0.0/tcp/4001",
    /// "/ip6/::/tcp/4001"]` (plus the same port over QUIC when `quic` is on).
    /// An empty list disables networking entirely (offline node).
    pub listen: Vec<String>,
    /// Multiaddrs to advertise to peers instead of the observed/listen ones
    /// (e.g. a public address behind port forwarding). Default `[]`.
    pub announce: Vec<String>,
    /// Peers (multiaddrs ending in `/p2p/<peer id>`) to connect to at start
    /// and to bootstrap the DHT from. Default `[]`: contact no one.
    pub bootstrap: Vec<String>,
    /// Join the public IPFS network: adds the standard public bootstrap
    /// peers to `bootstrap` and lets the DHT decide client/server mode from
    /// reachability. Default `false` (private operation: no public peers are
    /// contacted; the DHT runs in server mode so LAN and loopback peers can
    /// route through each other).
    pub public: bool,
    /// DHT role: `server` (answer queries, be in others' routing tables),
    /// `client` (query only) or `auto` (server once an external address is
    /// confirmed). Default: `server` unless `public` is set, then `auto`.
    #[serde(rename = "dhtmode")]
    pub dht_mode: Option<DhtMode>,
    /// Discover peers on the local network with mDNS. Default `true`.
    pub mdns: bool,
    /// Private network (the default): without `swarmkey`, the node uses
    /// `<path>/swarm.key`, generated on first start, so only nodes given
    /// the same key (`disco network key` / `disco network join`) ever
    /// connect. `false` makes an open network: any peer that reaches the
    /// node may fetch every block it holds. Default `true` (`false` with
    /// `public`).
    pub private: Option<bool>,
    /// Path of a Kubo-format `swarm.key`: with it, the node only talks to
    /// peers holding the same key (private network; disables QUIC). Default
    /// none.
    pub swarmkey: Option<PathBuf>,
    /// Also listen and dial over QUIC (`/udp/<port>/quic-v1`). Refused
    /// together with `swarmkey`. Default `false`.
    pub quic: bool,
    /// Most simultaneous connections (inbound plus outbound). Default `512`.
    #[serde(rename = "maxconnections")]
    pub max_connections: u32,
    /// How often everything stored is announced again to the DHT (Go
    /// duration, e.g. `12h`; `0` = only at start, on push and on clone).
    /// At most `24h`, half the 48 h lifetime of provider records. Default
    /// `12h`.
    #[serde(deserialize_with = "crate::config::duration")]
    #[serde(rename = "reprovideinterval")]
    pub reprovide_interval: Duration,
    /// How long a connection with no open stream stays up (Go duration;
    /// bitswap closes its streams after 30 s without traffic). Default
    /// `10m`.
    #[serde(deserialize_with = "crate::config::duration")]
    #[serde(rename = "idletimeout")]
    pub idle_timeout: Duration,
    /// Most blocks requested from one peer at a time (pipelining window).
    /// Default `128`.
    #[serde(rename = "wantwindow")]
    pub want_window: usize,
    /// IPFS HTTP Routing V1 endpoints (e.g. another disco,
    /// `http://10.0.0.1:1970`) asked for providers besides the DHT.
    /// Default `[]`.
    pub routers: Vec<String>,
    /// Set when `listen` was not configured (the built-in default): a taken
    /// p2p port then moves the node to a free port instead of stopping
    /// disco. Not a config key.
    #[serde(skip)]
    pub pick_free_port: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            listen: vec!["/ip4/0.0.0.0/tcp/4001".into(), "/ip6/::/tcp/4001".into()],
            announce: Vec::new(),
            bootstrap: Vec::new(),
            public: false,
            dht_mode: None,
            mdns: true,
            private: None,
            swarmkey: None,
            quic: false,
            max_connections: 512,
            reprovide_interval: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(600),
            want_window: 128,
            routers: Vec::new(),
            pick_free_port: false,
        }
    }
}

/// Role of the node in the Kademlia DHT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DhtMode {
    /// Serve DHT queries.
    Server,
    /// Only make queries.
    Client,
    /// Decide from confirmed external addresses.
    Auto,
}

impl NetConfig {
    /// True if the node runs a private network (a swarm key).
    pub fn is_private(&self) -> bool {
        self.swarmkey.is_some() || self.private.unwrap_or(!self.public)
    }

    /// The DHT role in effect.
    pub fn effective_dht_mode(&self) -> DhtMode {
        match self.dht_mode {
            Some(m) => m,
            None if self.public => DhtMode::Auto,
            None => DhtMode::Server,
        }
    }

    /// A node for tests: listens on an ephemeral loopback port, no mDNS,
    /// open network.
    pub fn loopback() -> Self {
        NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            mdns: false,
            private: Some(false),
            ..NetConfig::default()
        }
    }

    /// The bootstrap list in effect (configured plus, with `public`, the
    /// public list).
    pub fn bootstrap_peers(&self) -> Vec<String> {
        let mut out = self.bootstrap.clone();
        if self.public {
            out.extend(PUBLIC_BOOTSTRAP.iter().map(|s| s.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_gives_defaults() {
        let c: NetConfig = yaml_serde::from_str("{}").unwrap();
        assert_eq!(c, NetConfig::default());
        assert!(c.bootstrap_peers().is_empty());
    }

    #[test]
    fn keys_parse() {
        let c: NetConfig = yaml_serde::from_str(
            "listen: [/ip4/127.0.0.1/tcp/4010]\nmdns: false\nswarmkey: /etc/disco/swarm.key\n\
             reprovideinterval: 1h\npublic: true\ndhtmode: client\n",
        )
        .unwrap();
        assert_eq!(c.listen, vec!["/ip4/127.0.0.1/tcp/4010"]);
        assert!(!c.mdns);
        assert_eq!(c.reprovide_interval, Duration::from_secs(3600));
        assert_eq!(c.bootstrap_peers().len(), PUBLIC_BOOTSTRAP.len());
        assert_eq!(c.effective_dht_mode(), DhtMode::Client);
        assert_eq!(NetConfig::default().effective_dht_mode(), DhtMode::Server);
        assert!(yaml_serde::from_str::<NetConfig>("reprovideinterval: soon").is_err());
        let c: NetConfig =
            yaml_serde::from_str("idletimeout: 90s\nreprovideinterval: 1h30m").unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.reprovide_interval, Duration::from_secs(5400));
    }
}
