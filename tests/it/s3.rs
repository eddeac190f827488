//! S3 driver behaviour beyond the shared suite, against a real
//! S3-compatible server (moto): multipart uploads and resumed appends,
//! multipart copy, presigned URLs, big listings, errors and retries,
//! credentials.

use std::time::Duration;

use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use disco::storage::s3::{S3Config, S3Driver};
use disco::storage::testsuite::pattern;
use disco::storage::{StorageDriver, StorageError, WalkControl};
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::support::registry::free_port;
use crate::support::s3server::{FaultProxy, S3Server};

const MIB: usize = 1024 * 1024;

/// A driver over a fresh bucket of the shared server, with `tweak` applied
/// to the test configuration.
async fn driver_with(server: &S3Server, tweak: impl FnOnce(&mut S3Config)) -> (S3Driver, String) {
    let bucket = server.create_bucket().await;
    let mut cfg = server.config(&bucket);
    tweak(&mut cfg);
    let driver = S3Driver::connect(cfg).await.expect("connect");
    (driver, bucket)
}

async fn read_all(d: &S3Driver, path: &str, offset: u64) -> Vec<u8> {
    let chunks: Vec<Bytes> = d
        .reader(path, offset)
        .await
        .expect("reader")
        .try_collect()
        .await
        .expect("read");
    chunks.concat()
}

/// The number of parts a completed multipart object was made of, from its
/// ETag (`"<md5 of part md5s>-<parts>"`); `None` for a single-part object.
async fn part_count(server: &S3Server, bucket: &str, key: &str) -> Option<u32> {
    let head = server
        .client()
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("head");
    let etag = head.e_tag().expect("etag").trim_matches('"').to_string();
    etag.split_once('-')
        .map(|(_, n)| n.parse().expect("part count"))
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// A file of several 5 MiB parts streams through a multipart upload; closed
/// half way and reopened for append, it continues (the existing object is
/// carried over by server-side part copies) and reads back byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_resumes_after_close() {
    let server = S3Server::shared();
    let (d, bucket) = driver_with(&server, |_| {}).await;
    let data = pattern(23 * MIB + 12_345, 7);
    let split = 12 * MIB + 777;
    let path = "/docker/registry/v2/repositories/r/_uploads/u/data";

    let mut w = d.writer(path, false).await.unwrap();
    for c in data[..split].chunks(1_000_003) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    assert_eq!(w.size(), split as u64);
    w.close().await.unwrap();
    // Visible and complete after close.
    assert_eq!(d.stat(path).await.unwrap().size, split as u64);
    assert_eq!(sha256(&read_all(&d, path, 0).await), sha256(&data[..split]));
    let key = d.key_for(path).unwrap();
    assert_eq!(key, "docker/registry/v2/repositories/r/_uploads/u/data");
    // 12 MiB in 5 MiB parts: 5 + 5 + 2.
    assert_eq!(part_count(&server, &bucket, &key).await, Some(3));

    let mut w = d.writer(path, true).await.unwrap();
    assert_eq!(w.size(), split as u64);
    for c in data[split..].chunks(777_777) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    assert_eq!(w.size(), data.len() as u64);
    w.commit().await.unwrap();

    assert_eq!(d.stat(path).await.unwrap().size, data.len() as u64);
    assert_eq!(sha256(&read_all(&d, path, 0).await), sha256(&data));
    let off = 17 * MIB as u64 + 3;
    assert_eq!(
        sha256(&read_all(&d, path, off).await),
        sha256(&data[off as usize..])
    );
    // Carried over as two copied parts (5 MiB, then 7 MiB: a 2 MiB tail may
    // not be a middle part), then 5 + 5 + 1 MiB written.
    assert_eq!(part_count(&server, &bucket, &key).await, Some(5));
    // Nothing left in progress.
    let uploads = server
        .client()
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
}

