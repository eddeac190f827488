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

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n{storage}http:\n  addr: {addr}\n  debug:\n    addr: {debug_addr}\n    prometheus:\n      enabled: true\n      path: /metrics\n{}",
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
            if http_status(&self.addr, "/v2/") == Some(200) {
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
