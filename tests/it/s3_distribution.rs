//! Interoperability with CNCF Distribution's own `s3` driver (Debian's
//! `docker-registry`): one `storage.s3` section configures both, and each
//! reads what the other wrote to the same bucket and root directory.

use bytes::Bytes;
use disco::storage::StorageDriver;
use disco::storage::s3::{S3Config, S3Driver};
use disco::storage::testsuite::pattern;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

use crate::support::registry::{Kind, Options, Registry};
use crate::support::s3server::{ACCESS_KEY, S3Server, SECRET_KEY};

const MIB: usize = 1024 * 1024;

/// The `storage.s3` keys both implementations are given.
fn s3_yaml(server: &S3Server, bucket: &str) -> String {
    format!(
        "accesskey: {ACCESS_KEY}\nsecretkey: {SECRET_KEY}\nregion: us-east-1\n\
         regionendpoint: {}\nforcepathstyle: true\nbucket: {bucket}\nencrypt: false\n\
         secure: false\nv4auth: true\nchunksize: 5242880\nmultipartcopychunksize: 5242880\n\
         multipartcopythresholdsize: 5242880\nmultipartcopymaxconcurrency: 4\n\
         rootdirectory: /shared/registry\n",
        server.endpoint()
    )
}

fn digest_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn indent(text: &str, spaces: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(spaces)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_and_disco_share_a_bucket() {
    let server = S3Server::shared();
    let bucket = server.create_bucket().await;
    let yaml = s3_yaml(&server, &bucket);
    let cfg: S3Config = yaml_serde::from_str(&yaml).expect("Distribution's keys parse");
    let d = S3Driver::connect(cfg).await.expect("connect");

    let storage = format!(
        "  s3:\n{}  delete:\n    enabled: true\n  redirect:\n    disable: true\n",
        indent(&yaml, 4)
    );
    let reg = tokio::task::spawn_blocking(move || {
        Registry::start_with(Options {
            storage: Some(storage),
            kind: Kind::Distribution,
            // aws-sdk-go refuses a custom CA bundle with Distribution's own
            // HTTP transport; the endpoint is plain HTTP anyway.
            env: vec![("AWS_CA_BUNDLE".into(), String::new())],
            ..Options::default()
        })
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();

    // Distribution stores a blob uploaded in two PATCH chunks (its writer
    // resumes a multipart upload between them)...
    let blob = pattern(11 * MIB + 5, 77);
    let hex = digest_hex(&blob);
    let resp = http
        .post(format!("{}/v2/theirs/blobs/uploads/", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", reg.log());
    let mut location = resp.headers()["location"].to_str().unwrap().to_string();
    let split = 6 * MIB + 1;
    for (start, chunk) in [(0, &blob[..split]), (split, &blob[split..])] {
        let url = if location.starts_with("http") {
            location.clone()
        } else {
            format!("{}{location}", reg.url())
        };
        let resp = http
            .patch(url)
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Range",
                format!("{start}-{}", start + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", reg.log());
        location = resp.headers()["location"].to_str().unwrap().to_string();
    }
    let url = if location.starts_with("http") {
        location.clone()
    } else {
        format!("{}{location}", reg.url())
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let resp = http
        .put(format!("{url}{sep}digest=sha256:{hex}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", reg.log());

    // ... which disco's driver finds at Distribution's path, byte-exact.
    let data_path = format!("/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]);
    assert_eq!(d.stat(&data_path).await.unwrap().size, blob.len() as u64);
    let read: Vec<Bytes> = d
        .reader(&data_path, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(digest_hex(&read.concat()), hex);
    let link = format!("/docker/registry/v2/repositories/theirs/_layers/sha256/{hex}/link");
    assert_eq!(
        d.get_content(&link).await.unwrap(),
        format!("sha256:{hex}").as_bytes()
    );

    // disco's driver writes a blob (multipart, resumed once) and its layer
    // link; Distribution serves it.
    let ours = pattern(13 * MIB + 9, 78);
    let ours_hex = digest_hex(&ours);
    let ours_path = format!(
        "/docker/registry/v2/blobs/sha256/{}/{ours_hex}/data",
        &ours_hex[..2]
    );
    let mut w = d.writer(&ours_path, false).await.unwrap();
    w.write(Bytes::copy_from_slice(&ours[..7 * MIB]))
        .await
        .unwrap();
    w.close().await.unwrap();
    let mut w = d.writer(&ours_path, true).await.unwrap();
    w.write(Bytes::copy_from_slice(&ours[7 * MIB..]))
        .await
        .unwrap();
    w.commit().await.unwrap();
    d.put_content(
        &format!("/docker/registry/v2/repositories/mine/_layers/sha256/{ours_hex}/link"),
        Bytes::from(format!("sha256:{ours_hex}")),
    )
    .await
    .unwrap();
    let resp = http
        .get(format!("{}/v2/mine/blobs/sha256:{ours_hex}", reg.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", reg.log());
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), ours.len());
    assert_eq!(digest_hex(&body), ours_hex);
    drop(reg);
}