/// Reopening for append and closing without writing leaves the object as
/// it was (no copy, no new upload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_without_writing_keeps_object() {
    let server = S3Server::shared();
    let (d, bucket) = driver_with(&server, |_| {}).await;
    let data = pattern(6 * MIB, 9);
    let mut w = d.writer("/f", false).await.unwrap();
    w.write(Bytes::from(data.clone())).await.unwrap();
    w.close().await.unwrap();
    let before = server
        .client()
        .head_object()
        .bucket(&bucket)
        .key("f")
        .send()
        .await
        .unwrap();
    let w = d.writer("/f", true).await.unwrap();
    assert_eq!(w.size(), data.len() as u64);
    w.close().await.unwrap();
    let after = server
        .client()
        .head_object()
        .bucket(&bucket)
        .key("f")
        .send()
        .await
        .unwrap();
    assert_eq!(before.e_tag(), after.e_tag());
    assert_eq!(read_all(&d, "/f", 0).await, data);
}

/// A writer dropped mid-upload leaves the previous content and no
/// multipart upload behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_writer_aborts_its_upload() {
    let server = S3Server::shared();
    let (d, bucket) = driver_with(&server, |_| {}).await;
    d.put_content("/f", Bytes::from_static(b"old"))
        .await
        .unwrap();
    let mut w = d.writer("/f", false).await.unwrap();
    w.write(Bytes::from(pattern(11 * MIB, 3))).await.unwrap();
    let uploads = server
        .client()
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1, "a part was uploaded");
    drop(w);
    // The abort runs in the background: wait for it (bounded).
    let mut left = usize::MAX;
    for _ in 0..200 {
        left = server
            .client()
            .list_multipart_uploads()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
            .uploads()
            .len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "multipart upload not aborted");
    assert_eq!(d.get_content("/f").await.unwrap(), &b"old"[..]);
}

/// Moves above `multipartcopythresholdsize` are multipart copies in
/// `multipartcopychunksize` parts; below it, one CopyObject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_uses_multipart_copy_above_threshold() {
    let server = S3Server::shared();
    let (d, bucket) = driver_with(&server, |c| {
        c.multipartcopythresholdsize = 8 * MIB as u64;
        c.multipartcopychunksize = 5 * MIB as u64;
        c.multipartcopymaxconcurrency = 2;
    })
    .await;
    let big = pattern(12 * MIB + 1, 11);
    d.put_content("/up/big", Bytes::from(big.clone()))
        .await
        .unwrap();
    assert_eq!(part_count(&server, &bucket, "up/big").await, None);
    d.rename("/up/big", "/blobs/big/data").await.unwrap();
    assert_eq!(read_all(&d, "/blobs/big/data", 0).await, big);
    // 12 MiB + 1 in 5 MiB copy parts: 5 + 5 + 2.
    assert_eq!(
        part_count(&server, &bucket, "blobs/big/data").await,
        Some(3)
    );
    assert!(d.stat("/up/big").await.unwrap_err().is_not_found());

    let small = pattern(8 * MIB, 12);
    d.put_content("/up/small", Bytes::from(small.clone()))
        .await
        .unwrap();
    d.rename("/up/small", "/blobs/small/data").await.unwrap();
    assert_eq!(read_all(&d, "/blobs/small/data", 0).await, small);
    assert_eq!(part_count(&server, &bucket, "blobs/small/data").await, None);
}

/// The redirect URL is a presigned GET: a plain HTTP client with no
/// credentials fetches the exact bytes, and it carries the configured
/// expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_url_fetches_exact_bytes() {
    let server = S3Server::shared();
    let (d, bucket) = driver_with(&server, |c| {
        c.redirectexpiry = Duration::from_secs(600);
        c.rootdirectory = "/reg".into();
    })
    .await;
    let data = pattern(3 * MIB + 5, 13);
    let path = "/docker/registry/v2/blobs/sha256/ab/abcd/data";
    d.put_content(path, Bytes::from(data.clone()))
        .await
        .unwrap();
    let url = d.redirect_url(path).await.unwrap().expect("a URL");
    assert!(
        url.starts_with(&format!(
            "{}/{bucket}/reg/docker/registry/v2/blobs/",
            server.endpoint()
        )),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=600"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), data.len());
    assert_eq!(sha256(&body), sha256(&data));
}

