//! Crash safety of the embedded store: a child process (this test binary,
//! re-executed) writes large and small files and flushes; it is killed with
//! SIGKILL mid-write; the store reopened afterwards must hold exactly the
//! last flushed tree, with every file complete and every block present and
//! valid.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use disco::ipfs::embedded::{EmbeddedConfig, EmbeddedIpfs};
use disco::ipfs::{Cid, EntryKind, Ipfs, WriteOptions};
use futures::TryStreamExt;

const CHILD_ENV: &str = "DISCO_STORE_CRASH_DIR";

/// File content, determined by its name: `<seed>-<len>`.
fn content(seed: u64, len: usize) -> Vec<u8> {
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

fn config(dir: &str) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::at(dir);
    // Only explicit flushes persist, so the test knows every root.
    c.flush_interval = Duration::from_secs(3600);
    c.gc.enabled = false;
    c
}

fn stream(data: Vec<u8>) -> disco::storage::ByteStream {
    let pieces: Vec<std::io::Result<Bytes>> = data
        .chunks(65_536)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(pieces))
}

/// The child: runs only when re-executed by [`sigkill_mid_write`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of sigkill_mid_write"]
async fn crash_child() {
    let dir = std::env::var(CHILD_ENV).expect("run by sigkill_mid_write");
    let node = EmbeddedIpfs::open(config(&dir)).await.expect("open");
    let opts = WriteOptions {
        create: true,
        truncate: true,
        parents: true,
        offset: 0,
    };
    for round in 0u64.. {
        // A burst of small files, then one large file, then a flush.
        for i in 0..200u64 {
            let seed = round * 1000 + i;
            let len = 100 + (seed as usize % 3000);
            node.files_write(
                &format!("/small/r{round}/{seed}-{len}"),
                stream(content(seed, len)),
                opts.clone(),
            )
            .await
            .expect("small write");
        }
        let seed = round * 1000 + 999;
        let len = 3_000_000 + round as usize * 12_345;
        println!("CRASH large {round}");
        node.files_write(
            &format!("/large/{seed}-{len}"),
            stream(content(seed, len)),
            opts.clone(),
        )
        .await
        .expect("large write");
        println!("CRASH flushing {round}");
        let cid = node.files_flush("/").await.expect("flush");
        println!("CRASH flushed {round} {cid}");
    }
}

async fn read_all(node: &EmbeddedIpfs, path: &str) -> Vec<u8> {
    let s = node.files_read(path, 0, None).await.expect("read");
    let parts: Vec<Bytes> = s
        .try_collect()
        .await
        .expect("read stream: a block is missing");
    parts.concat()
}

/// Checks every file under `dir` against its name; returns the count.
async fn check_tree(node: &EmbeddedIpfs, dir: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_string()];
    while let Some(d) = stack.pop() {
        for e in node.files_ls(&d).await.expect("ls") {
            let path = format!("{}/{}", d.trim_end_matches('/'), e.name);
            match e.kind {
                EntryKind::Directory => stack.push(path),
                EntryKind::File => {
                    let (seed, len) = e.name.split_once('-').expect("name");
                    let want = content(seed.parse().unwrap(), len.parse().unwrap());
                    assert_eq!(e.size, want.len() as u64, "{path}");
                    assert!(read_all(node, &path).await == want, "{path}: wrong content");
                    n += 1;
                }
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ipfs");
    let dir_s = dir.to_str().unwrap().to_string();
    // Two kills: one while a large file is being written, one during a
    // burst of small writes.
    for (kill_after, kill_on) in [(2u64, "large"), (4u64, "flushed")] {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store_crash::crash_child",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, &dir_s)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut child = ChildGuard(child);
        let out = BufReader::new(child.0.stdout.take().unwrap());
        let mut roots: BTreeMap<u64, Cid> = BTreeMap::new();
        let mut last_flushing = None;
        let mut killed = false;
        for line in out.lines() {
            let line = line.expect("child output");
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() != Some(&"CRASH") {
                continue;
            }
            let round: u64 = words[2].parse().unwrap();
            match words[1] {
                "flushed" => {
                    roots.insert(round, words[3].parse().unwrap());
                }
                "flushing" => last_flushing = Some(round),
                _ => {}
            }
            if !killed && round >= kill_after && words[1] == kill_on {
                // Let it get into the next writes, then SIGKILL; keep
                // reading what it printed before dying.
                std::thread::sleep(Duration::from_millis(30));
                child.0.kill().expect("SIGKILL");
                killed = true;
            }
        }
        assert!(killed, "child ended before it was killed");
        child.0.wait().expect("reap child");
        // Restart in this process: the root is the last flushed one (or the
        // one being flushed, if the kill fell between persisting and
        // printing).
        let node = EmbeddedIpfs::open(config(&dir_s))
            .await
            .expect("reopen after SIGKILL");
        let root = node.files_stat("/").await.expect("stat root").cid;
        let newest = roots.iter().next_back().map(|(r, c)| (*r, *c));
        let round = match newest {
            Some((r, c)) if c == root => r,
            _ => {
                let r = last_flushing.expect("a flush was in progress");
                assert!(
                    newest.is_none_or(|(n, _)| r == n + 1),
                    "root {root} was never flushed"
                );
                r
            }
        };
        // The tree is exactly what was flushed, every file complete and
        // every block present and valid (reads verify each block).
        let files = check_tree(&node, "/").await;
        assert_eq!(
            files as u64,
            (round + 1) * 201,
            "files after restart (round {round})"
        );
        // Clean up so the next child starts from round 0 again.
        node.files_rm("/small", true).await.unwrap();
        node.files_rm("/large", true).await.unwrap();
        node.files_flush("/").await.unwrap();
        node.shutdown().await.unwrap();
        drop(node);
    }
}

/// Kills the child (SIGKILL) and reaps it when dropped, unless it was
/// already reaped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
