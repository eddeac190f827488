//! The Kubo RPC client against a real js-ipfs daemon: canonical CIDs equal
//! the known vectors, MFS operations, blocks, pins, typed errors, and
//! timeouts.

use std::time::Duration;

use bytes::Bytes;
use disco::ipfs::kubo::{KuboClient, KuboConfig};
use disco::ipfs::{Cid, EntryKind, Ipfs, IpfsError, WriteOptions, block};
use disco::storage::ByteStream;
use futures::{StreamExt, TryStreamExt, stream};
use sha2::{Digest, Sha256};

use crate::support::jsipfs;

fn client(api: &str) -> KuboClient {
    let cfg = KuboConfig {
        networktimeout: Duration::from_secs(2),
        ..KuboConfig::with_nodes([api])
    };
    KuboClient::new(api, &cfg).unwrap()
}

fn bytes_stream(data: Vec<u8>) -> ByteStream {
    stream::once(async move { Ok(Bytes::from(data)) }).boxed()
}

/// `len` zero bytes in 1 MiB chunks, never all in memory.
fn zeros(len: u64) -> ByteStream {
    let chunk = Bytes::from(vec![0u8; 1 << 20]);
    let n = len.div_ceil(1 << 20);
    stream::iter((0..n).map(move |i| {
        let size = (len - i * (1 << 20)).min(1 << 20) as usize;
        Ok(chunk.slice(..size))
    }))
    .boxed()
}

async fn read_all(s: ByteStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
    chunks.concat()
}

fn cid(s: &str) -> Cid {
    s.parse().unwrap()
}