/// More than 1000 keys in one directory: listing paginates, walk sees all,
/// and delete removes them in batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_deleting_more_than_1000_keys() {
    let server = S3Server::shared();
    let (d, bucket) = driver_with(&server, |_| {}).await;
    let n = 1203;
    futures::stream::iter(0..n)
        .map(|i| {
            let d = d.clone();
            async move {
                d.put_content(&format!("/big/f{i:05}"), Bytes::from(i.to_string()))
                    .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    d.put_content("/big/sub/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    d.put_content("/bigger", Bytes::from_static(b"sibling"))
        .await
        .unwrap();

    let list = d.list("/big").await.unwrap();
    assert_eq!(list.len(), n + 1);
    assert_eq!(list[0], "/big/f00000");
    assert_eq!(list[n - 1], format!("/big/f{:05}", n - 1));
    assert_eq!(list[n], "/big/sub");

    let mut seen = 0;
    let mut sizes = 0u64;
    d.walk("/big", &mut |fi| {
        seen += 1;
        sizes += fi.size;
        WalkControl::Continue
    })
    .await
    .unwrap();
    assert_eq!(seen, n + 2); // files, "/big/sub" and "/big/sub/x"
    let expected: u64 = (0..n).map(|i| i.to_string().len() as u64).sum::<u64>() + 1;
    assert_eq!(sizes, expected);

    d.delete("/big").await.unwrap();
    assert!(d.stat("/big").await.unwrap_err().is_not_found());
    let left = server
        .client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["bigger"], "only the sibling remains");
}

/// Keys are the storage paths under `rootdirectory`, as Distribution lays
/// them out, and objects carry the configured encryption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_layout_and_encryption() {
    let server = S3Server::shared();
    let (d, bucket) = driver_with(&server, |c| {
        c.rootdirectory = "/registry/root".into();
        c.encrypt = true;
    })
    .await;
    d.put_content(
        "/docker/registry/v2/repositories/a/_layers/x/link",
        Bytes::from_static(b"l"),
    )
    .await
    .unwrap();
    let mut w = d.writer("/w", false).await.unwrap();
    w.write(Bytes::from(pattern(6 * MIB, 1))).await.unwrap();
    w.commit().await.unwrap();
    let client = server.client();
    for key in [
        "registry/root/docker/registry/v2/repositories/a/_layers/x/link",
        "registry/root/w",
    ] {
        let head = client.head_object().bucket(&bucket).key(key).send().await;
        let head = head.unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "{key}"
        );
        assert_eq!(head.content_type(), Some("application/octet-stream"));
    }
    assert_eq!(d.list("/").await.unwrap(), vec!["/docker", "/w"]);
}

/// A bucket that does not exist fails at connect with a message naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_a_clear_error() {
    let server = S3Server::shared();
    let err = S3Driver::connect(server.config("no-such-bucket-here"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"no-such-bucket-here\" does not exist"),
        "{msg}"
    );
}

