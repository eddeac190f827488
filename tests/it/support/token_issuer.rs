//! A small token service of the tests' own, as Docker's token
//! specification describes it, for disco's `auth.token`:
//!
//! - a test PKI made with the `openssl` command: a root CA, an intermediate
//!   CA, and signing keys (RSA, ECDSA P-256, Ed25519) with certificates;
//!   plus a rogue CA and key nobody trusts;
//! - `GET /token?service=&scope=...` with Basic credentials (or none, for
//!   anonymous tokens): grants, of the scopes asked for, what the policy
//!   allows the user, as a JWT signed with the chosen key;
//! - [`Pki::mint`] makes arbitrary tokens (expired, wrong audience, other
//!   algorithms, forged) for the negative tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::registry::free_port;

/// The service name disco is configured with.
pub const SERVICE: &str = "disco-test";
/// The issuer name.
pub const ISSUER: &str = "disco-test-issuer";

/// How a signing key is named in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef {
    /// `x5c`: the key's certificate and the intermediate.
    Chain,
    /// `kid`.
    Kid,
}

/// A signing key and how disco can find it.
#[derive(Clone)]
pub struct Signer {
    /// JWS algorithm.
    pub alg: Algorithm,
    key: Arc<EncodingKey>,
    /// `x5c` (base64 DER, leaf first).
    pub chain: Vec<String>,
    /// The `kid` disco trusts it under.
    pub kid: String,
    /// Naming used by default.
    pub key_ref: KeyRef,
}

/// The test PKI.
pub struct Pki {
    _dir: TempDir,
    /// PEM bundle disco trusts (`rootcertbundle`): the root CA and the
    /// Ed25519 key's self-signed certificate.
    pub bundle: PathBuf,
    /// JWK Set disco trusts (`jwks`): the EC key, kid `ec-key-1`.
    pub jwks: PathBuf,
    /// RS256, named by its x5c chain to the root CA.
    pub rsa: Signer,
    /// ES256, named by kid from the JWK Set.
    pub ec: Signer,
    /// EdDSA, named by kid = RFC 7638 thumbprint of a bundle certificate.
    pub ed: Signer,
    /// RS256 chained to a CA disco does not trust.
    pub rogue: Signer,
    /// The RSA key's public key in PEM (for the HS256 confusion attack).
    pub rsa_public_pem: Vec<u8>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn der_of(pem_path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem_path).unwrap();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(b64).unwrap()
}

/// Public key bytes (the BIT STRING content) of a certificate.
fn cert_public_key(der: &[u8]) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    c.public_key().subject_public_key.data.to_vec()
}

impl Pki {
    /// Makes the PKI in a temp dir.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("disco-it-pki-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
        let leaf_ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n";
        std::fs::write(d.join("ca.ext"), ca_ext).unwrap();
        std::fs::write(d.join("leaf.ext"), leaf_ext).unwrap();
        let ec_key = |name: &str| {
            openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    name,
                ],
            )
        };
        // Root and intermediate CAs; the rogue CA.
        for (ca, cn) in [("root", "disco test root"), ("rogue", "rogue root")] {
            ec_key(&format!("{ca}.key"));
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
                    "3",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        let sign = |key: &str, name: &str, ca: &str, ext: &str| {
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    key,
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
                    "2",
                    "-extfile",
                    ext,
                ],
            );
        };
        ec_key("inter.key");
        sign("inter.key", "inter", "root", "ca.ext");
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa.key",
            ],
        );
        sign("rsa.key", "rsa", "inter", "leaf.ext");
        ec_key("ec.key");
        sign("ec.key", "ec", "inter", "leaf.ext");
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "evil.key",
            ],
        );
        sign("evil.key", "evil", "rogue", "leaf.ext");
        openssl(d, &["genpkey", "-algorithm", "ED25519", "-out", "ed.key"]);
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ed.key",
                "-out",
                "ed.pem",
                "-days",
                "3",
                "-subj",
                "/CN=ed signer",
            ],
        );
        openssl(d, &["pkey", "-in", "rsa.key", "-pubout", "-out", "rsa.pub"]);

        let bundle = d.join("bundle.pem");
        let mut pem = std::fs::read(d.join("root.pem")).unwrap();
        pem.extend(std::fs::read(d.join("ed.pem")).unwrap());
        std::fs::write(&bundle, pem).unwrap();

        // JWK Set with the EC key.
        let point = cert_public_key(&der_of(&d.join("ec.pem")));
        assert_eq!(point.len(), 65);
        let jwks = d.join("jwks.json");
        std::fs::write(
            &jwks,
            json!({"keys": [{
                "kty": "EC", "crv": "P-256", "kid": "ec-key-1", "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }]})
            .to_string(),
        )
        .unwrap();

        // RFC 7638 thumbprint of the Ed25519 key.
        let ed_pub = cert_public_key(&der_of(&d.join("ed.pem")));
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(&ed_pub)
        );
        let ed_kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));

        let chain = |leaf: &str, inter: &str| {
            vec![
                STANDARD.encode(der_of(&d.join(leaf))),
                STANDARD.encode(der_of(&d.join(inter))),
            ]
        };
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let rsa = Signer {
            alg: Algorithm::RS256,
            key: Arc::new(EncodingKey::from_rsa_pem(&read("rsa.key")).unwrap()),
            chain: chain("rsa.pem", "inter.pem"),
            kid: String::new(),
            key_ref: KeyRef::Chain,
        };
        let ec = Signer {
            alg: Algorithm::ES256,
            key: Arc::new(EncodingKey::from_ec_pem(&read("ec.key")).unwrap()),
            chain: chain("ec.pem", "inter.pem"),
            kid: "ec-key-1".into(),
            key_ref: KeyRef::Kid,
        };
        let ed = Signer {
            alg: Algorithm::EdDSA,
            key: Arc::new(EncodingKey::from_ed_pem(&read("ed.key")).unwrap()),
            chain: vec![STANDARD.encode(der_of(&d.join("ed.pem")))],
            kid: ed_kid,
            key_ref: KeyRef::Kid,
        };
        let rogue = Signer {
            alg: Algorithm::RS256,
            key: Arc::new(EncodingKey::from_rsa_pem(&read("evil.key")).unwrap()),
            chain: vec![
                STANDARD.encode(der_of(&d.join("evil.pem"))),
                STANDARD.encode(der_of(&d.join("rogue.pem"))),
            ],
            kid: String::new(),
            key_ref: KeyRef::Chain,
        };
        Pki {
            rsa_public_pem: read("rsa.pub"),
            _dir: dir,
            bundle,
            jwks,
            rsa,
            ec,
            ed,
            rogue,
        }
    }

    /// The `auth.token` section for a disco trusting this PKI with the
    /// issuer at `realm`.
    pub fn disco_auth(&self, realm: &str) -> String {
        format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n    jwks: {}\n",
            self.bundle.display(),
            self.jwks.display()
        )
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The standard claims of a token for `access` (`[{type,name,actions}]`),
/// valid for five minutes.
pub fn claims(sub: &str, access: Value) -> Value {
    let t = now();
    json!({
        "iss": ISSUER, "sub": sub, "aud": SERVICE,
        "exp": t + 300, "nbf": t - 5, "iat": t,
        "jti": format!("{sub}-{t}-{}", rand_u64()),
        "access": access,
    })
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

impl Signer {
    /// Signs `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(claims, self.key_ref)
    }

    /// Signs `claims`, naming the key by `key_ref`.
    pub fn sign_as(&self, claims: &Value, key_ref: KeyRef) -> String {
        let mut h = Header::new(self.alg);
        match key_ref {
            KeyRef::Chain => h.x5c = Some(self.chain.clone()),
            KeyRef::Kid => h.kid = Some(self.kid.clone()),
        }
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }
}

