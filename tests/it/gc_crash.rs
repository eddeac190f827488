//! kill -9 in the middle of a collection over many blobs loses nothing
//! referenced, and the next run completes.

use std::time::Duration;

use crate::gc_support::{Img, assert_blob_gone, assert_whole, gc, push_img, start_fs};
use crate::support::oci::{Client, Resp, bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_collection_loses_nothing_and_next_run_completes() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = start_fs(dir.path(), "  grace: 0s\n  interval: 0s\n", "");
    let c = Client::new(&reg);
    let base = bytes(8192, 1);
    let mut kept: Vec<Img> = Vec::new();
    let mut gone: Vec<Img> = Vec::new();
    for i in 0..60u64 {
        let img = push_img(
            &c,
            &format!("crash/r{}", i % 4),
            Some(&format!("t{i}")),
            100 + i,
            4,
            std::slice::from_ref(&base),
            None,
        )
        .await;
        if i % 3 == 0 {
            kept.push(img);
        } else {
            gone.push(img);
        }
    }
    for img in &gone {
        c.delete(&format!("/v2/{}/manifests/{}", img.repo, img.desc.digest))
            .await
            .expect(202);
    }
    let blobs_dir = dir.path().join("storage/docker/registry/v2/blobs");
    let initial = count_blobs(&blobs_dir);
    // Kill the process mid-sweep: as soon as the first blobs are gone.
    for _ in 0..2 {
        let before = count_blobs(&blobs_dir);
        let run = start_collection(&reg.url());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while count_blobs(&blobs_dir) == before
            && !run.is_finished()
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        reg.kill();
        let _ = run.await;
        let after = count_blobs(&blobs_dir);
        eprintln!("killed with {after} of {before} blobs left ({initial} at first)");
        reg.restart();
        for img in &kept {
            assert_whole(&c, img).await;
        }
    }
    // And at other points of collections (marking included).
    let mut interrupted = 0;
    for delay_ms in [0u64, 10, 30, 60] {
        let run = start_collection(&reg.url());
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        reg.kill();
        // The request either finished before the kill or was cut.
        if tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("request ends with the process")
            .is_err()
        {
            interrupted += 1;
        }
        reg.restart();
        for img in &kept {
            assert_whole(&c, img).await;
        }
    }
    eprintln!("{interrupted} collections cut by SIGKILL");
    let done = gc(&c, "registry=true&deleteUntagged=true").await;
    assert_eq!(done["errors"], 0, "{done:#}");
    let again = gc(&c, "registry=true&deleteUntagged=true").await;
    assert!(again["blobs"].as_array().unwrap().is_empty(), "{again:#}");
    assert!(
        again["manifests"].as_array().unwrap().is_empty(),
        "{again:#}"
    );
    for img in &kept {
        assert_whole(&c, img).await;
    }
    for img in &gone {
        c.get_manifest(&img.repo, &img.desc.digest)
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        for (d, _) in &img.blobs {
            if *d != crate::support::oci::sha256(&base) {
                assert_blob_gone(&c, &img.repo, d).await;
            }
        }
    }
}

/// Blob data files under `dir`.
fn count_blobs(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else if e.file_name() == "data" {
                n += 1;
            }
        }
    }
    n
}

/// Starts a registry collection (untagged manifests included) in the
/// background; the request's answer is the task's (a panic if the process
/// was killed under it).
fn start_collection(url: &str) -> tokio::task::JoinHandle<Resp> {
    let url = url.to_string();
    tokio::spawn(async move {
        Client::for_url(&url)
            .send(
                reqwest::Method::POST,
                "/disco/v1/gc?registry=true&deleteUntagged=true",
                &[],
                None,
            )
            .await
    })
}