/// Invalid configuration is refused before any request.
#[tokio::test]
async fn invalid_config_is_refused() {
    let err = S3Driver::new(S3Config {
        bucket: "b".into(),
        region: "us-east-1".into(),
        chunksize: 1024,
        ..S3Config::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("chunksize"), "{err}");
}

/// A server that is not there: every call fails with `Unavailable`, after
/// the configured attempts, instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_is_unavailable() {
    // A port nothing listens on.
    let port = free_port();
    let cfg = S3Config {
        accesskey: "a".into(),
        secretkey: "s".into(),
        regionendpoint: format!("http://127.0.0.1:{port}"),
        forcepathstyle: true,
        bucket: "b".into(),
        maxattempts: 2,
        ..S3Config::default()
    };
    // Guard against a hang only (not a performance bound).
    let outcome = tokio::time::timeout(Duration::from_secs(120), async {
        let err = S3Driver::connect(cfg.clone()).await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
        let d = S3Driver::new(cfg).await.unwrap();
        let err = d.stat("/x").await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
        let err = d.reader("/x", 0).await.map(|_| ()).unwrap_err();
        assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
        let err = d
            .put_content("/x", Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    })
    .await;
    assert!(outcome.is_ok(), "calls to a dead S3 endpoint hung");
}

/// The server dies under a live driver: a writer's next part fails, the
/// failure poisons the writer (close reports it) and reads are
/// `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_mid_upload() {
    let mut server = S3Server::start();
    let bucket = server.create_bucket().await;
    let mut cfg = server.config(&bucket);
    cfg.maxattempts = 2;
    let d = S3Driver::connect(cfg).await.unwrap();
    let mut w = d.writer("/up", false).await.unwrap();
    w.write(Bytes::from(pattern(5 * MIB, 1))).await.unwrap();
    server.kill();
    let err = w.write(Bytes::from(pattern(5 * MIB, 2))).await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert_eq!(w.size(), 0, "nothing from the failed writer counts");
    let err = w.close().await.unwrap_err();
    assert!(err.to_string().contains("failed write"), "{err}");
    let err = d.stat("/up").await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
}

/// Throttling and 5xx answers are retried with backoff: with every second
/// request failing, whole operations still succeed byte-exact; with one
/// attempt allowed they fail as `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_are_retried() {
    let server = S3Server::shared();
    let bucket = server.create_bucket().await;
    let proxy = FaultProxy::start(server.endpoint(), 2).await;
    let mut cfg = server.config(&bucket);
    cfg.regionendpoint = proxy.endpoint();
    cfg.maxattempts = 4;
    let d = S3Driver::connect(cfg.clone()).await.unwrap();
    let data = pattern(11 * MIB + 3, 5);
    let mut w = d.writer("/a/data", false).await.unwrap();
    for c in data.chunks(MIB) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.commit().await.unwrap();
    d.rename("/a/data", "/b/data").await.unwrap();
    assert_eq!(read_all(&d, "/b/data", 0).await, data);
    assert_eq!(d.list("/b").await.unwrap(), vec!["/b/data"]);
    assert!(
        proxy.injected() >= 5,
        "only {} faults injected",
        proxy.injected()
    );

    let all_fail = FaultProxy::start(server.endpoint(), 1).await;
    cfg.regionendpoint = all_fail.endpoint();
    cfg.maxattempts = 1;
    let d = S3Driver::new(cfg).await.unwrap();
    let err = d.stat("/b/data").await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert_eq!(all_fail.seen(), 1, "one attempt only");
}

/// A GET body that breaks off part way is resumed from the last byte
/// received: the reader still yields the exact bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_resumes_broken_bodies() {
    let server = S3Server::shared();
    let bucket = server.create_bucket().await;
    let data = pattern(4 * MIB + 99, 21);
    let direct = S3Driver::connect(server.config(&bucket)).await.unwrap();
    direct
        .put_content("/blob", Bytes::from(data.clone()))
        .await
        .unwrap();
    let proxy = FaultProxy::start_with(server.endpoint(), 0, 2).await;
    let mut cfg = server.config(&bucket);
    cfg.regionendpoint = proxy.endpoint();
    let d = S3Driver::connect(cfg).await.unwrap();
    let got = read_all(&d, "/blob", 0).await;
    assert_eq!(proxy.truncated(), 2, "two bodies cut short");
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));
    // From an offset too.
    let proxy = FaultProxy::start_with(server.endpoint(), 0, 1).await;
    let mut cfg = server.config(&bucket);
    cfg.regionendpoint = proxy.endpoint();
    let d = S3Driver::connect(cfg).await.unwrap();
    let got = read_all(&d, "/blob", 1_000_001).await;
    assert_eq!(proxy.truncated(), 1);
    assert_eq!(sha256(&got), sha256(&data[1_000_001..]));
}
