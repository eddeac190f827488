//! Listening ports: a p2p port another node holds stops a second disco
//! with a message naming the port and key (libp2p's `SO_REUSEPORT` would
//! otherwise share it), a taken HTTP port likewise, a second disco on the
//! same embedded store is refused, and `DISCO_PORT` sets the HTTP port.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::auth_support::refused_start;
use crate::support::registry::{Kind, Options, Registry, free_port, http_status};

/// `storage:` body of an embedded node under `dir` listening on `p2p`.
fn embedded(dir: &Path, p2p: &str) -> String {
    format!(
        "  ipfs:\n    spooldirectory: {}\n    embedded:\n      path: {}\n      listen: [{p2p}]\n      mdns: false\n      gc:\n        enabled: false\n",
        dir.join("spool").display(),
        dir.join("ipfs").display()
    )
}

#[test]
fn a_second_disco_on_the_same_p2p_port_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p2p = format!("/ip4/127.0.0.1/tcp/{port}");
    let _first = Registry::start_in(
        &dir.path().join("a"),
        Options {
            storage: Some(embedded(&dir.path().join("a"), &p2p)),
            kind: Kind::Disco,
            ..Options::default()
        },
    );
    let b = dir.path().join("b");
    let err = refused_start(&b, &format!("storage:\n{}", embedded(&b, &p2p)));
    assert!(
        err.contains(&format!("p2p port {port} is already in use")),
        "{err}"
    );
    assert!(err.contains("storage.ipfs.embedded.listen"), "{err}");
}

#[test]
fn a_second_disco_on_the_same_embedded_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("shared");
    let _first = Registry::start_in(
        &dir.path().join("a"),
        Options {
            storage: Some(embedded(&store, "/ip4/127.0.0.1/tcp/0")),
            kind: Kind::Disco,
            ..Options::default()
        },
    );
    let err = refused_start(
        &dir.path().join("b"),
        &format!("storage:\n{}", embedded(&store, "/ip4/127.0.0.1/tcp/0")),
    );
    assert!(err.contains("in use by another process"), "{err}");
}

#[test]
fn a_taken_debug_port_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let err = refused_start(dir.path(), &format!("http:\n  debug:\n    addr: {addr}\n"));
    assert!(
        err.contains(&format!(
            "http.debug.addr: port {} is already in use",
            addr.port()
        )),
        "{err}"
    );
}

/// A disco on in-memory storage with `config` and `env`, killed by PID
/// on drop.
struct Disco(Child);

impl Disco {
    fn start(dir: &Path, config: &str, env: &[(&str, String)]) -> Self {
        let path = dir.join("config.yml");
        std::fs::write(
            &path,
            format!("version: 0.1\nstorage:\n  inmemory: {{}}\n{config}"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("disco.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_disco"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("HOME", dir)
            .env_remove("REGISTRY_HTTP_ADDR")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn disco");
        Disco(child)
    }

    /// Waits until `/v2/` answers 200 at `addr`.
    fn wait_serving(&mut self, addr: SocketAddr, dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_status(&addr, "/v2/") != Some(200) {
            let log = || std::fs::read_to_string(dir.join("disco.log")).unwrap_or_default();
            if let Ok(Some(s)) = self.0.try_wait() {
                panic!("disco exited ({s}):\n{}", log());
            }
            assert!(
                Instant::now() < deadline,
                "disco not serving on {addr}:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Disco {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn disco_port_sets_the_http_port_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_port = free_port();
    let env_port = free_port();
    let mut d = Disco::start(
        dir.path(),
        &format!("http:\n  addr: 127.0.0.1:{file_port}\n"),
        &[("DISCO_PORT", env_port.to_string())],
    );
    let addr: SocketAddr = format!("127.0.0.1:{env_port}").parse().unwrap();
    d.wait_serving(addr, dir.path());
    let file_addr: SocketAddr = format!("127.0.0.1:{file_port}").parse().unwrap();
    assert_eq!(
        http_status(&file_addr, "/v2/"),
        None,
        "the file's port is not used"
    );
}

#[test]
fn registry_http_addr_wins_over_disco_port() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let ignored = free_port();
    let mut d = Disco::start(
        dir.path(),
        "",
        &[
            ("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("DISCO_PORT", ignored.to_string()),
        ],
    );
    d.wait_serving(format!("127.0.0.1:{port}").parse().unwrap(), dir.path());
    let log = std::fs::read_to_string(dir.path().join("disco.log")).unwrap();
    assert!(
        log.contains("REGISTRY_HTTP_ADDR"),
        "no warning about DISCO_PORT:\n{log}"
    );
}
