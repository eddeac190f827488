//! `auth.token` as CNCF Distribution verifies bearer tokens, against a token
//! service of the tests' own (`support::token_issuer`: a test PKI made with
//! openssl, tokens signed RS256 with an x5c chain, ES256 by JWK Set kid,
//! EdDSA by the thumbprint of a bundle certificate): challenges carry the
//! realm, service and scope; insufficient scope is Distribution's 401;
//! every forged, expired, misdirected or malformed token is a 401
//! `invalid_token`, never a server error; real clients (skopeo, podman,
//! ctr, ORAS) do the whole bearer flow.

use serde_json::{Value, json};

use crate::auth_support::{
    busybox, manifest_digest, offline_storage, oras, skopeo_pull, skopeo_push,
};
use crate::disco_support::assert_pulled_same;
use crate::support::clients::Clients;
use crate::support::oci_api::{Api, Resp};
use crate::support::registry::{Kind, Options, Registry};
use crate::support::token_issuer::{
    ISSUER, Issuer, KeyRef, Pki, Policy, SERVICE, Signer, claims, now, raw_token,
};

fn start(pki: &Pki, realm: &str, extra: &str) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_in(
        dir.path(),
        Options {
            storage: Some(offline_storage(dir.path())),
            extra: format!("{}{extra}", pki.disco_auth(realm)),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    );
    (reg, dir)
}

fn bearer(reg: &Registry, token: &str) -> Api {
    Api::authorized(&reg.url(), &format!("Bearer {token}"))
}

fn repo_access(name: &str, actions: &[&str]) -> Value {
    json!([{"type": "repository", "name": name, "actions": actions}])
}

#[track_caller]
fn challenge(r: &Resp, want: &str) {
    assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("www-authenticate"), Some(want));
    if !r.body.is_empty() {
        assert_eq!(r.json()["errors"][0]["code"], "UNAUTHORIZED");
    }
}

const POLICY_USERS: &[(&str, &str)] = &[("alice", "alice-pw")];

fn policy() -> Policy {
    vec![
        ("alice", "team/*", &["pull", "push"]),
        ("alice", "registry:catalog", &["*"]),
        ("", "public/*", &["pull"]),
    ]
}

