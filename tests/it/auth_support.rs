//! Support for the access-control tests: htpasswd files written by Apache's
//! `htpasswd -B` (the entries Distribution reads), discos with an `auth`
//! section on an offline embedded store (so images get their digest and
//! CID repositories), starts that must fail, and pushes with credentials.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::clients::Clients;
use crate::support::images::{self, OciLayout, TestImage};
use crate::support::registry::{Kind, Options, Registry, free_port};

/// Writes an htpasswd file with bcrypt entries made by `htpasswd -B`.
pub fn htpasswd_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("htpasswd");
    let mut text = String::new();
    for (u, p) in users {
        let out = Command::new("htpasswd")
            .args(["-B", "-b", "-n", u, p])
            .output()
            .expect("htpasswd (Debian package apache2-utils)");
        assert!(out.status.success(), "htpasswd -B: {out:?}");
        text.push_str(String::from_utf8(out.stdout).unwrap().trim());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// The `storage:` body of an offline embedded node under `dir`.
pub fn offline_storage(dir: &Path) -> String {
    format!(
        "  ipfs:\n    spooldirectory: {}\n    embedded:\n      path: {}\n      listen: []\n      gc:\n        enabled: false\n  delete:\n    enabled: true\n",
        dir.join("spool").display(),
        dir.join("ipfs").display()
    )
}

/// A disco on an offline embedded store with `auth` (top-level YAML).
pub fn start_with_auth(dir: &Path, auth: &str) -> Registry {
    Registry::start_in(
        dir,
        Options {
            storage: Some(offline_storage(dir)),
            extra: auth.to_string(),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    )
}

/// Runs `disco serve` on a config that must be refused: returns its exit
/// status and standard error once it exits (bounded wait).
pub fn refused_start(dir: &Path, config: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("refused.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    // A config that passes validation must not start a networked node.
    let storage = if config.contains("storage:") {
        ""
    } else {
        "storage:\n  inmemory: {}\n"
    };
    std::fs::write(&path, format!("version: 0.1\n{storage}{config}")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_disco"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("HOME", dir)
        .env("REGISTRY_HTTP_ADDR", addr)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn disco");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(!status.success(), "disco started with:\n{config}\n{err}");
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("disco did not refuse to start with:\n{config}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cached busybox test layout.
pub fn busybox() -> OciLayout {
    images::cached(TestImage::Busybox).expect("busybox test image")
}

/// skopeo copy of `layout` to `host/repo:tag` with `creds` (`user:pass`,
/// or `None` for no credentials); does not check the result.
pub fn skopeo_push(
    clients: &Clients,
    layout: &OciLayout,
    host: &str,
    repo: &str,
    creds: Option<&str>,
) -> crate::support::clients::Run {
    let dest = format!("docker://{host}/{repo}:latest");
    let src = layout.reference();
    let mut args = vec!["copy", "--preserve-digests", "--retry-times", "0"];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([src.as_str(), dest.as_str()]);
    clients.skopeo_result(&args)
}

/// skopeo copy from `host/repo:tag` into a fresh OCI layout; does not check
/// the result.
pub fn skopeo_pull(
    clients: &Clients,
    host: &str,
    repo: &str,
    creds: Option<&str>,
    out: &str,
) -> (crate::support::clients::Run, PathBuf) {
    let dir = clients.out_dir(out);
    let src = format!("docker://{host}/{repo}:latest");
    let dest = format!("oci:{}:pulled", dir.display());
    let mut args = vec!["copy", "--retry-times", "0"];
    if let Some(c) = creds {
        args.extend(["--src-creds", c]);
    }
    args.extend([src.as_str(), dest.as_str()]);
    (clients.skopeo_result(&args), dir)
}

/// The manifest digest of the layout's image.
pub fn manifest_digest(layout: &OciLayout) -> String {
    layout.image().manifest.digest.clone()
}

/// Runs the ORAS Python client (oras-py) script with `args`; returns
/// (success, output).
pub fn oras(args: &[&str]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("tests/py/.venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/test (installs tests/py/requirements-*.txt)",
        python.display()
    );
    let out = Command::new(python)
        .arg(root.join("tests/py/oras_client.py"))
        .args(args)
        .output()
        .expect("run oras-py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
