//! Online collection under load: pushers, a deleter and back-to-back
//! collections (untagged manifests included) run in parallel for a
//! bounded time; no push may fail, and every image still tagged at the
//! end comes back byte for byte. Blobs are shared between images and
//! re-pushed after their last image went, so collections keep meeting
//! blobs a push is about to reference.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::gc_support::{Img, assert_whole, gc, push_img, start_fs};
use crate::support::oci::{Client, bytes};

/// How long the load runs.
const RUN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_deletes_and_collections_in_parallel_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A short grace (a push's blobs come well within it before its
    // manifest); older unreferenced blobs are collected while pushes link
    // them again: the marks recorded at link time and the re-check before
    // each deletion keep what pushes reference.
    let reg = start_fs(dir.path(), "  grace: 3s\n  interval: 0s\n", "");
    let url = reg.url();
    let live: Arc<Mutex<HashMap<String, Img>>> = Arc::new(Mutex::new(HashMap::new()));
    let end = Instant::now() + RUN;
    let shared: Arc<Vec<Vec<u8>>> =
        Arc::new((0..6).map(|i| bytes(2048 + i, 500 + i as u64)).collect());
    let mut tasks = Vec::new();
    for p in 0..3u64 {
        let (url, live, shared) = (url.clone(), live.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let c = Client::for_url(&url);
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let seed = p * 1_000_000 + n;
                // Two shared layers out of six: often unreferenced since
                // the deleter removed their last image.
                let pick = [
                    shared[(n as usize) % 6].clone(),
                    shared[(n as usize + p as usize + 1) % 6].clone(),
                ];
                let repo = format!("race/p{p}");
                let tag = format!("t{n}");
                let img = push_img(&c, &repo, Some(&tag), seed, 1, &pick, None).await;
                live.lock().unwrap().insert(format!("{repo}:{tag}"), img);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        }));
    }
    {
        let (url, live) = (url.clone(), live.clone());
        tasks.push(tokio::spawn(async move {
            let c = Client::for_url(&url);
            let mut n = 0u64;
            while Instant::now() < end {
                // Keep about 40 images alive: the rest is deleted.
                let victim = {
                    let mut l = live.lock().unwrap();
                    if l.len() > 40 {
                        let key = l.keys().nth(n as usize % l.len()).cloned();
                        key.and_then(|k| l.remove(&k).map(|i| (k, i)))
                    } else {
                        None
                    }
                };
                match victim {
                    Some((key, img)) if n.is_multiple_of(2) => {
                        let tag = key.rsplit(':').next().unwrap();
                        c.delete(&format!("/v2/{}/manifests/{tag}", img.repo))
                            .await
                            .expect(202);
                    }
                    Some((_, img)) => {
                        c.delete(&format!("/v2/{}/manifests/{}", img.repo, img.desc.digest))
                            .await
                            .expect(202);
                    }
                    None => {}
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        }));
    }
    {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let c = Client::for_url(&url);
            let mut runs = 0u64;
            let mut deleted = 0u64;
            while Instant::now() < end {
                let r = gc(&c, "registry=true&deleteUntagged=true").await;
                assert_eq!(r["errors"], 0, "{r:#}");
                deleted += r["blobs"].as_array().unwrap().len() as u64;
                runs += 1;
            }
            eprintln!("{runs} collections deleted {deleted} blobs");
            runs
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("load done after {:?}", end.elapsed());
    let c = Client::for_url(&url);
    // One more collection once the load stopped: what is tagged stays.
    let r = gc(&c, "registry=true&deleteUntagged=true").await;
    eprintln!("final collection done after {:?}", end.elapsed());
    let live = live.lock().unwrap().clone();
    assert!(live.len() >= 40, "the pushers pushed: {}", live.len());
    for img in live.values() {
        assert_whole(&c, img).await;
    }
    eprintln!(
        "{} images verified; the last collection deleted {} blobs",
        live.len(),
        r["blobs"].as_array().unwrap().len()
    );
}