/// `ipfs add --cid-version=1` CIDs from ipfs-vectors.md.
const EMPTY: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
const A: &str = "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273sixm";
const HELLO: &str = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4";
const ZEROS_262145: &str = "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki";
const ZEROS_5MIB: &str = "bafybeid7mu43g4fehkxhdkl4x3lu4pybxuxpg57it6r6z7e36soj7h2yd4";
const ZEROS_50MIB: &str = "bafybeihaqwdzbwwcswc7zm3ohduemxxuqebbvzr7gs6hphxxkbc2mp666y";
const ABC: &str = "bafkreif2pall7dybz7vecqka3zo24irdwabwdi4wc55jznaq75q7eaavvu";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_gives_the_canonical_cids() {
    let d = jsipfs::shared();
    let c = client(&d.api);
    for (data, want) in [
        (Vec::new(), EMPTY),
        (b"a".to_vec(), A),
        (b"hello world\n".to_vec(), HELLO),
    ] {
        let got = c.add(bytes_stream(data), false).await.unwrap();
        assert_eq!(got.to_string(), want);
    }
    assert_eq!(
        c.add(zeros(262_145), false).await.unwrap().to_string(),
        ZEROS_262145
    );
    assert_eq!(
        c.add(zeros(5 * 1024 * 1024), false)
            .await
            .unwrap()
            .to_string(),
        ZEROS_5MIB
    );
    // Two levels of 174-link nodes, streamed in 1 MiB chunks.
    let big = c.add(zeros(50 * 1024 * 1024), true).await.unwrap();
    assert_eq!(big.to_string(), ZEROS_50MIB);
    // Read back from an offset inside the second level, by CID.
    let tail = read_all(c.cat(&big, 50 * 1024 * 1024 - 10, None).await.unwrap()).await;
    assert_eq!(tail, vec![0u8; 10]);
    let mid = read_all(c.cat(&big, 46_000_000, Some(5)).await.unwrap()).await;
    assert_eq!(mid.len(), 5);
    c.pin_rm(&big).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_write_is_canonical_and_reads_back() {
    let d = jsipfs::shared();
    let c = client(&d.api);
    let root = format!("/t-{}", uuid::Uuid::new_v4().simple());
    let f = format!("{root}/dir/hello");
    let opts = WriteOptions {
        create: true,
        truncate: true,
        parents: true,
        offset: 0,
    };
    c.files_write(&f, bytes_stream(b"hello world\n".to_vec()), opts.clone())
        .await
        .unwrap();
    let st = c.files_stat(&f).await.unwrap();
    assert_eq!(
        (st.cid, st.size, st.kind),
        (cid(HELLO), 12, EntryKind::File)
    );
    assert_eq!(
        read_all(c.files_read(&f, 6, Some(5)).await.unwrap()).await,
        b"world"
    );
    assert_eq!(
        read_all(c.files_read(&f, 0, None).await.unwrap()).await,
        b"hello world\n"
    );

    // Overwrite in place at an offset: the result is still the canonical
    // DAG of the new bytes.
    let z = format!("{root}/z");
    c.files_write(&z, zeros(262_145), opts.clone())
        .await
        .unwrap();
    assert_eq!(c.files_stat(&z).await.unwrap().cid, cid(ZEROS_262145));
    let patch = WriteOptions {
        create: false,
        truncate: false,
        parents: false,
        offset: 262_140,
    };
    c.files_write(&z, bytes_stream(b"abc".to_vec()), patch)
        .await
        .unwrap();
    let mut want = vec![0u8; 262_145];
    want[262_140..262_143].copy_from_slice(b"abc");
    assert_eq!(
        read_all(c.files_read(&z, 0, None).await.unwrap()).await,
        want
    );
    let canonical = c.add(bytes_stream(want), false).await.unwrap();
    let st = c.files_stat(&z).await.unwrap();
    assert_eq!((st.cid, st.size), (canonical, 262_145));

    // Append past the end of the old content.
    let append = WriteOptions {
        create: false,
        truncate: false,
        parents: false,
        offset: 12,
    };
    c.files_write(&f, bytes_stream(b"more".to_vec()), append)
        .await
        .unwrap();
    assert_eq!(
        read_all(c.files_read(&f, 0, None).await.unwrap()).await,
        b"hello world\nmore"
    );
    // create=false on a missing file is NotFound.
    let err = c
        .files_write(
            &format!("{root}/missing"),
            bytes_stream(b"x".to_vec()),
            WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    c.files_rm(&root, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfs_operations_and_typed_errors() {
    let d = jsipfs::shared();
    let c = client(&d.api);
    let root = format!("/t-{}", uuid::Uuid::new_v4().simple());
    c.files_mkdir(&format!("{root}/a/b"), true).await.unwrap();
    // mkdir -p of an existing directory is fine; without -p it is not.
    c.files_mkdir(&format!("{root}/a/b"), true).await.unwrap();
    let err = c
        .files_mkdir(&format!("{root}/a/b"), false)
        .await
        .unwrap_err();
    assert!(matches!(err, IpfsError::AlreadyExists(_)), "{err:?}");

    // The content must be in this daemon first: `cp /ipfs/<cid>` of absent
    // content would wait for the (offline) network.
    let added = c
        .add(bytes_stream(b"hello world\n".to_vec()), false)
        .await
        .unwrap();
    assert_eq!(added.to_string(), HELLO);
    c.files_cp(&format!("/ipfs/{HELLO}"), &format!("{root}/a/f"), false)
        .await
        .unwrap();
    c.files_cp(&format!("{root}/a/f"), &format!("{root}/a/b/g"), false)
        .await
        .unwrap();
    let err = c
        .files_cp(&format!("{root}/a/f"), &format!("{root}/a/b/g"), false)
        .await
        .unwrap_err();
    assert!(matches!(err, IpfsError::AlreadyExists(_)), "{err:?}");

    let ls = c.files_ls(&format!("{root}/a")).await.unwrap();
    let names: Vec<_> = ls.iter().map(|e| (e.name.as_str(), e.kind)).collect();
    assert_eq!(names, [("b", EntryKind::Directory), ("f", EntryKind::File)]);
    assert_eq!((ls[1].size, ls[1].cid), (12, cid(HELLO)));

    c.files_mv(&format!("{root}/a/b/g"), &format!("{root}/a/h"))
        .await
        .unwrap();
    assert!(c.files_ls(&format!("{root}/a/b")).await.unwrap().is_empty());
    assert_eq!(
        read_all(c.files_read(&format!("{root}/a/h"), 0, None).await.unwrap()).await,
        b"hello world\n"
    );
    let dir_cid = c.files_flush(&format!("{root}/a")).await.unwrap();
    assert_eq!(
        c.files_stat(&format!("{root}/a")).await.unwrap().cid,
        dir_cid
    );

    // Not-found, whatever the daemon's wording, from every operation.
    let missing = format!("{root}/nope");
    assert!(c.files_stat(&missing).await.unwrap_err().is_not_found());
    assert!(c.files_ls(&missing).await.unwrap_err().is_not_found());
    assert!(
        c.files_read(&missing, 0, None)
            .await
            .err()
            .unwrap()
            .is_not_found()
    );
    assert!(c.files_rm(&missing, true).await.unwrap_err().is_not_found());
    assert!(
        c.files_mv(&missing, &format!("{root}/x"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        c.files_cp(&missing, &format!("{root}/x"), false)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        c.files_stat(&format!("{root}/a/f/below-a-file"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    // A directory is not readable content.
    let err = c
        .files_read(&format!("{root}/a"), 0, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, IpfsError::NotAFile(_)), "{err:?}");
    // rm of a directory needs `recursive`.
    let err = c.files_rm(&format!("{root}/a/b"), false).await.unwrap_err();
    assert!(matches!(err, IpfsError::NotAFile(_)), "{err:?}");
    c.files_rm(&root, true).await.unwrap();
    assert!(c.files_stat(&root).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_pins_and_identity() {
    let d = jsipfs::shared();
    let c = client(&d.api);
    let put = c
        .block_put(Bytes::from_static(b"abc"), disco::ipfs::RAW)
        .await
        .unwrap();
    assert_eq!(put.to_string(), ABC);
    assert_eq!(&c.block_get(&put, None).await.unwrap()[..], b"abc");
    assert_eq!(c.block_stat(&put).await.unwrap(), 3);

    // A dag-pb node (an empty UnixFS directory) round-trips with its CID.
    let empty_dir = [0x0a, 0x02, 0x08, 0x01];
    let pb = c
        .block_put(Bytes::copy_from_slice(&empty_dir), disco::ipfs::DAG_PB)
        .await
        .unwrap();
    assert_eq!(
        pb.to_string(),
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    );
    assert_eq!(&c.block_get(&pb, None).await.unwrap()[..], &empty_dir);

    c.pin_add(&put, true).await.unwrap();
    c.pin_rm(&put).await.unwrap();
    let err = c.pin_rm(&put).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    let id = c.id().await.unwrap();
    assert!(id.peer_id.starts_with("12D3") || id.peer_id.starts_with("Qm"));
    assert!(id.agent.contains("js-ipfs"), "{}", id.agent);
    assert!(
        id.addresses
            .iter()
            .any(|a| a.contains(&d.swarm_port.to_string())),
        "{:?}",
        id.addresses
    );
    let err = c
        .swarm_connect(&format!("{}/p2p/{}", d.swarm_addr(), id.peer_id))
        .await;
    assert!(err.is_err(), "dialling itself must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_content_times_out_and_the_node_survives() {
    let d = jsipfs::shared();
    let c = client(&d.api);
    let missing = block::raw_cid(format!("never stored {}", uuid::Uuid::new_v4()).as_bytes());
    let err = c
        .block_get(&missing, Some(Duration::from_millis(500)))
        .await
        .unwrap_err();
    assert!(matches!(err, IpfsError::Timeout(_)), "{err:?}");
    let err = c.cat(&missing, 0, None).await.err().unwrap();
    assert!(matches!(err, IpfsError::Timeout(_)), "{err:?}");

    // A file whose middle block is gone: js-ipfs fails the read with a
    // timeout (and must not take the daemon down with it).
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let root = c.add(bytes_stream(data), false).await.unwrap();
    let leaf = block::raw_cid(
        &(262_144 * 10..262_144 * 11)
            .map(|i: u32| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    c.block_stat(&leaf).await.unwrap();
    block_rm(&d.api, &leaf).await;
    let res = match c.cat(&root, 0, None).await {
        Ok(s) => s
            .try_collect::<Vec<Bytes>>()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(res.is_err(), "a read with a missing block must fail");
    c.id().await.expect("daemon still answers");
}

/// `block/rm` is not part of the `Ipfs` interface; the test calls it raw.
async fn block_rm(api: &str, cid: &Cid) {
    let url = format!("{api}/api/v0/block/rm?arg={cid}");
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(url)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_is_unavailable() {
    let port = crate::support::registry::free_port();
    let cfg = KuboConfig {
        retrybackoff: Duration::from_millis(10),
        ..KuboConfig::default()
    };
    let c = KuboClient::new(&format!("http://127.0.0.1:{port}"), &cfg).unwrap();
    assert!(matches!(c.id().await, Err(IpfsError::Unavailable(_))));
    assert!(matches!(
        c.files_stat("/x").await,
        Err(IpfsError::Unavailable(_))
    ));
    assert!(matches!(
        c.add(bytes_stream(b"x".to_vec()), false).await,
        Err(IpfsError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_read_matches_digest() {
    let d = jsipfs::shared();
    let c = client(&d.api);
    // 10 MiB + 12345 patterned bytes (byte i = i mod 251), streamed in and
    // out; its CID is a known vector.
    let len = 10 * 1024 * 1024 + 12_345u64;
    let gen_chunk = move |i: u64| -> Bytes {
        let start = i * 65536;
        let end = (start + 65536).min(len);
        Bytes::from((start..end).map(|j| (j % 251) as u8).collect::<Vec<_>>())
    };
    let n = len.div_ceil(65536);
    let mut want = Sha256::new();
    for i in 0..n {
        want.update(gen_chunk(i));
    }
    let input = stream::iter((0..n).map(move |i| Ok(gen_chunk(i)))).boxed();
    let root = c.add(input, false).await.unwrap();
    assert_eq!(
        root.to_string(),
        "bafybeihfllguj7wx7xvchkuhq3injfngwvrrzso6encbzhxyystcraf7ve"
    );
    let path = format!("/t-{}", uuid::Uuid::new_v4().simple());
    c.files_cp(&format!("/ipfs/{root}"), &path, false)
        .await
        .unwrap();
    let mut s = c.files_read(&path, 0, None).await.unwrap();
    let mut got = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = s.try_next().await.unwrap() {
        total += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(total, len);
    assert_eq!(got.finalize(), want.finalize());
    assert_eq!(c.files_stat(&path).await.unwrap().size, len);
    c.files_rm(&path, true).await.unwrap();
}
