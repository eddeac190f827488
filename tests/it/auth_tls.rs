//! `http.tls` protections, as Distribution configures them: client
//! certificates (`clientcas`, mutual TLS: a client without a certificate
//! from one of those CAs is refused in the handshake), `minimumtls` and
//! `ciphersuites`. Real clients: curl and skopeo (`--dest-cert-dir`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::auth_support::{busybox, refused_start};
use crate::support::clients::Clients;
use crate::support::registry::free_port;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CA, server certificate for 127.0.0.1, a client certificate from the CA
/// and one from a rogue CA (all ECDSA P-256).
fn pki(d: &Path) {
    let key = |n: &str| {
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                n,
            ],
        )
    };
    for ca in ["ca", "rogue"] {
        key(&format!("{ca}.key"));
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
    }
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ca, ext) in [
        ("server", "ca", "server.ext"),
        ("client", "ca", "client.ext"),
        ("evil", "rogue", "client.ext"),
    ] {
        key(&format!("{name}.key"));
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "1",
                "-extfile",
                ext,
            ],
        );
    }
}

struct Disco(Child);

impl Drop for Disco {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, tls_extra: &str) -> (Disco, String) {
    let port = free_port();
    let cfg = dir.join(format!("tls-{port}.yml"));
    std::fs::write(
        &cfg,
        format!(
            "storage:\n  inmemory: {{}}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {d}/server.pem\n    key: {d}/server.key\n{tls_extra}",
            d = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_disco"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Disco(child);
    let url = format!("https://127.0.0.1:{port}/v2/");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "disco did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, url)
}

/// curl's HTTP status for `url` (`None` when the connection failed).
fn curl(dir: &Path, url: &str, args: &[&str]) -> Option<u16> {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(args)
        .arg(url)
        .current_dir(dir)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0))
}

#[test]
fn client_certificates_minimum_version_and_cipher_suites() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pki(dir);
    let (_p, url) = start(dir, &format!("    clientcas: [{}/ca.pem]\n", dir.display()));
    let with = |c: &str| {
        [
            "--cert".to_string(),
            format!("{c}.pem"),
            "--key".into(),
            format!("{c}.key"),
        ]
    };
    assert_eq!(
        curl(
            dir,
            &url,
            &with("client")
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ),
        Some(200)
    );
    assert_eq!(curl(dir, &url, &[]), None, "no client certificate");
    assert_eq!(
        curl(
            dir,
            &url,
            &with("evil").iter().map(String::as_str).collect::<Vec<_>>()
        ),
        None,
        "certificate of an unknown CA"
    );

    // skopeo pushes with its certificate directory.
    let host = url
        .trim_start_matches("https://")
        .trim_end_matches("/v2/")
        .to_string();
    let clients = Clients::new(&[]);
    let certs = clients.root.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for (from, to) in [
        ("client.pem", "client.cert"),
        ("client.key", "client.key"),
        ("ca.pem", "ca.crt"),
    ] {
        std::fs::copy(dir.join(from), certs.join(to)).unwrap();
    }
    let layout = busybox();
    let src = layout.reference();
    let dest = format!("docker://{host}/mtls/app:latest");
    let cert_dir = certs.display().to_string();
    clients.skopeo(&["copy", "--dest-cert-dir", &cert_dir, &src, &dest]);
    let no_cert = clients.root.join("nocert");
    std::fs::create_dir_all(&no_cert).unwrap();
    std::fs::copy(dir.join("ca.pem"), no_cert.join("ca.crt")).unwrap();
    clients
        .skopeo_result(&[
            "inspect",
            "--cert-dir",
            &no_cert.display().to_string(),
            &dest,
        ])
        .failed();

    // minimumtls: TLS 1.2 clients are refused.
    let (_p2, url) = start(dir, "    minimumtls: tls1.3\n");
    assert_eq!(curl(dir, &url, &[]), Some(200));
    assert_eq!(
        curl(dir, &url, &["--tls-max", "1.2"]),
        None,
        "TLS 1.2 refused"
    );

    // ciphersuites: only the one listed is offered on TLS 1.2.
    let (_p3, url) = start(
        dir,
        "    ciphersuites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
    );
    let tls12 = |cipher: &str| curl(dir, &url, &["--tls-max", "1.2", "--ciphers", cipher]);
    assert_eq!(tls12("ECDHE-ECDSA-AES128-GCM-SHA256"), Some(200));
    assert_eq!(tls12("ECDHE-ECDSA-AES256-GCM-SHA384"), None);
    assert_eq!(curl(dir, &url, &[]), Some(200), "TLS 1.3 unaffected");
}

#[test]
fn unusable_tls_settings_stop_disco() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pki(dir);
    let tls = |extra: &str| {
        format!(
            "http:\n  tls:\n    certificate: {d}/server.pem\n    key: {d}/server.key\n{extra}",
            d = dir.display()
        )
    };
    let err = refused_start(dir, &tls("    ciphersuites: [TLS_RSA_WITH_RC4_128_SHA]\n"));
    assert!(
        err.contains("TLS_RSA_WITH_RC4_128_SHA") && err.contains("not a cipher suite"),
        "{err}"
    );
    let err = refused_start(dir, &tls("    minimumtls: ssl3\n"));
    assert!(err.contains("minimumtls"), "{err}");
    let missing: PathBuf = dir.join("no-such-ca.pem");
    let err = refused_start(
        dir,
        &tls(&format!("    clientcas: [{}]\n", missing.display())),
    );
    assert!(err.contains("no-such-ca.pem"), "{err}");
}
