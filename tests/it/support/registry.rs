//! Starts a registry process for a test: disco (the binary under test) or,
//! for comparison, CNCF Distribution (`docker-registry` from Debian).
//!
//! `DISCO_IT_REGISTRY=distribution` makes [`Registry::start`] run
//! Distribution instead of disco, to check the tests themselves against the
//! reference implementation.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Which implementation a [`Registry`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The disco binary built by cargo.
    Disco,
    /// CNCF Distribution (`/usr/bin/docker-registry`).
    Distribution,
}

impl Kind {
    /// The kind selected by `DISCO_IT_REGISTRY` (default disco).
    pub fn from_env() -> Self {
        match std::env::var("DISCO_IT_REGISTRY").as_deref() {
            Ok("distribution") => Kind::Distribution,
            _ => Kind::Disco,
        }
    }
}

/// A free TCP port on 127.0.0.1 for a server a test starts, reserved for
/// the rest of this test process.
///
/// A port bound and released in the kernel's ephemeral range can be taken
/// by any outgoing connection of a test running alongside before the
/// server binds it. So ports come from below that range (outgoing
/// connections never use those), and each is claimed with an advisory lock
/// file held until the test process exits, so that two test processes
/// never pick the same one; a bind check skips ports something else holds.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());

    let (lo, hi) = reservable_ports();
    let dir = std::env::temp_dir().join("disco-it-ports");
    if std::fs::create_dir(&dir).is_ok() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    for _ in 0..10_000 {
        // A fresh RandomState hashes nothing to a random number.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = lo + (random % u64::from(hi - lo)) as u16;
        let Ok(lock) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        HELD.lock().unwrap().push(lock);
        return port;
    }
    panic!("no free port in {lo}..{hi}");
}

/// Ports outside the kernel's ephemeral range (`ip_local_port_range`,
/// which outgoing connections draw from): from 10000 up to it by default.
fn reservable_ports() -> (u16, u16) {
    let range: Vec<u16> = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match range[..] {
        [lo, _] if lo > 11_000 => (10_000, lo),
        [_, hi] if hi < 64_000 => (hi + 1, 65_535),
        _ => (10_000, 20_000),
    }
}

/// A running registry, killed (by PID) when dropped.
pub struct Registry {
    /// What runs.
    pub kind: Kind,
    /// `127.0.0.1:port` of the API.
    pub addr: SocketAddr,
    /// `127.0.0.1:port` of the debug server (metrics, health).
    pub debug_addr: SocketAddr,
    /// Where the config, logs and (by default) storage live.
    pub dir: PathBuf,
    /// The config file.
    pub config_path: PathBuf,
    child: Option<Child>,
    _temp: Option<TempDir>,
}

/// Options for starting a registry.
#[derive(Debug, Clone)]
pub struct Options {
    /// YAML for the `storage:` section's body (indented by the caller as
    /// two spaces per level below `storage:`); `None` = filesystem under
    /// the registry's temp dir with deletes enabled.
    pub storage: Option<String>,
    /// Extra top-level YAML appended to the config.
    pub extra: String,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Implementation (default from `DISCO_IT_REGISTRY`).
    pub kind: Kind,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            storage: None,
            extra: String::new(),
            env: Vec::new(),
            kind: Kind::from_env(),
        }
    }
}

impl Registry {
    /// Starts a registry with default options (filesystem storage, deletes
    /// enabled) in a fresh temp dir.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a registry with the given options in a fresh temp dir.
    pub fn start_with(opts: Options) -> Self {
        let temp = tempfile::Builder::new()
            .prefix("disco-it-")
            .tempdir()
            .unwrap();
        let dir = temp.path().to_path_buf();
        let mut reg = Self::start_in(&dir, opts);
        reg._temp = Some(temp);
        reg
    }

    /// Starts a registry whose files live in `dir` (kept after drop), e.g.
    /// to restart on the same storage.
    pub fn start_in(dir: &Path, opts: Options) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let debug_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let storage = opts.storage.clone().unwrap_or_else(|| {
            format!(
                "  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
                dir.join("storage").display()
            )
        });
        // Distribution signs upload state with `http.secret`, random per
        // start unless set: fixed so uploads can resume across restarts.
        // Its drain timeout defaults to none; disco's to 60 s: same for both.
        let secret = match opts.kind {
            Kind::Distribution => "  secret: disco-it-upload-state-secret\n  draintimeout: 60s\n",
            Kind::Disco => "",
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n{storage}http:\n  addr: {addr}\n{secret}  debug:\n    addr: {debug_addr}\n    prometheus:\n      enabled: true\n      path: /metrics\n{}",
            opts.extra
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut reg = Registry {
            kind: opts.kind,
            addr,
            debug_addr,
            dir: dir.to_path_buf(),
            config_path,
            child: None,
            _temp: None,
        };
        reg.spawn(&opts.env);
        reg
    }

    fn spawn(&mut self, env: &[(String, String)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("registry.log"))
            .unwrap();
        let mut cmd = match self.kind {
            Kind::Disco => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_disco"));
                c.arg("serve").arg("--config").arg(&self.config_path);
                // No config file or data dir from the user's home.
                c.env("HOME", &self.dir);
                c
            }
            Kind::Distribution => {
                let bin = "/usr/bin/docker-registry";
                assert!(
                    Path::new(bin).exists(),
                    "{bin} missing: run scripts/test (installs Debian package docker-registry)"
                );
                let mut c = Command::new(bin);
                c.arg("serve").arg(&self.config_path);
                c
            }
        };
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn registry"));
        self.wait_ready(Duration::from_secs(60));
    }

    /// Restarts the process on the same config and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn(&[]);
    }

    /// Kills the process with SIGKILL (simulated crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process with SIGTERM, waiting up to 30 s before SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (graceful shutdown) without waiting; [`Registry::stop`]
    /// or [`Registry::kill`] reap the process.
    pub fn terminate(&self) {
        if let Some(child) = self.child.as_ref() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
    }

    /// Waits up to `timeout` for the process to exit by itself; true if it
    /// did (it is then reaped).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return true;
                }
            } else {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Forgets a process that exited and was reaped by the test itself.
    pub fn forget_process(&mut self) {
        if let Some(child) = self.child.take() {
            std::mem::forget(child);
        }
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:port`, as clients want it in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("registry.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("registry exited early ({status}); log:\n{}", self.log());
            }
            // 401: up, with access control.
            if matches!(http_status(&self.addr, "/v2/"), Some(200 | 401)) {
                return;
            }
            if Instant::now() > deadline {
                panic!("registry not ready after {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Minimal blocking HTTP/1.1 GET returning the status code, for readiness
/// polling without an async runtime.
pub fn http_status(addr: &SocketAddr, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}
