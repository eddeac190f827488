//! Real container clients for tests: skopeo, podman and containerd's ctr,
//! each confined to one temp dir.
//!
//! [`Clients`] owns a temp dir holding every config the clients read; none
//! of the machine's (`/etc/containers`, `~/.config`, `/var/lib/containers`,
//! `/run/containerd`) is used:
//! - skopeo and podman run in a private mount namespace (`unshare`) where the
//!   temp dir's `etc-containers/` replaces `/etc/containers` (skopeo 1.9
//!   ignores `CONTAINERS_REGISTRIES_CONF`) and its `bic-cache/` replaces
//!   `/var/lib/containers/cache`, root's containers/image blob-info cache
//!   (so known blob locations persist between the runs of one test and
//!   never leak between tests);
//! - `etc-containers/` holds a `registries.conf` marking the test
//!   registries insecure (plain HTTP), a `policy.json` accepting anything,
//!   and podman's `storage.conf` (`vfs`, graph and run roots in the temp
//!   dir) and `containers.conf` (runc, cgroupfs, file events logger, file
//!   locks, ulimits this machine allows); podman is rootful, no daemon;
//! - containerd: started by hand with root, state and sockets in the temp
//!   dir and the CRI plugin disabled, killed by PID on drop; `ctr` talks to
//!   its socket.
//!
//! Every command runs with a cleared environment (PATH, HOME, TMPDIR and
//! the variables above only) and a hang guard; a missing tool fails the test
//! with a message naming `scripts/test`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::images;

/// Hang guard for one client command (not a performance bound).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// The result of one command.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (up to 1 MiB; see [`Run::stdout_path`] for all).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// File holding the complete standard output.
    pub stdout_path: PathBuf,
}

impl Run {
    /// Panics with the command's output unless it exited 0; returns self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "command failed ({}): {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.cmdline,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command failed; returns self.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            !self.status.success(),
            "command unexpectedly succeeded: {}\n{}",
            self.cmdline,
            self.stdout
        );
        self
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: output is not JSON ({e}):\n{}",
                self.cmdline, self.stdout
            )
        })
    }
}

