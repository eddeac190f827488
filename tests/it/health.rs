//! `/debug/health` reflects storage and node state, from checks running in
//! the background: a full and a read-only disk (a small tmpfs this test
//! mounts, fills and remounts read-only), a Kubo-API node killed and
//! started again, and the healthy case (200 `{}`). With access control the
//! debug port still answers without credentials; the main port does not
//! serve it.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::auth_support::{htpasswd_file, start_with_auth};
use crate::support::jsipfs::JsIpfs;
use crate::support::registry::{Kind, Options, Registry};

/// Fast checks for tests: every second, failing at the first error.
const HEALTH: &str =
    "health:\n  storagedriver:\n    enabled: true\n    interval: 1s\n    threshold: 1\n";

/// Blocking `GET path` returning status and body.
fn get(addr: &SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// Polls the debug port's `/debug/health` until `want(status, body)`.
fn wait_health(reg: &Registry, what: &str, want: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(&reg.debug_addr, "/debug/health");
        if want(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "health never {what}: last {status} {body}\n{}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn healthy(status: u16, body: &str) -> bool {
    status == 200 && body == "{}"
}

/// A small tmpfs mounted at a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// `None` when this environment may not mount (not root, no
    /// CAP_SYS_ADMIN).
    fn mount(dir: &Path) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, mode: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(s.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[test]
fn health_reports_a_full_and_a_read_only_disk() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mnt) = Tmpfs::mount(&dir.path().join("mnt")) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
        return;
    };
    let root = mnt.dir.join("storage");
    let reg = Registry::start_with(Options {
        storage: Some(format!(
            "  filesystem:\n    rootdirectory: {}\n",
            root.display()
        )),
        extra: HEALTH.into(),
        kind: Kind::Disco,
        ..Options::default()
    });
    wait_health(&reg, "healthy", healthy);

    // Full: a file takes every byte of the tmpfs.
    let filler = mnt.dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let key = format!("disk {}", root.display());
    let body = wait_health(&reg, "reporting the full disk", |s, b| {
        s == 503 && b.contains(&key)
    });
    let failing: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        failing[&key].as_str().unwrap().contains("No space left"),
        "{body}"
    );
    std::fs::remove_file(&filler).unwrap();
    wait_health(&reg, "healthy after space was freed", healthy);

    // Read-only.
    mnt.remount("ro");
    let body = wait_health(&reg, "reporting the read-only disk", |s, b| {
        s == 503 && b.contains(&key)
    });
    assert!(body.contains("Read-only file system"), "{body}");
    mnt.remount("rw");
    wait_health(&reg, "healthy after remounting read-write", healthy);
    drop(reg);
}

#[test]
fn health_reports_a_kubo_node_down_and_back() {
    let mut kubo = JsIpfs::start();
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_with(Options {
        storage: Some(format!(
            "  ipfs:\n    spooldirectory: {}\n    router:\n      nodes:\n        - url: {}\n      connecttimeout: 2s\n      retries: 0\n",
            dir.path().join("spool").display(),
            kubo.api
        )),
        extra: HEALTH.into(),
        kind: Kind::Disco,
        ..Options::default()
    });
    wait_health(&reg, "healthy", healthy);
    kubo.kill();
    let key = format!("kubo {}", kubo.api);
    let body = wait_health(&reg, "reporting the Kubo node", |s, b| {
        s == 503 && b.contains(&key)
    });
    let failing: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(failing.get(&key).is_some(), "{body}");
    kubo.start_again();
    wait_health(&reg, "healthy after Kubo came back", healthy);
}

#[test]
fn health_is_on_the_debug_port_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = htpasswd_file(dir.path(), &[("alice", "secret")]);
    let auth = format!(
        "auth:\n  htpasswd:\n    realm: test\n    path: {}\n{HEALTH}",
        htpasswd.display()
    );
    let reg = start_with_auth(&dir.path().join("reg"), &auth);
    wait_health(&reg, "healthy", healthy);
    // The main port has no health route: an unknown path, which with
    // access control needs a signed-in caller.
    assert_eq!(get(&reg.addr, "/debug/health").0, 401);
}
