//! The shared storage-driver test suite. Every driver instantiates it with
//! [`storage_driver_suite!`](crate::storage_driver_suite), passing an async
//! expression that yields a fresh, empty [`Fixture`]:
//!
//! ```ignore
//! async fn fixture() -> Fixture { Fixture::new(InMemoryDriver::new(), ()) }
//! disco::storage_driver_suite!(fixture());
//! ```
//!
//! Each case is its own `#[tokio::test]` so failures name the case.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

use super::{Driver, StorageDriver, StorageError, WalkControl};

/// A driver under test plus whatever must live as long as it (temp dirs,
/// servers).
pub struct Fixture {
    /// The driver, over an empty store.
    pub driver: Driver,
    _guard: Box<dyn Any + Send>,
}

impl Fixture {
    /// Wraps a driver and a guard dropped after the test.
    pub fn new(driver: impl StorageDriver, guard: impl Any + Send) -> Self {
        Self {
            driver: Arc::new(driver),
            _guard: Box::new(guard),
        }
    }

    /// Wraps an already shared driver.
    pub fn from_arc(driver: Driver, guard: impl Any + Send) -> Self {
        Self {
            driver,
            _guard: Box::new(guard),
        }
    }
}

/// Size of the large-stream case in MiB (`DISCO_SUITE_LARGE_MB`, default 32).
fn large_size() -> usize {
    std::env::var("DISCO_SUITE_LARGE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
        * 1024
        * 1024
}

/// Deterministic pseudo-random bytes (xorshift), so content is not
/// compressible or accidentally aligned.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn read_all(d: &Driver, path: &str, offset: u64) -> Vec<u8> {
    let s = d.reader(path, offset).await.expect("reader");
    let chunks: Vec<Bytes> = s.try_collect().await.expect("read stream");
    chunks.concat()
}

async fn sorted_list(d: &Driver, path: &str) -> Vec<String> {
    let mut v = d.list(path).await.expect("list");
    v.sort();
    v
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StorageError>, what: &str) {
    match r {
        Err(StorageError::PathNotFound(_)) => {}
        other => panic!("{what}: expected PathNotFound, got {other:?}"),
    }
}

/// put_content then get_content returns the same bytes; overwrite replaces.
pub async fn put_get_content(d: Driver) {
    let data = Bytes::from(pattern(4096, 1));
    d.put_content("/a/b/c", data.clone()).await.unwrap();
    assert_eq!(d.get_content("/a/b/c").await.unwrap(), data);
    let shorter = Bytes::from_static(b"short");
    d.put_content("/a/b/c", shorter.clone()).await.unwrap();
    assert_eq!(d.get_content("/a/b/c").await.unwrap(), shorter);
}

/// Empty files exist and have size 0.
pub async fn empty_file(d: Driver) {
    d.put_content("/empty", Bytes::new()).await.unwrap();
    assert_eq!(d.get_content("/empty").await.unwrap().len(), 0);
    let st = d.stat("/empty").await.unwrap();
    assert_eq!((st.size, st.is_dir), (0, false));
    assert_eq!(read_all(&d, "/empty", 0).await.len(), 0);
    let w = d.writer("/empty-w", false).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(d.stat("/empty-w").await.unwrap().size, 0);
}

/// Every byte value survives.
pub async fn binary_content(d: Driver) {
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    d.put_content("/bin", Bytes::from(data.clone()))
        .await
        .unwrap();
    assert_eq!(d.get_content("/bin").await.unwrap(), data);
}

/// Unicode and punctuation allowed in names round-trip and list.
pub async fn unicode_names(d: Driver) {
    let p = "/ünïcødé/名前/file-name_1.2@x+y=z";
    d.put_content(p, Bytes::from_static(b"u")).await.unwrap();
    assert_eq!(d.get_content(p).await.unwrap(), &b"u"[..]);
    assert_eq!(
        sorted_list(&d, "/ünïcødé").await,
        vec!["/ünïcødé/名前".to_string()]
    );
}

/// Deep paths are created with all parents.
pub async fn deep_paths(d: Driver) {
    let mut p = String::new();
    for i in 0..40 {
        p.push_str(&format!("/d{i}"));
    }
    p.push_str("/leaf");
    d.put_content(&p, Bytes::from_static(b"deep"))
        .await
        .unwrap();
    assert_eq!(d.get_content(&p).await.unwrap(), &b"deep"[..]);
    assert!(d.stat("/d0/d1/d2").await.unwrap().is_dir);
}

