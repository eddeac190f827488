//! Docker Engine (Debian's `docker.io`) for tests: a private `dockerd`
//! started per [`Docker`] handle and stopped by PID when it drops.
//!
//! Nothing here installs anything: `tests/deps/apt-docker.txt` lists
//! `docker.io`, which `scripts/setup-test-deps` installs. The daemon is
//! `/usr/sbin/dockerd` and the client `/usr/bin/docker` (both from
//! `docker.io`; `/usr/local/bin/docker`, if present, is another client and is
//! never used).
//!
//! Each handle owns a short temp dir under `/tmp` (unix socket paths are
//! limited to 108 bytes) holding everything the daemon and client use:
//! - `d.sock`: the API socket (`--host unix://...`);
//! - `data/`: `--data-root` (images, containers; `vfs` storage driver, so no
//!   overlay mounts are needed), `x/`: `--exec-root` (the containerd dockerd
//!   starts as its child, network namespaces), `dockerd.pid`: `--pidfile`;
//! - `daemon.json`: `--config-file` (the machine's `/etc/docker/daemon.json`
//!   is never read), the test's [`DockerOptions::daemon_json`] or `{}`;
//! - `config/`: the client's `DOCKER_CONFIG` (so `docker login` credentials
//!   belong to one test), `home/`, `tmp/`, `logs/` (client command output).
//!
//! The daemon runs with `--iptables=false --ip6tables=false --bridge=none`:
//! it touches neither the host's firewall nor its interfaces, so `docker
//! run` needs `--network none` ([`Docker::run`] adds it). Registries on
//! `127.0.0.0/8` are insecure-allowed by Docker itself; others are listed
//! with [`DockerOptions::insecure_registries`]. Each handle is independent
//! (nextest runs one test per process; several handles in one process work
//! as well).
//!
//! On drop: containers are removed (`docker rm -f`), dockerd gets SIGTERM
//! (SIGKILL after 30 s), then any process still running from this temp dir
//! (its containerd, containerd shims) is killed by PID and any mount left
//! under it is detached.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::clients::{self, COMMAND_TIMEOUT, Run};
use super::images::{Image, OciLayout};

/// The Docker daemon from Debian's `docker.io`.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// The Docker client from Debian's `docker.io`.
pub const DOCKER: &str = "/usr/bin/docker";

/// How long the daemon may take to answer `/_ping` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a graceful daemon shutdown may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Daemon options a test can ask for.
#[derive(Debug, Clone, Default)]
pub struct DockerOptions {
    /// `--insecure-registry` entries (`host:port` or CIDR): plain HTTP
    /// allowed. `127.0.0.0/8` is always insecure-allowed by Docker.
    pub insecure_registries: Vec<String>,
    /// `--registry-mirror` entries (`http://host:port`): mirrors of Docker
    /// Hub (`docker.io`) tried before it.
    pub registry_mirrors: Vec<String>,
    /// `daemon.json` content (`--config-file`); `None` = `{}`. Must not
    /// repeat a setting also given as a flag above (dockerd refuses that).
    pub daemon_json: Option<serde_json::Value>,
    /// Extra dockerd arguments.
    pub extra_args: Vec<String>,
}

/// A private Docker daemon and its client configuration; stopped on drop.
pub struct Docker {
    /// The temp dir holding everything (see the module doc).
    pub root: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// The client's `DOCKER_CONFIG` directory.
    pub config_dir: PathBuf,
    child: Option<Child>,
    _temp: TempDir,
}

impl Docker {
    /// Starts a daemon with default options.
    pub fn start() -> Self {
        Self::start_with(DockerOptions::default())
    }

