//! S3 credentials against a moto server with authentication on (an IAM
//! user allowed `s3:*`): the right keys work from the configuration and
//! from the standard AWS environment variables; wrong ones fail at connect
//! with a message that says the credentials were rejected.

use std::process::Command;

use bytes::Bytes;
use disco::storage::StorageDriver;
use disco::storage::s3::{S3Config, S3Driver};

use crate::support::s3server::S3Server;

/// Environment telling [`env_credentials_child`] where to write.
const CHILD_ENDPOINT: &str = "DISCO_S3_CHILD_ENDPOINT";
const CHILD_BUCKET: &str = "DISCO_S3_CHILD_BUCKET";

fn config(server: &S3Server, bucket: &str, access: &str, secret: &str) -> S3Config {
    S3Config {
        accesskey: access.into(),
        secretkey: secret.into(),
        ..server.config(bucket)
    }
}

/// Runs [`env_credentials_child`] in a child test process whose only
/// credentials are `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (or none).
fn run_child(server: &S3Server, bucket: &str, keys: Option<(&str, &str)>) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    match keys {
        Some((access, secret)) => cmd
            .env("AWS_ACCESS_KEY_ID", access)
            .env("AWS_SECRET_ACCESS_KEY", secret),
        None => cmd
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY"),
    };
    let out = cmd
        .args([
            "s3_auth::env_credentials_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        // No profile files from the user's home; no instance metadata.
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(CHILD_ENDPOINT, server.endpoint())
        .env(CHILD_BUCKET, bucket)
        .output()
        .expect("run child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked() {
    let server = S3Server::start();
    let bucket = server.create_bucket().await;
    let (access, secret) = server.enable_auth_with_user().await;

    // The IAM user's keys from the configuration.
    let d = S3Driver::connect(config(&server, &bucket, &access, &secret))
        .await
        .expect("valid keys connect");
    d.put_content("/ok", Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(d.get_content("/ok").await.unwrap(), &b"ok"[..]);

    // A wrong secret: rejected at connect, saying so.
    let err = S3Driver::connect(config(&server, &bucket, &access, "wrong-secret"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("rejected the credentials") && msg.contains("SignatureDoesNotMatch"),
        "{msg}"
    );
    // An unknown key id.
    let err = S3Driver::connect(config(&server, &bucket, "AKIANOSUCHKEY0000000", &secret))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("rejected the credentials") && msg.contains("InvalidAccessKeyId"),
        "{msg}"
    );

    // The same keys from the environment (no keys in the configuration).
    let (ok, log) = run_child(&server, &bucket, Some((&access, &secret)));
    assert!(
        ok,
        "child with valid environment credentials failed:\n{log}"
    );
    assert_eq!(
        d.get_content("/from-env").await.unwrap(),
        &b"written with environment credentials"[..]
    );
    let (ok, log) = run_child(&server, &bucket, Some((&access, "wrong-secret")));
    assert!(
        !ok,
        "child with a wrong environment secret succeeded:\n{log}"
    );
    assert!(log.contains("SignatureDoesNotMatch"), "{log}");
    // No credentials anywhere: a clear failure, not a hang.
    let (ok, log) = run_child(&server, &bucket, None);
    assert!(!ok, "child without credentials succeeded:\n{log}");
    assert!(log.contains("no S3 credentials"), "{log}");
}

/// Helper run by [`credentials_are_checked`] in a child process (ignored
/// in normal runs; without its environment it has nothing to do).
#[tokio::test]
#[ignore = "run by credentials_are_checked in a child process"]
async fn env_credentials_child() {
    let (Ok(endpoint), Ok(bucket)) = (std::env::var(CHILD_ENDPOINT), std::env::var(CHILD_BUCKET))
    else {
        eprintln!("not started by credentials_are_checked: nothing to do");
        return;
    };
    let cfg = S3Config {
        region: "us-east-1".into(),
        regionendpoint: endpoint,
        forcepathstyle: true,
        bucket,
        maxattempts: 1,
        ..S3Config::default()
    };
    let d = match S3Driver::connect(cfg).await {
        Ok(d) => d,
        Err(e) => panic!("connect with environment credentials: {e}"),
    };
    d.put_content(
        "/from-env",
        Bytes::from_static(b"written with environment credentials"),
    )
    .await
    .expect("put with environment credentials");
}