/// Missing paths give a typed not-found from every read operation.
pub async fn missing_paths(d: Driver) {
    assert_not_found(d.get_content("/nope").await, "get_content");
    assert_not_found(d.reader("/nope", 0).await.map(|_| ()), "reader");
    assert_not_found(d.stat("/nope").await, "stat");
    assert_not_found(d.list("/nope").await, "list");
    assert_not_found(d.delete("/nope").await, "delete");
    assert_not_found(d.rename("/nope", "/other").await, "rename");
    d.put_content("/dir/file", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_not_found(
        d.get_content("/dir/missing").await,
        "get_content in existing dir",
    );
    assert_not_found(d.stat("/dir/file2").await, "stat sibling");
    // The directory itself is not readable content.
    assert!(d.get_content("/dir").await.is_err());
}

/// Invalid paths are rejected before touching the backend.
pub async fn invalid_paths(d: Driver) {
    for p in [
        "",
        "relative",
        "/a/../b",
        "/a//b",
        "/a/",
        "/a\\b",
        "/a\0b",
        "/%2e%2e/x",
        "/a b",
    ] {
        match d.put_content(p, Bytes::from_static(b"x")).await {
            Err(StorageError::InvalidPath(_)) => {}
            other => panic!("put_content({p:?}): expected InvalidPath, got {other:?}"),
        }
        assert!(
            matches!(d.get_content(p).await, Err(StorageError::InvalidPath(_))),
            "{p:?}"
        );
    }
}

/// Reads from offsets: start, middle, end (empty), past the end (error).
pub async fn reader_offsets(d: Driver) {
    let data = pattern(300_000, 2);
    d.put_content("/r", Bytes::from(data.clone()))
        .await
        .unwrap();
    assert_eq!(read_all(&d, "/r", 0).await, data);
    assert_eq!(read_all(&d, "/r", 12345).await, &data[12345..]);
    assert_eq!(read_all(&d, "/r", 262144).await, &data[262144..]);
    assert!(read_all(&d, "/r", data.len() as u64).await.is_empty());
    match d.reader("/r", data.len() as u64 + 1).await {
        Err(StorageError::InvalidOffset { .. }) => {}
        other => panic!("expected InvalidOffset, got {:?}", other.map(|_| ())),
    }
}

/// A writer in several chunks, committed, reads back whole.
pub async fn writer_commit(d: Driver) {
    let data = pattern(1_000_000, 3);
    let mut w = d.writer("/w/data", false).await.unwrap();
    for chunk in data.chunks(77_777) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(w.size(), data.len() as u64);
    w.commit().await.unwrap();
    assert_eq!(d.stat("/w/data").await.unwrap().size, data.len() as u64);
    assert_eq!(read_all(&d, "/w/data", 0).await, data);
}

/// close, then reopen with append, continues the file (resumable uploads).
pub async fn writer_append(d: Driver) {
    let data = pattern(700_000, 4);
    let (a, b) = data.split_at(300_001);
    let mut w = d.writer("/up/data", false).await.unwrap();
    w.write(Bytes::copy_from_slice(a)).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(d.stat("/up/data").await.unwrap().size, a.len() as u64);
    let mut w = d.writer("/up/data", true).await.unwrap();
    assert_eq!(w.size(), a.len() as u64);
    w.write(Bytes::copy_from_slice(b)).await.unwrap();
    assert_eq!(w.size(), data.len() as u64);
    w.commit().await.unwrap();
    assert_eq!(read_all(&d, "/up/data", 0).await, data);
    // Append to a missing file starts an empty one.
    let mut w = d.writer("/up/new", true).await.unwrap();
    assert_eq!(w.size(), 0);
    w.write(Bytes::from_static(b"abc")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(d.get_content("/up/new").await.unwrap(), &b"abc"[..]);
    // A non-append writer truncates.
    let mut w = d.writer("/up/data", false).await.unwrap();
    assert_eq!(w.size(), 0);
    w.write(Bytes::from_static(b"xy")).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(d.get_content("/up/data").await.unwrap(), &b"xy"[..]);
}

/// cancel discards the file.
pub async fn writer_cancel(d: Driver) {
    let mut w = d.writer("/c/data", false).await.unwrap();
    w.write(Bytes::from_static(b"discard me")).await.unwrap();
    w.close().await.unwrap();
    let mut w = d.writer("/c/data", true).await.unwrap();
    w.write(Bytes::from_static(b" and me")).await.unwrap();
    w.cancel().await.unwrap();
    assert_not_found(d.get_content("/c/data").await, "after cancel");
}

/// A stream larger than any buffer, written in uneven chunks, reads back
/// with the same digest, also from an offset.
pub async fn large_stream(d: Driver) {
    let size = large_size();
    let mut w = d.writer("/large/data", false).await.unwrap();
    let mut full = Sha256::new();
    let mut tail = Sha256::new();
    let offset = (size / 3 + 17) as u64;
    let mut written = 0u64;
    let mut seed = 10;
    while (written as usize) < size {
        let n = (1_000_003usize).min(size - written as usize);
        let chunk = pattern(n, seed);
        seed += 1;
        full.update(&chunk);
        let start = offset.saturating_sub(written).min(n as u64) as usize;
        tail.update(&chunk[start..]);
        w.write(Bytes::from(chunk)).await.unwrap();
        written += n as u64;
    }
    w.commit().await.unwrap();
    assert_eq!(d.stat("/large/data").await.unwrap().size, size as u64);
    for (off, want) in [(0, full.finalize()), (offset, tail.finalize())] {
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut s = d.reader("/large/data", off).await.unwrap();
        while let Some(chunk) = s.try_next().await.unwrap() {
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        assert_eq!(n, size as u64 - off);
        assert_eq!(h.finalize(), want, "digest from offset {off}");
    }
}

/// stat of files and directories.
pub async fn stat_kinds(d: Driver) {
    d.put_content("/s/dir/f", Bytes::from_static(b"12345"))
        .await
        .unwrap();
    let f = d.stat("/s/dir/f").await.unwrap();
    assert_eq!((f.size, f.is_dir, f.path.as_str()), (5, false, "/s/dir/f"));
    let dir = d.stat("/s/dir").await.unwrap();
    assert!(dir.is_dir);
    assert!(d.stat("/").await.unwrap().is_dir);
}

/// list gives full paths of direct children only.
pub async fn list_children(d: Driver) {
    for p in ["/l/a", "/l/b/x", "/l/b/y", "/l/c/d/e", "/la"] {
        d.put_content(p, Bytes::from_static(b"1")).await.unwrap();
    }
    assert_eq!(sorted_list(&d, "/l").await, vec!["/l/a", "/l/b", "/l/c"]);
    assert_eq!(sorted_list(&d, "/l/b").await, vec!["/l/b/x", "/l/b/y"]);
    let root = sorted_list(&d, "/").await;
    assert!(
        root.contains(&"/l".to_string()) && root.contains(&"/la".to_string()),
        "{root:?}"
    );
}

/// Many entries in one directory are all listed.
pub async fn list_many(d: Driver) {
    let n = 300;
    for i in 0..n {
        d.put_content(&format!("/many/f{i:04}"), Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    let list = sorted_list(&d, "/many").await;
    assert_eq!(list.len(), n);
    assert_eq!(list[0], "/many/f0000");
    assert_eq!(list[n - 1], format!("/many/f{:04}", n - 1));
    assert_eq!(d.get_content("/many/f0123").await.unwrap(), &b"123"[..]);
}

/// rename of a file, onto an existing file, and of a directory.
pub async fn rename_paths(d: Driver) {
    d.put_content("/m/src", Bytes::from_static(b"one"))
        .await
        .unwrap();
    d.rename("/m/src", "/m/new/deep/dst").await.unwrap();
    assert_not_found(d.get_content("/m/src").await, "source after rename");
    assert_eq!(d.get_content("/m/new/deep/dst").await.unwrap(), &b"one"[..]);

    d.put_content("/m/a", Bytes::from_static(b"a"))
        .await
        .unwrap();
    d.put_content("/m/b", Bytes::from_static(b"b"))
        .await
        .unwrap();
    d.rename("/m/a", "/m/b").await.unwrap();
    assert_eq!(d.get_content("/m/b").await.unwrap(), &b"a"[..]);
    assert_not_found(d.get_content("/m/a").await, "overwritten source");

    d.put_content("/m/dir/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    d.put_content("/m/dir/sub/y", Bytes::from_static(b"y"))
        .await
        .unwrap();
    d.rename("/m/dir", "/m/moved").await.unwrap();
    assert_eq!(d.get_content("/m/moved/x").await.unwrap(), &b"x"[..]);
    assert_eq!(d.get_content("/m/moved/sub/y").await.unwrap(), &b"y"[..]);
    assert_not_found(d.stat("/m/dir").await, "moved dir");
}

/// A large file moves intact (the upload → blob commit path).
pub async fn rename_large(d: Driver) {
    let data = pattern(3 * 1024 * 1024 + 5, 20);
    let mut w = d.writer("/_uploads/u1/data", false).await.unwrap();
    for c in data.chunks(500_000) {
        w.write(Bytes::copy_from_slice(c)).await.unwrap();
    }
    w.commit().await.unwrap();
    d.rename("/_uploads/u1/data", "/blobs/sha256/ab/abcd/data")
        .await
        .unwrap();
    assert_eq!(read_all(&d, "/blobs/sha256/ab/abcd/data", 0).await, data);
    assert_eq!(
        read_all(&d, "/blobs/sha256/ab/abcd/data", 1_000_000).await,
        &data[1_000_000..]
    );
    assert_not_found(d.stat("/_uploads/u1/data").await, "upload after move");
}

/// delete of a file, and of a directory with everything under it.
pub async fn delete_paths(d: Driver) {
    for p in ["/x/keep", "/x/del/a", "/x/del/b/c", "/x/delfile"] {
        d.put_content(p, Bytes::from_static(b"1")).await.unwrap();
    }
    d.delete("/x/delfile").await.unwrap();
    assert_not_found(d.get_content("/x/delfile").await, "deleted file");
    d.delete("/x/del").await.unwrap();
    assert_not_found(d.stat("/x/del").await, "deleted dir");
    assert_not_found(d.get_content("/x/del/b/c").await, "file under deleted dir");
    assert_eq!(d.get_content("/x/keep").await.unwrap(), &b"1"[..]);
    assert_eq!(sorted_list(&d, "/x").await, vec!["/x/keep"]);
}

/// Concurrent writers to different paths all land intact.
pub async fn concurrent_writers(d: Driver) {
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let data = pattern(200_000 + i as usize, 100 + i);
            let mut w = d.writer(&format!("/cw/{i}/data"), false).await.unwrap();
            for c in data.chunks(33_333) {
                w.write(Bytes::copy_from_slice(c)).await.unwrap();
                tokio::task::yield_now().await;
            }
            w.commit().await.unwrap();
            d.put_content(&format!("/cw/{i}/link"), Bytes::from(i.to_string()))
                .await
                .unwrap();
            data
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let data = t.await.unwrap();
        assert_eq!(read_all(&d, &format!("/cw/{i}/data"), 0).await, data);
        assert_eq!(
            d.get_content(&format!("/cw/{i}/link")).await.unwrap(),
            i.to_string().as_bytes()
        );
    }
}

/// Concurrent whole-file writes to one path: the result is one of them,
/// never a mix.
pub async fn concurrent_put_same_path(d: Driver) {
    let versions: Vec<Vec<u8>> = (0..8).map(|i| pattern(100_000, 200 + i)).collect();
    let mut tasks = Vec::new();
    for v in versions.clone() {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            d.put_content("/same", Bytes::from(v)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = d.get_content("/same").await.unwrap();
    assert!(
        versions.iter().any(|v| v[..] == got[..]),
        "content is a mix of writes"
    );
}

/// walk visits everything in lexical order and honours SkipDir and Stop.
pub async fn walk_tree(d: Driver) {
    for p in ["/t/a/1", "/t/a/2", "/t/b/skip/3", "/t/c"] {
        d.put_content(p, Bytes::from_static(b"1")).await.unwrap();
    }
    let mut seen = Vec::new();
    d.walk("/t", &mut |fi| {
        seen.push(fi.path.clone());
        if fi.path == "/t/b/skip" {
            WalkControl::SkipDir
        } else {
            WalkControl::Continue
        }
    })
    .await
    .unwrap();
    assert_eq!(
        seen,
        vec!["/t/a", "/t/a/1", "/t/a/2", "/t/b", "/t/b/skip", "/t/c"]
    );
    let mut n = 0;
    d.walk("/t", &mut |_| {
        n += 1;
        if n == 2 {
            WalkControl::Stop
        } else {
            WalkControl::Continue
        }
    })
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert_not_found(
        d.walk("/nowhere", &mut |_| WalkControl::Continue).await,
        "walk missing",
    );
}

/// redirect_url never fails for an existing path.
pub async fn redirect_url(d: Driver) {
    d.put_content("/redir", Bytes::from_static(b"r"))
        .await
        .unwrap();
    d.redirect_url("/redir").await.unwrap();
}

/// Instantiates every case of the shared suite as a `#[tokio::test]`.
/// `$fixture` is an async expression evaluating to a fresh [`Fixture`].
#[macro_export]
macro_rules! storage_driver_suite {
    ($fixture:expr) => {
        $crate::storage_driver_suite!(@cases $fixture;
            put_get_content, empty_file, binary_content, unicode_names, deep_paths,
            missing_paths, invalid_paths, reader_offsets, writer_commit, writer_append,
            writer_cancel, large_stream, stat_kinds, list_children, list_many,
            rename_paths, rename_large, delete_paths, concurrent_writers,
            concurrent_put_same_path, walk_tree, redirect_url);
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: $crate::storage::testsuite::Fixture = $fixture.await;
                $crate::storage::testsuite::$case(fixture.driver.clone()).await;
                drop(fixture);
            }
        )*
    };
}