    /// Starts a daemon with `opts`; returns once it answers `/_ping`.
    pub fn start_with(opts: DockerOptions) -> Self {
        for tool in [DOCKERD, DOCKER] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} missing: run scripts/test as root (installs Debian package docker.io)"
            );
        }
        // A short base: the socket and containerd's sockets below the exec
        // root must fit a unix socket path.
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let temp = tempfile::Builder::new()
            .prefix("dk-")
            .tempdir_in(&base)
            .expect("temp dir");
        let root = temp.path().to_path_buf();
        let socket = root.join("d.sock");
        assert!(
            root.join("x/containerd/containerd.sock.ttrpc")
                .as_os_str()
                .len()
                < 100,
            "docker temp dir path too long for unix sockets: {}",
            root.display()
        );
        for d in ["data", "x", "config", "home", "tmp", "logs"] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let daemon_json = opts
            .daemon_json
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        fs::write(
            root.join("daemon.json"),
            serde_json::to_vec_pretty(&daemon_json).expect("daemon.json"),
        )
        .expect("write daemon.json");
        fs::write(root.join("config/config.json"), b"{\"auths\":{}}\n").expect("config.json");

        let log = fs::File::create(root.join("dockerd.log")).expect("dockerd log");
        let mut cmd = Command::new(DOCKERD);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", root.join("home"))
            .env("TMPDIR", root.join("tmp"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("x"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("--config-file")
            .arg(root.join("daemon.json"))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--log-level",
                "info",
            ]);
        for r in &opts.insecure_registries {
            cmd.arg("--insecure-registry").arg(r);
        }
        for m in &opts.registry_mirrors {
            cmd.arg("--registry-mirror").arg(m);
        }
        cmd.args(&opts.extra_args)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = cmd.spawn().expect("start dockerd");
        let mut d = Docker {
            config_dir: root.join("config"),
            root,
            socket,
            child: Some(child),
            _temp: temp,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("dockerd exited at start ({status}):\n{}", self.log());
            }
            if ping(&self.socket) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not ready after {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `unix://<socket>`, the client's `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The daemon's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }

    /// A `/usr/bin/docker` command talking to this daemon: cleared
    /// environment, `DOCKER_HOST`, `DOCKER_CONFIG`, `HOME` and `TMPDIR` in
    /// the temp dir.
    pub fn command(&self) -> Command {
        let mut c = Command::new(DOCKER);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", self.root.join("home"))
            .env("TMPDIR", self.root.join("tmp"))
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.config_dir)
            .env("DOCKER_CLI_HINTS", "false")
            .current_dir(&self.root);
        c
    }

    /// Runs `docker <args>`; does not check the exit status.
    pub fn docker_result(&self, args: &[&str]) -> Run {
        let mut c = self.command();
        c.args(args);
        clients::run(&mut c, &self.root.join("logs"), COMMAND_TIMEOUT)
    }

    /// Runs `docker <args>` and asserts success (the failure message has
    /// the client's output; see [`Docker::log`] for the daemon's).
    #[track_caller]
    pub fn docker(&self, args: &[&str]) -> Run {
        let r = self.docker_result(args);
        if !r.status.success() {
            eprintln!("--- dockerd log (tail)\n{}", tail(&self.log(), 4000));
        }
        r.ok()
    }

    /// `docker run --rm --network none <args>`; asserts success.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// `docker login -u <user> --password-stdin <host>` (credentials land in
    /// this handle's `DOCKER_CONFIG`); does not check the exit status.
    pub fn login_result(&self, host: &str, user: &str, password: &str) -> Run {
        let mut c = self.command();
        c.args(["login", "-u", user, "--password-stdin", host]);
        let input = self.root.join("tmp/login-input");
        fs::write(&input, password).expect("write password");
        let f = fs::File::open(&input).expect("open password");
        let _ = fs::remove_file(&input);
        c.stdin(f);
        clients::run_with_stdin(&mut c, &self.root.join("logs"), COMMAND_TIMEOUT)
    }

    /// Loads the first image of `layout` (the amd64 one of an index) into
    /// the daemon as `tag` (`docker load` of a docker-archive written from
    /// the layout: Docker 20.10 does not load OCI archives); returns the
    /// image ID, which is the config's digest.
    #[track_caller]
    pub fn load(&self, layout: &OciLayout, tag: &str) -> String {
        let archive = self.root.join("tmp/load.tar");
        write_docker_archive(layout, layout.image(), &[tag], &archive).expect("docker archive");
        let path = archive.to_str().expect("utf-8 path");
        self.docker(&["load", "--input", path]);
        let _ = fs::remove_file(&archive);
        let id = self.image_id(tag);
        assert_eq!(id, layout.image().config.digest, "loaded image ID");
        id
    }

    /// The image ID (`sha256:` of its config) of a local image.
    #[track_caller]
    pub fn image_id(&self, reference: &str) -> String {
        self.docker(&["image", "inspect", "--format", "{{.Id}}", reference])
            .stdout
            .trim()
            .to_string()
    }

    /// `docker push <reference>`; returns the manifest digest it printed
    /// (`<tag>: digest: sha256:... size: N`).
    #[track_caller]
    pub fn push(&self, reference: &str) -> String {
        let r = self.docker(&["push", reference]);
        pushed_digest(&r.stdout)
            .unwrap_or_else(|| panic!("no digest in `docker push` output:\n{}", r.stdout))
    }

    /// Removes every image (and container) from the daemon, so that the
    /// next pull downloads everything.
    #[track_caller]
    pub fn remove_all_images(&self) {
        self.remove_all_containers();
        let ids = self.docker(&["image", "ls", "--all", "--quiet", "--no-trunc"]);
        let mut ids: Vec<&str> = ids.stdout.split_whitespace().collect();
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            let mut args = vec!["image", "rm", "--force"];
            args.extend(ids);
            self.docker(&args);
        }
        let left = self.docker(&["image", "ls", "--all", "--quiet"]);
        assert_eq!(left.stdout.trim(), "", "images left after removal");
    }

    fn remove_all_containers(&self) {
        let r = self.docker_result(&["ps", "--all", "--quiet", "--no-trunc"]);
        let ids: Vec<&str> = r.stdout.split_whitespace().collect();
        if r.status.success() && !ids.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(ids);
            let _ = self.docker_result(&args);
        }
    }

    /// Stops the daemon (SIGTERM, SIGKILL after 30 s) and everything it
    /// left running; detaches mounts left under the temp dir.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            self.remove_all_containers();
            // SAFETY: kill(2) on the PID of a child this handle started
            // and has not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        kill_processes_under(&self.root);
        unmount_under(&self.root);
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Docker API socket answers `GET /_ping` with 200.
fn ping(socket: &Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut n = 0;
    while n < buf.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    line.starts_with("HTTP/1.") && line.get(9..12) == Some("200")
}