/// `header.claims.signature` from raw parts (for hand-made tokens).
pub fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Who may do what: `(user, repository glob, actions)`; user `""` is
/// anonymous. A glob is a prefix ending in `*` or an exact name.
pub type Policy = Vec<(&'static str, &'static str, &'static [&'static str])>;

/// The running token service.
pub struct Issuer {
    /// `http://127.0.0.1:port/token`.
    pub realm: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct IssuerState {
    signer: Signer,
    users: Vec<(&'static str, &'static str)>,
    policy: Policy,
}

fn glob_matches(glob: &str, name: &str) -> bool {
    match glob.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => glob == name,
    }
}

impl IssuerState {
    fn user(&self, authorization: Option<&str>) -> Result<&'static str, ()> {
        let Some(a) = authorization else {
            return Ok("");
        };
        let b64 = a.strip_prefix("Basic ").ok_or(())?;
        let text = String::from_utf8(STANDARD.decode(b64).map_err(|_| ())?).map_err(|_| ())?;
        let (u, p) = text.split_once(':').ok_or(())?;
        self.users
            .iter()
            .find(|(user, pass)| *user == u && *pass == p)
            .map(|(user, _)| *user)
            .ok_or(())
    }

    fn grant(&self, user: &str, scope: &str) -> Option<Value> {
        let mut parts = scope.splitn(3, ':');
        let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| {
                self.policy.iter().any(|(u, g, allowed)| {
                    *u == user
                        && (kind == "repository" && glob_matches(g, name)
                            || kind == "registry" && *g == format!("registry:{name}"))
                        && (allowed.contains(a) || allowed.contains(&"*"))
                })
            })
            .collect();
        (!granted.is_empty()).then(|| json!({"type": kind, "name": name, "actions": granted}))
    }
}

impl Issuer {
    /// Starts the service on a free loopback port.
    pub fn start(
        signer: Signer,
        users: Vec<(&'static str, &'static str)>,
        policy: Policy,
    ) -> Issuer {
        use axum::extract::{RawQuery, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;

        let port = free_port();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(IssuerState {
            signer,
            users,
            policy,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        async fn token(
            State(s): State<Arc<IssuerState>>,
            headers: HeaderMap,
            RawQuery(q): RawQuery,
        ) -> axum::response::Response {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
            let Ok(user) = s.user(auth) else {
                return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
            };
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            if pairs.iter().any(|(k, v)| k == "service" && v != SERVICE) {
                return (StatusCode::BAD_REQUEST, "unknown service").into_response();
            }
            let access: Vec<Value> = pairs
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
                .filter_map(|scope| s.grant(user, &scope))
                .collect();
            let jwt = s.signer.sign(&claims(
                if user.is_empty() { "anonymous" } else { user },
                Value::Array(access),
            ));
            (
                [("content-type", "application/json")],
                json!({"token": jwt, "access_token": jwt, "expires_in": 300}).to_string(),
            )
                .into_response()
        }
        let app = axum::Router::new()
            .route("/token", axum::routing::get(token))
            .with_state(state);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Issuer {
            realm: format!("http://127.0.0.1:{port}/token"),
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}