/// Fails with the setup hint when `tool` is not on PATH.
#[track_caller]
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` not found: run scripts/test as root (it installs the test dependencies)"
    );
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs `cmd` to completion with stdout/stderr captured in files under
/// `log_dir`, killing it (by PID) if it outlives `timeout`.
pub fn run(cmd: &mut Command, log_dir: &Path, timeout: Duration) -> Run {
    cmd.stdin(Stdio::null());
    run_with_stdin(cmd, log_dir, timeout)
}

/// [`run`] for a command whose standard input the caller has set.
pub fn run_with_stdin(cmd: &mut Command, log_dir: &Path, timeout: Duration) -> Run {
    let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let out_path = log_dir.join(format!("cmd-{n}.out"));
    let err_path = log_dir.join(format!("cmd-{n}.err"));
    let cmdline = format!("{cmd:?}");
    let out = fs::File::create(&out_path).expect("stdout file");
    let err = fs::File::create(&err_path).expect("stderr file");
    let mut child = cmd.stdout(out).stderr(err).spawn().unwrap_or_else(|e| {
        panic!("cannot start {cmdline}: {e}; run scripts/test as root to install test dependencies")
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "command hung for {timeout:?}, killed: {cmdline}\n{}",
                read_capped(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        cmdline,
        status,
        stdout: read_capped(&out_path),
        stderr: read_capped(&err_path),
        stdout_path: out_path,
    }
}

fn read_capped(path: &Path) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = fs::File::open(path) {
        let _ = f.take(1 << 20).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Confined configuration for skopeo, podman and ctr (see the module doc).
pub struct Clients {
    _temp: TempDir,
    /// The temp dir everything lives in.
    pub root: PathBuf,
    insecure: Vec<String>,
}

/// Runs its arguments in a private mount namespace where the temp dir's
/// `etc-containers` replaces `/etc/containers` and its `bic-cache` replaces
/// `/var/lib/containers/cache` (root's containers/image blob-info cache),
/// its `run-containers` replaces `/run/containers` (podman's network
/// state) and its `run-runc` replaces `/run/runc` (runc's container state).
/// The mount points are created (empty) on the host if missing.
const CONFINE_SCRIPT: &str = r#"set -e
mkdir -p /var/lib/containers/cache /etc/containers /run/containers /run/runc
mount --bind "$1/bic-cache" /var/lib/containers/cache
mount --bind "$1/etc-containers" /etc/containers
mount --bind "$1/run-containers" /run/containers
mount --bind "$1/run-runc" /run/runc
shift
exec "$@""#;

impl Clients {
    /// Confined client configs trusting `insecure_hosts` (`127.0.0.1:port`)
    /// over plain HTTP.
    pub fn new(insecure_hosts: &[String]) -> Self {
        let temp = tempfile::Builder::new()
            .prefix("disco-clients-")
            .tempdir()
            .expect("temp dir");
        let root = temp.path().to_path_buf();
        for d in [
            "home",
            "tmp",
            "run",
            "logs",
            "etc-containers/registries.d",
            "etc-containers/registries.conf.d",
            "bic-cache",
            "run-containers",
            "run-runc",
            "podman/tmp",
            "podman/static",
            "podman/volumes",
            "podman/networks",
            "podman/graph",
            "podman/runroot",
            "out",
        ] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        fs::write(
            root.join("etc-containers/policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("policy");
        fs::write(root.join("auth.json"), r#"{"auths":{}}"#).expect("auth");
        let c = Clients {
            _temp: temp,
            root,
            insecure: insecure_hosts.to_vec(),
        };
        c.write_registries_conf();
        c.write_podman_confs();
        c
    }

    /// Also trusts `host` over plain HTTP.
    pub fn allow_insecure(&mut self, host: &str) {
        self.insecure.push(host.to_string());
        self.write_registries_conf();
    }

    fn write_registries_conf(&self) {
        let mut s =
            String::from("unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n");
        for h in &self.insecure {
            s.push_str(&format!(
                "\n[[registry]]\nlocation = \"{h}\"\ninsecure = true\n"
            ));
        }
        fs::write(self.root.join("etc-containers/registries.conf"), s).expect("registries.conf");
    }

    fn write_podman_confs(&self) {
        let p = self.root.join("podman");
        let storage = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            p.join("graph").display(),
            p.join("runroot").display()
        );
        fs::write(self.root.join("etc-containers/storage.conf"), storage).expect("storage.conf");
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_config_dir = "{net}"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
lock_type = "file"
tmp_dir = "{tmp}"
static_dir = "{static_dir}"
volume_path = "{volumes}"
image_copy_tmp_dir = "{copytmp}"
"#,
            net = p.join("networks").display(),
            events = p.join("events.log").display(),
            tmp = p.join("tmp").display(),
            static_dir = p.join("static").display(),
            volumes = p.join("volumes").display(),
            copytmp = self.root.join("tmp").display(),
        );
        fs::write(self.root.join("etc-containers/containers.conf"), conf).expect("containers.conf");
    }

    /// A command with the confined environment.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .env("HOME", self.root.join("home"))
            .env("TMPDIR", self.root.join("tmp"))
            .env("XDG_RUNTIME_DIR", self.root.join("run"))
            .env("XDG_CONFIG_HOME", self.root.join("home/.config"))
            .env("XDG_DATA_HOME", self.root.join("home/.local/share"))
            .env("REGISTRY_AUTH_FILE", self.root.join("auth.json"))
            .env("DOCKER_CONFIG", self.root.join("home/.docker"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.root.join("etc-containers/registries.conf"),
            )
            .env(
                "CONTAINERS_CONF",
                self.root.join("etc-containers/containers.conf"),
            )
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.root.join("etc-containers/storage.conf"),
            )
            .current_dir(&self.root);
        c
    }

    /// `program` run through the confining mount namespace (see
    /// [`CONFINE_SCRIPT`]), with the confined environment.
    pub fn confined(&self, program: &str) -> Command {
        require_tool("unshare");
        require_tool(program);
        let mut c = self.command("unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            CONFINE_SCRIPT,
            "sh",
        ])
        .arg(&self.root)
        .arg(program);
        c
    }

    /// A fresh directory under the temp dir (for pulled layouts etc.).
    pub fn out_dir(&self, name: &str) -> PathBuf {
        let d = self.root.join("out").join(name);
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// Runs `skopeo <args>` (with the private policy, registries.d and
    /// blob-info cache); does not check the exit status.
    pub fn skopeo_result(&self, args: &[&str]) -> Run {
        let mut c = self.confined("skopeo");
        c.args(args);
        run(&mut c, &self.root.join("logs"), COMMAND_TIMEOUT)
    }

    /// Runs `skopeo <args>` and asserts success.
    #[track_caller]
    pub fn skopeo(&self, args: &[&str]) -> Run {
        self.skopeo_result(args).ok()
    }

    /// Runs `podman <args>` (rootful, confined); does not check the status.
    pub fn podman_result(&self, args: &[&str]) -> Run {
        let mut c = self.confined("podman");
        c.args(args);
        run(&mut c, &self.root.join("logs"), COMMAND_TIMEOUT)
    }

    /// Runs `podman <args>` and asserts success.
    #[track_caller]
    pub fn podman(&self, args: &[&str]) -> Run {
        self.podman_result(args).ok()
    }

    /// `podman pull` of `reference` with the private signature policy;
    /// returns the image ID podman prints.
    #[track_caller]
    pub fn podman_pull(&self, reference: &str, extra: &[&str]) -> String {
        let policy = self.root.join("etc-containers/policy.json");
        let mut args = vec![
            "pull",
            "--signature-policy",
            policy.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        args.push(reference);
        let r = self.podman(&args);
        r.stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// `podman push <image> <dest>` with the private signature policy.
    #[track_caller]
    pub fn podman_push(&self, image: &str, dest: &str, extra: &[&str]) -> Run {
        let policy = self.root.join("etc-containers/policy.json");
        let mut args = vec![
            "push",
            "--signature-policy",
            policy.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        args.push(image);
        args.push(dest);
        self.podman(&args)
    }

    /// Starts a confined containerd; killed when the handle drops.
    pub fn start_containerd(&self) -> Containerd<'_> {
        Containerd::start(self)
    }
}

/// A containerd started by hand for one test.
pub struct Containerd<'a> {
    clients: &'a Clients,
    child: Option<Child>,
    /// The gRPC socket.
    pub socket: PathBuf,
    dir: PathBuf,
}

impl<'a> Containerd<'a> {
    fn start(clients: &'a Clients) -> Self {
        require_tool("containerd");
        require_tool("ctr");
        let dir = clients.root.join("containerd");
        fs::create_dir_all(&dir).expect("mkdir containerd");
        let socket = dir.join("c.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
        );
        let cfg = dir.join("config.toml");
        fs::write(&cfg, config).expect("containerd config");
        let log = fs::File::create(dir.join("containerd.log")).expect("containerd log");
        let child = clients
            .command("containerd")
            .arg("--config")
            .arg(&cfg)
            .arg("--log-level")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let mut c = Containerd {
            clients,
            child: Some(child),
            socket,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = c.child.as_mut().map(|ch| ch.try_wait()) {
                panic!("containerd exited ({status}):\n{}", c.log());
            }
            if c.socket.exists() && c.ctr_result(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd not ready:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        read_capped(&self.dir.join("containerd.log"))
    }

    /// Runs `ctr --address <socket> --namespace disco-it <args>`; does not
    /// check the status.
    pub fn ctr_result(&self, args: &[&str]) -> Run {
        self.ctr_ns_result("disco-it", args)
    }

    /// Runs `ctr` in containerd namespace `ns` (each namespace has its own
    /// images and content labels); does not check the status.
    pub fn ctr_ns_result(&self, ns: &str, args: &[&str]) -> Run {
        let mut c = self.clients.command("ctr");
        c.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", ns])
            .args(args);
        run(&mut c, &self.clients.root.join("logs"), COMMAND_TIMEOUT)
    }

    /// Runs `ctr` in namespace `ns` and asserts success.
    #[track_caller]
    pub fn ctr_ns(&self, ns: &str, args: &[&str]) -> Run {
        self.ctr_ns_result(ns, args).ok()
    }

    /// Runs `ctr <args>` and asserts success.
    #[track_caller]
    pub fn ctr(&self, args: &[&str]) -> Run {
        self.ctr_result(args).ok()
    }

    /// `ctr images pull --plain-http --snapshotter native <extra> <reference>`;
    /// does not check the status.
    pub fn pull_result(&self, reference: &str, extra: &[&str]) -> Run {
        let mut args = vec!["images", "pull", "--plain-http", "--snapshotter", "native"];
        args.extend_from_slice(extra);
        args.push(reference);
        self.ctr_result(&args)
    }

    /// [`Containerd::pull_result`], asserting success.
    #[track_caller]
    pub fn pull(&self, reference: &str, extra: &[&str]) -> Run {
        self.pull_result(reference, extra).ok()
    }

    /// `sha256:` and size of a blob in containerd's content store (streamed
    /// through `ctr content get` into a file).
    #[track_caller]
    pub fn content_digest(&self, digest: &str) -> (String, u64) {
        let r = self.ctr(&["content", "get", digest]);
        let d = images::sha256_file(&r.stdout_path).expect("hash ctr output");
        let _ = fs::remove_file(&r.stdout_path);
        d
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
