//! A js-ipfs 0.66.1 daemon (`tests/js/jsipfs`): a real Kubo-RPC-speaking
//! server for the Kubo backend's tests.
//!
//! Each daemon gets a fresh repo (`init --profile test`: no bootstrap peers,
//! no mDNS) in a temp dir, API/gateway/RPC/swarm on 127.0.0.1 ports, routing
//! `none`, and runs `daemon --enable-preload=false`. It is killed by PID when
//! its handle drops (and by the kernel if the test process dies first).
//! [`shared`] hands out one daemon to all tests of a binary that run at the
//! same time.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak, mpsc};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::registry::free_port;

/// The npm project with js-ipfs.
pub fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/jsipfs")
}

fn check_installed() -> PathBuf {
    let dir = package_dir();
    assert!(
        dir.join("node_modules/ipfs/src/cli.js").exists(),
        "js-ipfs is not installed in {}: run scripts/test (it runs `npm ci` there)",
        dir.display()
    );
    assert!(
        Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "`node` (Node.js 20) is not on PATH: run scripts/test"
    );
    dir
}

/// A running js-ipfs daemon.
pub struct JsIpfs {
    /// `http://127.0.0.1:<port>` of the RPC API.
    pub api: String,
    /// The swarm TCP port.
    pub swarm_port: u16,
    repo: PathBuf,
    ports: [u16; 4],
    child: Option<Child>,
    _temp: TempDir,
}

/// Children are spawned from one thread that lives as long as the test
/// process, so `PR_SET_PDEATHSIG` (which follows the spawning thread)
/// kills them only when the whole process is gone.
fn spawn(mut cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("jsipfs-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap()
        .send((cmd, reply_tx))
        .expect("spawner alive");
    reply_rx.recv().expect("spawner answers")
}

impl JsIpfs {
    /// Initialises a fresh repo and starts the daemon.
    pub fn start() -> Self {
        let dir = check_installed();
        let temp = tempfile::Builder::new()
            .prefix("disco-jsipfs-")
            .tempdir()
            .unwrap();
        let repo = temp.path().join("repo");
        let out = Command::new("node")
            .arg(dir.join("jsipfs.mjs"))
            .args(["init", "--profile", "test"])
            .env("IPFS_PATH", &repo)
            .env("NO_UPDATE_NOTIFIER", "1")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run js-ipfs init");
        assert!(
            out.status.success(),
            "js-ipfs init failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut d = JsIpfs {
            api: String::new(),
            swarm_port: 0,
            repo,
            ports: [0; 4],
            child: None,
            _temp: temp,
        };
        // A port picked free can be taken by another process before the
        // daemon binds it: then pick new ones.
        for attempt in 1..=3 {
            d.configure([free_port(), free_port(), free_port(), free_port()]);
            match d.try_run() {
                Ok(()) => return d,
                Err(e) if attempt < 3 => eprintln!("js-ipfs start attempt {attempt}: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    /// Points the repo's config at `ports` (API, gateway, RPC, swarm).
    fn configure(&mut self, ports: [u16; 4]) {
        let cfg_path = self.repo.join("config");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
        let addrs = &mut cfg["Addresses"];
        addrs["API"] = format!("/ip4/127.0.0.1/tcp/{}", ports[0]).into();
        addrs["Gateway"] = format!("/ip4/127.0.0.1/tcp/{}", ports[1]).into();
        addrs["RPC"] = format!("/ip4/127.0.0.1/tcp/{}", ports[2]).into();
        addrs["Swarm"] = serde_json::json!([format!("/ip4/127.0.0.1/tcp/{}", ports[3])]);
        addrs["Announce"] = serde_json::json!([]);
        addrs["Delegates"] = serde_json::json!([]);
        cfg["Routing"]["Type"] = "none".into();
        cfg["Bootstrap"] = serde_json::json!([]);
        cfg["Discovery"]["MDNS"]["Enabled"] = false.into();
        cfg["Discovery"]["webRTCStar"]["Enabled"] = false.into();
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        self.api = format!("http://127.0.0.1:{}", ports[0]);
        self.swarm_port = ports[3];
        self.ports = ports;
    }

    fn log_path(&self) -> PathBuf {
        self.repo.with_file_name("daemon.log")
    }

    /// The daemon's output so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn run(&mut self) {
        if let Err(e) = self.try_run() {
            panic!("{e}");
        }
    }

    /// Starts the daemon and waits until it is ready; an error if it
    /// exits, cannot bind a port or is not ready in 240 s.
    fn try_run(&mut self) -> Result<(), String> {
        // Start-up is CPU-heavy: one at a time is as fast overall and keeps
        // each within its deadline on a loaded machine.
        static STARTING: Mutex<()> = Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        // A killed daemon leaves its lock behind; nothing else uses the repo.
        let _ = std::fs::remove_dir_all(self.repo.join("repo.lock"));
        let _ = std::fs::remove_file(self.repo.join("repo.lock"));
        let dir = package_dir();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mark = log.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("jsipfs.mjs"))
            .args(["daemon", "--enable-preload=false"])
            .env("IPFS_PATH", &self.repo)
            .env("NO_UPDATE_NOTIFIER", "1")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(spawn(cmd).expect("spawn js-ipfs daemon"));
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let log = self.log();
            let new = log.get(mark..).unwrap_or_default();
            if new.contains("Daemon is ready") {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("js-ipfs daemon exited ({status}):\n{log}"));
            }
            if new.contains("EADDRINUSE") || Instant::now() > deadline {
                self.kill();
                return Err(format!("js-ipfs daemon did not start:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the daemon with SIGKILL (a crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same repo and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Starts a stopped or killed daemon again on the same repo and ports.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "daemon still running");
        self.run();
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The swarm multiaddr (without `/p2p/`).
    pub fn swarm_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.ports[3])
    }
}

impl Drop for JsIpfs {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One daemon shared by the tests that run at the same time: started on
/// first use, stopped when the last test holding it finishes.
pub fn shared() -> Arc<JsIpfs> {
    static SHARED: Mutex<Weak<JsIpfs>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = slot.upgrade() {
        return d;
    }
    let d = Arc::new(JsIpfs::start());
    *slot = Arc::downgrade(&d);
    d
}