/// The digest in `docker push` output (`latest: digest: sha256:<hex> size: N`).
pub fn pushed_digest(output: &str) -> Option<String> {
    output.lines().rev().find_map(|l| {
        let rest = l.split_once("digest: ")?.1;
        let digest = rest.split_whitespace().next()?;
        digest.starts_with("sha256:").then(|| digest.to_string())
    })
}

/// Writes `image` of `layout` as a docker-archive (`manifest.json` plus the
/// config and layer blobs under their OCI layout paths), the form `docker
/// load` of Docker 20.10 reads, tagged `tags`.
pub fn write_docker_archive(
    layout: &OciLayout,
    image: &Image,
    tags: &[&str],
    path: &Path,
) -> std::io::Result<()> {
    let blob_name = |digest: &str| {
        let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        format!("blobs/{alg}/{hex}")
    };
    let manifest = serde_json::json!([{
        "Config": blob_name(&image.config.digest),
        "RepoTags": tags,
        "Layers": image.layers.iter().map(|l| blob_name(&l.desc.digest)).collect::<Vec<_>>(),
    }]);
    let manifest = serde_json::to_vec(&manifest)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(fs::File::create(path)?));
    let header = |size: u64, kind: tar::EntryType| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(size);
        h.set_mtime(0);
        h
    };
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(
            &mut header(0, tar::EntryType::Directory),
            d,
            std::io::empty(),
        )?;
    }
    b.append_data(
        &mut header(manifest.len() as u64, tar::EntryType::Regular),
        "manifest.json",
        &manifest[..],
    )?;
    let mut blobs = vec![&image.config];
    blobs.extend(image.layers.iter().map(|l| &l.desc));
    let mut seen = std::collections::HashSet::new();
    for d in blobs {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let f = fs::File::open(layout.blob_path(&d.digest))?;
        let len = f.metadata()?.len();
        b.append_data(
            &mut header(len, tar::EntryType::Regular),
            blob_name(&d.digest),
            f,
        )?;
    }
    b.into_inner()?.flush()
}

/// Kills (SIGKILL, by PID) every process whose command line mentions `dir`:
/// the containerd dockerd started and containerd shims, which name sockets
/// under the exec root.
fn kill_processes_under(dir: &Path) {
    let needle = format!("{}/", dir.display());
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            // SAFETY: kill(2) of a process found running from our dir.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Detaches (lazy unmount) every mount point under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2(2) with a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}
