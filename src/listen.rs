//! Listening ports: the HTTP listeners and the embedded node's p2p ports.
//!
//! libp2p binds its TCP listeners with `SO_REUSEPORT`. A second process
//! that sets it too (another disco, a Kubo node) could then bind the same
//! port, and the kernel would split incoming peer connections between two
//! unrelated nodes. So before the node starts, every TCP listen port is
//! probed with a socket that does *not* set `SO_REUSEPORT`: the bind fails
//! if anything listens there. A taken port stops disco with a message naming
//! the port and the key, except for the zero-config default (no `listen`
//! configured), where the node moves to a free port and says so.
//!
//! Two discos starting in the same instant can both pass the probe; the
//! embedded store's lock still keeps them off the same data directory.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

/// The config key the p2p listen addresses come from.
const P2P_KEY: &str = "storage.ipfs.embedded.listen";

/// Tries to bind `addr` without `SO_REUSEPORT` (IPv6 sockets IPv6-only, as
/// libp2p binds them); the socket is closed again at once.
fn probe(addr: SocketAddr) -> std::io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Like every listener: a port whose old connections linger in
    // TIME_WAIT is free.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1)
}

/// The IP address and TCP port of a `/ip4|ip6/<ip>/tcp/<port>` address.
fn tcp_socket(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut it = addr.iter();
    let ip: IpAddr = match it.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match it.next()? {
        Protocol::Tcp(port) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// `addr` with its TCP port replaced by `port`.
fn with_port(addr: &Multiaddr, port: u16) -> Multiaddr {
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(port),
            other => other,
        })
        .collect()
}

/// Whether `addr` is taken by another socket (`Ok(false)` also when the
/// address cannot be bound at all, e.g. IPv6 disabled: libp2p reports that
/// itself).
fn taken(addr: SocketAddr) -> bool {
    match probe(addr) {
        Ok(()) => false,
        Err(e) if e.kind() == ErrorKind::AddrInUse => true,
        Err(e) => {
            tracing::debug!(%addr, error = %e, "p2p port probe failed");
            false
        }
    }
}

/// Checks the p2p listen addresses (multiaddr strings) before the node
/// binds them. A taken TCP port is an error naming it, unless `pick_free`
/// (the built-in default addresses): then every TCP address moves to one
/// free port, logged as a warning. Returns the addresses to listen on.
pub fn check_p2p_ports(listen: &[String], pick_free: bool) -> Result<Vec<String>, String> {
    let parsed: Vec<Multiaddr> = listen
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e| format!("{P2P_KEY}: invalid multiaddr {s:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let busy = parsed
        .iter()
        .filter_map(|a| tcp_socket(a).map(|s| (a, s)))
        .find(|(_, s)| s.port() != 0 && taken(*s));
    let Some((addr, socket)) = busy else {
        return Ok(listen.to_vec());
    };
    let port = socket.port();
    if !pick_free {
        return Err(format!(
            "{P2P_KEY}: p2p port {port} is already in use ({addr}): another disco or IPFS node \
             listens there, and sharing the port would split incoming peer connections between \
             the two nodes. Give this disco another port in {P2P_KEY} (e.g. \
             [/ip4/0.0.0.0/tcp/4002, /ip6/::/tcp/4002]), or [] for an offline node"
        ));
    }
    let free = free_port_for(&parsed).ok_or_else(|| {
        format!("{P2P_KEY}: p2p port {port} is already in use and no free port was found")
    })?;
    tracing::warn!(
        taken = port,
        chosen = free,
        "p2p port {port} is already in use (another disco or IPFS node?): the embedded IPFS node \
         listens on port {free} instead; set {P2P_KEY} to choose a fixed port"
    );
    Ok(parsed
        .iter()
        .map(|a| match tcp_socket(a) {
            Some(_) => with_port(a, free).to_string(),
            None => a.to_string(),
        })
        .collect())
}

/// A port the kernel calls free that is free on every TCP address of
/// `addrs` too.
fn free_port_for(addrs: &[Multiaddr]) -> Option<u16> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).ok()?;
        let port = l.local_addr().ok()?.port();
        drop(l);
        let all_free = addrs
            .iter()
            .filter_map(tcp_socket)
            .all(|s| !taken(SocketAddr::new(s.ip(), port)));
        if all_free {
            return Some(port);
        }
    }
    None
}

/// Binds an HTTP listener on `addr` (the value of config key `key`); a
/// taken port or an unusable address is an error naming both.
pub async fn bind_http(addr: SocketAddr, key: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        let how = match key {
            "http.addr" => "http.addr, REGISTRY_HTTP_ADDR or DISCO_PORT",
            other => other,
        };
        match e.kind() {
            ErrorKind::AddrInUse => format!(
                "{key}: port {} is already in use ({addr}): another process listens there; \
                 choose another port with {how}",
                addr.port()
            ),
            ErrorKind::PermissionDenied => format!(
                "{key}: no permission to listen on {addr} (ports below 1024 need privileges); \
                 choose another port with {how}"
            ),
            _ => format!("{key}: cannot listen on {addr}: {e}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port held by a listener that sets `SO_REUSEPORT`, as
    /// libp2p's do.
    fn held_reuseport() -> (Socket, u16) {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_reuse_port(true).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        s.listen(8).unwrap();
        let port = s.local_addr().unwrap().as_socket().unwrap().port();
        (s, port)
    }

    #[test]
    fn a_taken_explicit_port_is_an_error_naming_port_and_key() {
        let (_held, port) = held_reuseport();
        let listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
        let e = check_p2p_ports(&listen, false).unwrap_err();
        assert!(
            e.contains(&format!("p2p port {port} is already in use")),
            "{e}"
        );
        assert!(e.contains(P2P_KEY), "{e}");
    }

    #[test]
    fn the_default_moves_to_a_free_port() {
        let (_held, port) = held_reuseport();
        let listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
        let got = check_p2p_ports(&listen, true).unwrap();
        assert_eq!(got.len(), 1);
        let new: Multiaddr = got[0].parse().unwrap();
        let socket = tcp_socket(&new).unwrap();
        assert_ne!(socket.port(), port);
        assert_ne!(socket.port(), 0);
    }

    #[test]
    fn free_ports_and_port_zero_pass_unchanged() {
        let listen = vec!["/ip4/127.0.0.1/tcp/0".to_string()];
        assert_eq!(check_p2p_ports(&listen, false).unwrap(), listen);
    }

    #[tokio::test]
    async fn a_taken_http_port_names_the_key() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let e = bind_http(addr, "http.addr").await.unwrap_err();
        assert!(
            e.contains(&format!("port {} is already in use", addr.port())),
            "{e}"
        );
        assert!(e.contains("DISCO_PORT"), "{e}");
    }
}
