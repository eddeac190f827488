//! Ports from the environment and defaults: `DISCO_PORT` (the original
//! disco's HTTP port variable) and whether the p2p port was configured.
//!
//! Precedence for the HTTP listen address, highest first:
//! 1. `REGISTRY_HTTP_ADDR` (a whole `host:port`, Distribution's variable);
//! 2. `DISCO_PORT` (a port only: replaces the port of `http.addr`, keeping
//!    its host);
//! 3. `http.addr` in the config file;
//! 4. the default `:1970`.

/// The environment variable naming the HTTP port.
pub const DISCO_PORT: &str = "DISCO_PORT";

/// Applies `DISCO_PORT` from `env` to `addr` (the `http.addr` in effect).
/// Returns a warning when `REGISTRY_HTTP_ADDR` overrides it; an invalid
/// port is an error message.
pub(super) fn apply_disco_port(
    addr: &mut String,
    env: &[(String, String)],
) -> Result<Option<String>, String> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let Some(port) = get(DISCO_PORT) else {
        return Ok(None);
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a TCP port (0-65535)"))?;
    if let Some(full) = get("REGISTRY_HTTP_ADDR") {
        return Ok(Some(format!(
            "DISCO_PORT={port} ignored: REGISTRY_HTTP_ADDR={full} takes precedence"
        )));
    }
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
    *addr = format!("{host}:{port}");
    Ok(None)
}

/// Whether the YAML (after environment overrides) configures
/// `storage.ipfs.embedded.listen`.
pub(super) fn p2p_listen_configured(value: &yaml_serde::Value) -> bool {
    value
        .get("storage")
        .and_then(|v| v.get("ipfs"))
        .and_then(|v| v.get("embedded"))
        .and_then(|v| v.get("listen"))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn disco_port_replaces_the_port_and_keeps_the_host() {
        let mut a = "127.0.0.1:5000".to_string();
        apply_disco_port(&mut a, &env(&[("DISCO_PORT", "6000")])).unwrap();
        assert_eq!(a, "127.0.0.1:6000");
        let mut a = ":1970".to_string();
        apply_disco_port(&mut a, &env(&[("DISCO_PORT", "6000")])).unwrap();
        assert_eq!(a, ":6000");
        let mut a = "[::1]:1970".to_string();
        apply_disco_port(&mut a, &env(&[("DISCO_PORT", "6000")])).unwrap();
        assert_eq!(a, "[::1]:6000");
    }

    #[test]
    fn registry_http_addr_wins_with_a_warning() {
        let mut a = "127.0.0.1:5000".to_string();
        let w = apply_disco_port(
            &mut a,
            &env(&[
                ("DISCO_PORT", "6000"),
                ("REGISTRY_HTTP_ADDR", "127.0.0.1:5000"),
            ]),
        )
        .unwrap();
        assert_eq!(a, "127.0.0.1:5000");
        assert!(w.unwrap().contains("REGISTRY_HTTP_ADDR"));
    }

    #[test]
    fn a_bad_port_is_refused() {
        let mut a = ":1970".to_string();
        assert!(apply_disco_port(&mut a, &env(&[("DISCO_PORT", "70000")])).is_err());
        assert!(apply_disco_port(&mut a, &env(&[("DISCO_PORT", "http")])).is_err());
    }
}