#[test]
fn challenges_scopes_and_key_kinds() {
    let pki = Pki::new();
    let realm = "http://127.0.0.1:1/token";
    let (reg, _d) = start(&pki, realm, "");
    let anon = Api::new(&reg.url());
    let base = format!(r#"Bearer realm="{realm}",service="{SERVICE}""#);
    challenge(&anon.get("/v2/"), &base);
    challenge(
        &anon.manifest("team/app", "latest"),
        &format!(r#"{base},scope="repository:team/app:pull""#),
    );
    challenge(
        &anon.request("POST", "/v2/team/app/blobs/uploads/", &[], Vec::new()),
        &format!(r#"{base},scope="repository:team/app:pull,push""#),
    );
    challenge(
        &anon.get("/v2/_catalog"),
        &format!(r#"{base},scope="registry:catalog:*""#),
    );
    challenge(
        &anon.request("POST", "/disco/v1/gc", &[], Vec::new()),
        &format!(r#"{base},scope="registry:admin:*""#),
    );
    // Basic credentials are no token.
    challenge(&Api::basic(&reg.url(), "alice", "x").get("/v2/"), &base);

    // Every key kind signs valid tokens.
    let pull = claims("alice", repo_access("team/app", &["pull"]));
    for (signer, what) in [
        (&pki.rsa, "RS256 x5c"),
        (&pki.ec, "ES256 JWKS kid"),
        (&pki.ed, "EdDSA bundle kid"),
    ] {
        let api = bearer(&reg, &signer.sign(&pull));
        assert_eq!(api.get("/v2/").status, 200, "{what}");
        let r = api.manifest("team/app", "latest");
        assert_eq!(
            r.status,
            404,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    }
    // The RSA key is also trusted by kid through its chain's root? No: only
    // keys of bundle certificates and the JWK Set are trusted by kid.
    let by_kid = Signer {
        kid: "not-a-trusted-kid".into(),
        ..pki.rsa.clone()
    };
    challenge(
        &bearer(&reg, &by_kid.sign_as(&pull, KeyRef::Kid)).get("/v2/"),
        &format!(r#"{base},error="invalid_token""#),
    );

    // Insufficient scope: Distribution's 401 with the scope asked for.
    let api = bearer(&reg, &pki.rsa.sign(&pull));
    let r = api.request("POST", "/v2/team/app/blobs/uploads/", &[], Vec::new());
    challenge(
        &r,
        &format!(r#"{base},scope="repository:team/app:pull,push",error="insufficient_scope""#),
    );
    assert_eq!(
        r.json()["errors"][0]["detail"],
        json!([
            {"Type": "repository", "Name": "team/app", "Action": "pull"},
            {"Type": "repository", "Name": "team/app", "Action": "push"},
        ])
    );
    challenge(
        &api.manifest("team/other", "latest"),
        &format!(r#"{base},scope="repository:team/other:pull",error="insufficient_scope""#),
    );
    challenge(
        &api.get("/v2/_catalog"),
        &format!(r#"{base},scope="registry:catalog:*",error="insufficient_scope""#),
    );
    // `*` grants every action; the catalog needs its own scope.
    let all = bearer(
        &reg,
        &pki.rsa.sign(&claims(
            "alice",
            json!([
                {"type": "repository", "name": "team/app", "actions": ["*"]},
                {"type": "registry", "name": "catalog", "actions": ["*"]},
                {"type": "registry", "name": "admin", "actions": ["*"]},
            ]),
        )),
    );
    assert_eq!(
        all.request("POST", "/v2/team/app/blobs/uploads/", &[], Vec::new())
            .status,
        202
    );
    assert_eq!(all.get("/v2/_catalog").status, 200);
    assert_eq!(
        all.request("POST", "/disco/v1/gc", &[], Vec::new()).status,
        200
    );
    drop(reg);

    // autoredirect: the realm is the request's own host.
    let (reg, _d2) = start(&pki, realm, "    autoredirect: true\n");
    let r = Api::new(&reg.url()).get("/v2/");
    challenge(
        &r,
        &format!(
            r#"Bearer realm="http://{}/auth/token",service="{SERVICE}""#,
            reg.host()
        ),
    );
}

#[test]
fn forged_expired_and_malformed_tokens_get_401() {
    let pki = Pki::new();
    let (reg, _d) = start(&pki, "http://127.0.0.1:1/token", "");
    let access = repo_access("team/app", &["pull"]);
    let good = claims("alice", access.clone());
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let t = now();
    let rsa = &pki.rsa;
    let chain = rsa.chain.clone();
    let hs256_with_public_key = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.x5c = Some(chain.clone());
        jsonwebtoken::encode(
            &h,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(&pki.rsa_public_pem),
        )
        .unwrap()
    };
    let hs256_with_kid = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("ec-key-1".into());
        jsonwebtoken::encode(
            &h,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(b"ec-key-1"),
        )
        .unwrap()
    };
    // The rogue key signs, claiming the trusted chain.
    let rogue_claiming_trusted = Signer {
        chain: chain.clone(),
        ..pki.rogue.clone()
    }
    .sign(&good);
    // ES256 header over the RSA chain.
    let es256_over_rsa_chain = Signer {
        chain: chain.clone(),
        key_ref: KeyRef::Chain,
        ..pki.ec.clone()
    }
    .sign(&good);
    let tampered = {
        let tok = rsa.sign(&good);
        let parts: Vec<&str> = tok.split('.').collect();
        use base64::Engine as _;
        let more = claims("alice", repo_access("team/app", &["pull", "push"]));
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(more.to_string());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    let x5c_header = json!({"alg": "RS256", "typ": "JWT", "x5c": chain});
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            raw_token(&json!({"alg": "none", "typ": "JWT"}), &good, b""),
        ),
        (
            "alg none with x5c",
            raw_token(&json!({"alg": "none", "x5c": chain}), &good, b""),
        ),
        ("HS256 keyed with the RSA public key", hs256_with_public_key),
        ("HS256 naming a JWKS kid", hs256_with_kid),
        ("expired", rsa.sign(&with("exp", json!(t - 3600)))),
        ("not yet valid", rsa.sign(&with("nbf", json!(t + 3600)))),
        (
            "wrong audience",
            rsa.sign(&with("aud", json!("another-registry"))),
        ),
        (
            "audience list without us",
            rsa.sign(&with("aud", json!(["a", "b"]))),
        ),
        (
            "wrong issuer",
            rsa.sign(&with("iss", json!("someone-else"))),
        ),
        ("no exp", rsa.sign(&without("exp"))),
        ("no aud", rsa.sign(&without("aud"))),
        ("no iss", rsa.sign(&without("iss"))),
        (
            "exp not a number",
            rsa.sign(&with("exp", json!("tomorrow"))),
        ),
        ("untrusted CA", pki.rogue.sign(&good)),
        ("rogue key claiming a trusted chain", rogue_claiming_trusted),
        ("ES256 header over an RSA chain", es256_over_rsa_chain),
        (
            "unknown kid",
            Signer {
                kid: "who".into(),
                ..pki.ec.clone()
            }
            .sign(&good),
        ),
        ("tampered claims", tampered),
        (
            "signature cut",
            rsa.sign(&good).rsplit_once('.').unwrap().0.to_string() + ".",
        ),
        (
            "no key named",
            raw_token(&json!({"alg": "RS256"}), &good, b"sig"),
        ),
        (
            "x5c not base64",
            raw_token(&json!({"alg": "RS256", "x5c": ["!!!"]}), &good, b"sig"),
        ),
        (
            "x5c garbage DER",
            raw_token(&json!({"alg": "RS256", "x5c": ["AAAA"]}), &good, b"sig"),
        ),
        (
            "x5c of 20 certificates",
            raw_token(
                &json!({"alg": "RS256", "x5c": vec![chain[0].clone(); 20]}),
                &good,
                b"sig",
            ),
        ),
        ("header not JSON", format!("bm90IGpzb24.{}.c2ln", "e30")),
        (
            "claims not JSON",
            raw_token(&x5c_header, &json!("x"), b"sig").replace(".Ingi.", ".bm90IGpzb24."),
        ),
        ("two parts", "abc.def".into()),
        ("four parts", "a.b.c.d".into()),
        ("garbage", "!!!!".into()),
        ("empty", "".into()),
        (
            "oversized",
            format!("{}.{}.{}", "A".repeat(10_000), "B".repeat(10_000), "C"),
        ),
    ];
    let want = r#"error="invalid_token""#;
    for (what, token) in &cases {
        let r = bearer(&reg, token).manifest("team/app", "latest");
        assert_eq!(
            r.status,
            401,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let h = r.header("www-authenticate").unwrap_or_default();
        if !token.is_empty() {
            assert!(h.contains(want), "{what}: {h}");
        }
        assert_eq!(r.json()["errors"][0]["code"], "UNAUTHORIZED", "{what}");
    }
    // A 40 KB Authorization header: refused, not a crash.
    let r = bearer(&reg, &"x".repeat(40_000)).get("/v2/");
    assert!(matches!(r.status, 401 | 431), "{}", r.status);
    // Still serving, and the good token works (expired within the leeway too).
    assert_eq!(
        bearer(&reg, &rsa.sign(&good))
            .manifest("team/app", "latest")
            .status,
        404
    );
    let in_leeway = rsa.sign(&with("exp", json!(t - 30)));
    assert_eq!(
        bearer(&reg, &in_leeway).get("/v2/").status,
        200,
        "60 s leeway"
    );
    assert!(!reg.log().contains("panicked"), "{}", reg.log());
    let _ = ISSUER;
}

#[test]
fn real_clients_do_the_bearer_flow() {
    let pki = Pki::new();
    let issuer = Issuer::start(pki.rsa.clone(), POLICY_USERS.to_vec(), policy());
    let (reg, dir) = start(&pki, &issuer.realm, "");
    let host = reg.host();
    let clients = Clients::new(std::slice::from_ref(&host));
    let layout = busybox();
    skopeo_push(&clients, &layout, &host, "team/app", None).failed();
    skopeo_push(&clients, &layout, &host, "team/app", Some("alice:wrong")).failed();
    skopeo_push(
        &clients,
        &layout,
        &host,
        "elsewhere/app",
        Some("alice:alice-pw"),
    )
    .failed();
    skopeo_push(&clients, &layout, &host, "team/app", Some("alice:alice-pw")).ok();
    let (run, out) = skopeo_pull(
        &clients,
        &host,
        "team/app",
        Some("alice:alice-pw"),
        "skopeo",
    );
    run.ok();
    assert_pulled_same(&out, &layout);
    skopeo_pull(&clients, &host, "team/app", None, "anon")
        .0
        .failed();
    // Anonymous tokens for what the policy gives anyone.
    skopeo_push(&clients, &layout, &host, "public/app", None).failed();

    let reference = format!("{host}/team/app:latest");
    clients
        .podman_result(&[
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "wrong",
            &host,
        ])
        .failed();
    clients.podman(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "alice-pw",
        &host,
    ]);
    assert!(!clients.podman_pull(&reference, &[]).is_empty());

    let ctrd = clients.start_containerd();
    ctrd.pull_result(&reference, &[]).failed();
    ctrd.pull(&reference, &["--user", "alice:alice-pw"]);
    let config = &layout.image().config.digest;
    assert_eq!(ctrd.content_digest(config).0, *config);

    let artifact = dir.path().join("artifact.txt");
    std::fs::write(&artifact, b"bearer artifact\n").unwrap();
    let a = artifact.display().to_string();
    let target = format!("{host}/team/notes:v1");
    let (ok, out) = oras(&["push", "token", &host, "alice", "wrong", &target, &a]);
    assert!(!ok, "wrong password: {out}");
    let (ok, out) = oras(&["push", "token", &host, "alice", "alice-pw", &target, &a]);
    assert!(ok, "ORAS push: {out}");
    let pulled = dir.path().join("oras-out");
    let p = pulled.display().to_string();
    let (ok, out) = oras(&["pull", "token", &host, "alice", "alice-pw", &target, &p]);
    assert!(ok, "ORAS pull: {out}");
    assert_eq!(
        std::fs::read(pulled.join("artifact.txt")).unwrap(),
        b"bearer artifact\n"
    );
    let digest = manifest_digest(&layout);
    let tok = pki
        .rsa
        .sign(&claims("alice", repo_access("team/app", &["pull"])));
    assert_eq!(
        bearer(&reg, &tok)
            .manifest_head("team/app", "latest")
            .header("docker-content-digest"),
        Some(digest.as_str())
    );
}
