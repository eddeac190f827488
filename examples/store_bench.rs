//! Benchmarks of the embedded IPFS store (see `bench/store-bench.sh`).
//!
//! `store_bench mfs <dir> <writes> [concurrency]`: small-file writes spread
//! like a registry's files (blob `data` files under 256 `xx/` buckets and
//! per-repository layer `link` files), then stats and a flush.
//! `store_bench add <dir> <file>`: canonical import of a file, alone and
//! with the OCI sha256 digest computed in the same pass (as a push does).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use disco::ipfs::embedded::{EmbeddedConfig, EmbeddedIpfs};
use disco::ipfs::{Ipfs, WriteOptions};
use futures::StreamExt;
use sha2::{Digest, Sha256};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn hex_of(i: u64) -> String {
    hex::encode(Sha256::digest(i.to_le_bytes()))
}

fn path_of(i: u64) -> (String, Bytes) {
    let h = hex_of(i);
    if i.is_multiple_of(2) {
        (
            format!("/docker/registry/v2/blobs/sha256/{}/{h}/data", &h[..2]),
            Bytes::from(format!("{{\"blob\":{i}}}")),
        )
    } else {
        (
            format!(
                "/docker/registry/v2/repositories/repo{}/_layers/sha256/{h}/link",
                i % 100
            ),
            Bytes::from(format!("sha256:{h}")),
        )
    }
}

fn one(data: Bytes) -> disco::storage::ByteStream {
    Box::pin(futures::stream::once(async move { Ok(data) }))
}

async fn mfs(dir: &str, n: u64, conc: usize) {
    let mut cfg = EmbeddedConfig::at(dir);
    cfg.gc.enabled = false;
    let node = Arc::new(EmbeddedIpfs::open(cfg).await.expect("open"));
    let opts = WriteOptions {
        create: true,
        truncate: true,
        parents: true,
        offset: 0,
    };
    let start = Instant::now();
    let mut marks = Vec::new();
    let mut done = 0u64;
    let mut s = futures::stream::iter(0..n)
        .map(|i| {
            let node = node.clone();
            let opts = opts.clone();
            async move {
                let (p, d) = path_of(i);
                node.files_write(&p, one(d), opts).await.expect("write");
            }
        })
        .buffer_unordered(conc);
    while s.next().await.is_some() {
        done += 1;
        if done == 10_000 || done == n {
            marks.push((done, start.elapsed()));
        }
    }
    drop(s);
    let t = Instant::now();
    let root = node.files_flush("/").await.expect("flush");
    let flush = t.elapsed();
    for (k, el) in &marks {
        println!(
            "mfs writes: {k} in {:.2} s = {:.0} writes/s",
            el.as_secs_f64(),
            *k as f64 / el.as_secs_f64()
        );
    }
    println!("final flush: {:.3} s, root {root}", flush.as_secs_f64());
    let stats = 10_000.min(n);
    let t = Instant::now();
    for j in 0..stats {
        let (p, _) = path_of((j * 7919) % n);
        node.files_stat(&p).await.expect("stat");
    }
    println!(
        "stat: {:.1} µs average over {stats}",
        t.elapsed().as_secs_f64() * 1e6 / stats as f64
    );
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
    node.shutdown().await.expect("shutdown");
}

async fn add(dir: &str, file: &str) {
    let len = std::fs::metadata(file).expect("input").len() as f64;
    for with_digest in [false, true] {
        // A fresh store per run, so no block is deduplicated.
        let sub = if with_digest { "digest" } else { "plain" };
        let mut cfg = EmbeddedConfig::at(std::path::Path::new(dir).join(sub));
        cfg.gc.enabled = false;
        let node = EmbeddedIpfs::open(cfg).await.expect("open");
        let f = tokio::fs::File::open(file).await.expect("open input");
        let reader = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20);
        let start = Instant::now();
        let cid = if with_digest {
            // The OCI digest on its own thread, as a push computes it.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(16);
            let hasher = std::thread::spawn(move || {
                let mut h = Sha256::new();
                for b in rx {
                    h.update(&b);
                }
                hex::encode(h.finalize())
            });
            let s = reader.map(move |r| {
                if let Ok(b) = &r {
                    let _ = tx.send(b.clone());
                }
                r
            });
            let cid = node.add(Box::pin(s), false).await.expect("add");
            let digest = hasher.join().expect("hasher");
            println!("sha256:{digest}");
            cid
        } else {
            node.add(Box::pin(reader), false).await.expect("add")
        };
        let el = start.elapsed().as_secs_f64();
        println!(
            "add{}: {cid} {:.2} s = {:.0} MB/s",
            if with_digest { " + OCI digest" } else { "" },
            el,
            len / el / 1e6
        );
        node.shutdown().await.expect("shutdown");
    }
    println!("peak RSS: {:.0} MiB", peak_rss_mib());
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("mfs") if args.len() >= 4 => {
            let n = args[3].parse().expect("writes");
            let conc = args.get(4).and_then(|c| c.parse().ok()).unwrap_or(8);
            mfs(&args[2], n, conc).await
        }
        Some("add") if args.len() >= 4 => add(&args[2], &args[3]).await,
        _ => {
            eprintln!("usage: store_bench mfs <dir> <writes> [concurrency] | add <dir> <file>");
            std::process::exit(2);
        }
    }
}
