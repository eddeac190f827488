//! The disco process: configuration handling, defaults, TLS, graceful
//! shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::registry::{Kind, Options, Registry, free_port};

fn disco() -> Command {
    Command::new(env!("CARGO_BIN_EXE_disco"))
}

/// Kills a child process on drop.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn config_check_reports_key_paths_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "storage:\n  delete:\n    enabled: sometimes\n").unwrap();
    let out = disco()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("storage.delete.enabled"), "{err}");

    let warn = dir.path().join("warn.yml");
    std::fs::write(
        &warn,
        "http:\n  addr: 127.0.0.1:5000\n  adrr: typo\nnotifications:\n  endpoints: []\n",
    )
    .unwrap();
    let out = disco()
        .args(["config", "check"])
        .arg(&warn)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("http.adrr"), "{text}");
    assert!(text.contains("`notifications` is not supported"), "{text}");
    // An auth section that cannot be enforced is an error, not a warning.
    let auth = dir.path().join("auth.yml");
    std::fs::write(&auth, "auth:\n  htpasswd: {}\n").unwrap();
    let out = disco()
        .args(["config", "check"])
        .arg(&auth)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("auth.htpasswd.path"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default-config.yaml");
    let out = disco().args(["config", "check", shipped]).output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning"));
}

#[test]
fn invalid_config_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    std::fs::write(&cfg, "http:\n  addr: not-an-address\n").unwrap();
    let out = disco()
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.addr"));
}

#[test]
fn environment_overrides_config() {
    let port = free_port();
    let opts = Options {
        kind: Kind::Disco,
        env: vec![("REGISTRY_HTTP_ADDR".into(), format!("127.0.0.1:{port}"))],
        ..Options::default()
    };
    // The harness waits on the configured address; the override moves the
    // listener, so start by hand and poll the overridden port.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:1\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let child = disco()
        .arg("serve")
        .arg(&cfg)
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .env("HOME", dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(child);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_status(&addr, 200);
}

fn wait_status(addr: &std::net::SocketAddr, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::support::registry::http_status(addr, "/v2/") != Some(want) {
        assert!(Instant::now() < deadline, "no {want} from {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With no configuration at all, disco listens on :1970 and keeps its data
/// under ~/.disco. Run in a private network namespace so the all-interfaces
/// listener is reachable only on its loopback.
#[test]
fn zero_config_defaults() {
    let home = tempfile::tempdir().unwrap();
    let script = format!(
        "ip link set lo up && ({bin} > {home}/log 2>&1 & echo $! > {home}/pid) && \
         for i in $(seq 1 300); do curl -fsS -o /dev/null http://127.0.0.1:1970/v2/ && break; sleep 0.1; done; \
         curl -fsS -X POST -o /dev/null -w '%{{http_code}}' 'http://127.0.0.1:1970/v2/zero/blobs/uploads/?digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'; \
         kill $(cat {home}/pid)",
        bin = env!("CARGO_BIN_EXE_disco"),
        home = home.path().display()
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env("HOME", home.path())
        .env_remove("REGISTRY_CONFIGURATION_PATH")
        .output()
        .expect("unshare (util-linux) must be installed; run as root (scripts/test)");
    let log = std::fs::read_to_string(home.path().join("log")).unwrap_or_default();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "201",
        "stderr: {} log: {log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        home.path().join(".disco").is_dir(),
        "data directory not created under ~/.disco"
    );
}

#[test]
fn tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success());
    let port = free_port();
    let cfg = dir.path().join("c.yml");
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  filesystem:\n    rootdirectory: {}/data\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {}\n    key: {}\n",
            dir.path().display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let child = disco()
        .arg("serve")
        .arg(&cfg)
        .env("HOME", dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _p = Proc(child);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let url = format!("https://127.0.0.1:{port}/v2/");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.get(&url).send().await {
                Ok(r) => {
                    assert_eq!(r.status(), 200);
                    assert_eq!(
                        r.headers()["docker-distribution-api-version"],
                        "registry/2.0"
                    );
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "TLS endpoint not ready: {e:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // Plain HTTP on the TLS port is refused, not served.
        let plain = reqwest::get(format!("http://127.0.0.1:{port}/v2/")).await;
        assert!(plain.is_err() || plain.unwrap().status() != 200);
    });
}

/// SIGTERM lets an in-flight upload finish, then the process exits 0.
#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut reg = Registry::start_with(Options {
        kind: Kind::Disco,
        ..Options::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = reg.url();
    let pid = reg.pid().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{base}/v2/slow/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
        // A body that trickles in over ~2 s; SIGTERM arrives in the middle.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
        let req = tokio::spawn({
            let client = client.clone();
            let loc = loc.clone();
            async move { client.patch(loc).body(body).send().await }
        });
        for i in 0..20u8 {
            tx.send(Ok(bytes::Bytes::from(vec![i; 1000])))
                .await
                .unwrap();
            if i == 5 {
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(tx);
        let resp = req.await.unwrap().unwrap();
        assert_eq!(resp.status(), 202);
        assert_eq!(resp.headers()["range"], "0-19999");
    });
    // The process exits by itself after the drain.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        if r == pid as i32 {
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "exit status {status}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "disco did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reg.forget_process();
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
