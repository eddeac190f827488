//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`,
//! installed by `scripts/test` into `tests/py/.venv`) on 127.0.0.1 with a
//! port it picks itself, killed by PID when the handle drops.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use disco::storage::s3::S3Config;
use tempfile::TempDir;

use super::registry::http_status;

/// Access key the tests sign with (moto accepts any unless auth is on).
pub const ACCESS_KEY: &str = "disco-test-access";
/// Secret key the tests sign with.
pub const SECRET_KEY: &str = "disco-test-secret";

/// Path of the `moto_server` entry point in the test venv.
pub fn moto_server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/.venv/bin/moto_server")
}

/// A running moto server.
pub struct S3Server {
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    child: Option<Child>,
    dir: TempDir,
}

static SHARED: Mutex<Weak<S3Server>> = Mutex::new(Weak::new());

impl S3Server {
    /// Starts a fresh server (authentication off: any key is accepted).
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts a fresh server with extra environment for moto.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let bin = moto_server_bin();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test (it creates tests/py/.venv and installs \
             tests/py/requirements-s3.txt)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("disco-s3-")
            .tempdir()
            .unwrap();
        let log_path = dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .envs(env.iter().copied())
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut server = S3Server {
            addr: "127.0.0.1:0".parse().unwrap(),
            child: Some(child),
            dir,
        };
        server.wait_ready(Duration::from_secs(60));
        server
    }

    /// A server shared by every test of this process that holds it; it is
    /// killed when the last holder drops it (and restarted on next use).
    pub fn shared() -> Arc<S3Server> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            return server;
        }
        let server = Arc::new(S3Server::start());
        *slot = Arc::downgrade(&server);
        server
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("moto.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("moto_server exited early ({status}); log:\n{}", self.log());
            }
            if self.addr.port() == 0 {
                // moto prints " * Running on http://127.0.0.1:PORT" once bound.
                if let Some(port) = self.log().lines().find_map(|l| {
                    l.split("Running on http://127.0.0.1:")
                        .nth(1)
                        .and_then(|p| p.trim().parse::<u16>().ok())
                }) {
                    self.addr = SocketAddr::from(([127, 0, 0, 1], port));
                }
            }
            if self.addr.port() != 0 && http_status(&self.addr, "/moto-api/") == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "moto_server not ready after {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A driver configuration for `bucket` on this server, signed with the
    /// test keys, small parts (5 MiB) and few retries.
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config {
            accesskey: ACCESS_KEY.into(),
            secretkey: SECRET_KEY.into(),
            region: "us-east-1".into(),
            regionendpoint: self.endpoint(),
            forcepathstyle: true,
            bucket: bucket.into(),
            chunksize: 5 * 1024 * 1024,
            multipartcopychunksize: 5 * 1024 * 1024,
            multipartcopythresholdsize: 5 * 1024 * 1024,
            multipartcopymaxconcurrency: 4,
            maxattempts: 3,
            ..S3Config::default()
        }
    }

    /// A plain SDK client for checking what the driver stored.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint(), ACCESS_KEY, SECRET_KEY)
    }

    /// Creates a bucket with a fresh unique name and returns the name.
    pub async fn create_bucket(&self) -> String {
        let name = format!("disco-{}", uuid::Uuid::new_v4().simple());
        self.client()
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {name}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
        name
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An SDK client for an endpoint with static keys, path-style addressing.
pub fn client_for(endpoint: &str, access: &str, secret: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .build();
    Client::from_conf(conf)
}
