//! kill -9 in the middle of a collection over many blobs loses nothing
//! referenced, and the next run completes.

use std::time::Duration;

use crate::gc_support::{Img, assert_blob_gone, assert_whole, gc, push_img, start_fs};
use crate::support::oci::{Client, bytes};

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
    // Kill the process at different points of collections.
    let mut interrupted = 0;
    for delay_ms in [0u64, 10, 30, 60, 120, 250] {
        let url = reg.url();
        let run = tokio::spawn(async move {
            let c = Client::for_url(&url);
            c.send(
                reqwest::Method::POST,
                "/disco/v1/gc?registry=true&deleteUntagged=true",
                &[],
                None,
            )
            .await
        });
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
