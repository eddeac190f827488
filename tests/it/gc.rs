//! Registry garbage collection over the API: what goes and what stays
//! (byte for byte), dry runs, the embedded store's disk space, retention
//! policies, read-only refusal, the CLI and metrics.

use reqwest::Method;

use crate::auth_support::offline_storage;
use crate::gc_support::{
    Img, assert_blob_gone, assert_whole, du, gc, push_img, push_index, report_blobs, start_fs,
};
use crate::support::oci::{Client, bytes};
use crate::support::registry::{Kind, Options, Registry};

fn embedded(dir: &std::path::Path) -> Registry {
    Registry::start_in(
        dir,
        Options {
            storage: Some(offline_storage(dir)),
            extra: "gc:\n  grace: 0s\n  interval: 0s\n".into(),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    )
}

fn digests(imgs: &[&Img]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in imgs {
        v.push(i.desc.digest.clone());
        v.extend(i.blobs.iter().map(|(d, _)| d.clone()));
    }
    v.sort();
    v.dedup();
    v
}

#[tokio::test]
async fn collects_exactly_the_unreferenced_and_frees_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let reg = embedded(dir.path());
    let c = Client::new(&reg);
    let base = bytes(4096, 7);
    let shared = std::slice::from_ref(&base);
    // Kept: a tagged image, an index and its children (pushed by digest),
    // a referrer of the tagged image and a referrer of that referrer.
    let a = push_img(&c, "app", Some("v1"), 1, 2, shared, None).await;
    let x = push_img(&c, "app", None, 2, 1, shared, None).await;
    let y = push_img(&c, "app", None, 3, 1, &[], None).await;
    let idx = push_index(&c, "app", "multi", &[&x, &y]).await;
    let sig = push_img(&c, "app", None, 4, 1, &[], Some(&a.desc)).await;
    let sigsig = push_img(&c, "app", None, 5, 1, &[], Some(&sig.desc)).await;
    // Deleted by digest: goes, with its referrer once untagged ones go.
    let b = push_img(&c, "app", Some("v2"), 6, 2, shared, None).await;
    let bsig = push_img(&c, "app", None, 8, 1, &[], Some(&b.desc)).await;
    // Untagged (tag deleted): stays unless untagged manifests go.
    let u = push_img(&c, "app", Some("v3"), 9, 1, &[], None).await;
    // A blob no manifest references.
    let orphan = bytes(3000, 99);
    let orphan_d = c.push_blob("app", &orphan).await;

    c.delete(&format!("/v2/app/manifests/{}", b.desc.digest))
        .await
        .expect(202);
    c.delete("/v2/app/manifests/v3").await.expect(202);
    let b_info = c.get(&format!("/disco/v1/images/{}", b.desc.digest)).await;
    b_info.expect(200);

    // Without untagged deletion: b's own blobs and the orphan. b's
    // referrer stays (a revision), and so do its blobs.
    let mut want: Vec<String> = b.blobs[..3].iter().map(|(d, _)| d.clone()).collect();
    want.push(b.desc.digest.clone());
    want.push(orphan_d.clone());
    want.sort();
    let dry = gc(&c, "registry=true&dryRun=true").await;
    assert_eq!(dry["dryRun"], true);
    assert_eq!(report_blobs(&dry), want, "{dry:#}");
    assert_eq!(
        dry["repositories"].as_array().unwrap().len(),
        2,
        "b's digest and CID repositories: {dry:#}"
    );
    for img in [&a, &x, &y, &idx, &sig, &sigsig, &bsig, &u] {
        assert_whole(&c, img).await;
    }
    c.get(&format!("/v2/app/blobs/{orphan_d}"))
        .await
        .expect(200);

    let blocks_before = du(&dir.path().join("ipfs"));
    let done = gc(&c, "registry=true").await;
    assert_eq!(done["dryRun"], false);
    assert_eq!(
        report_blobs(&done),
        want,
        "the dry run reported the same: {done:#}"
    );
    let freed = done["bytesFreed"].as_u64().unwrap();
    assert_eq!(freed, dry["bytesFreed"].as_u64().unwrap());
    assert!(freed > 0);
    assert!(done["blocks"]["removed"].as_u64().unwrap() > 0, "{done:#}");
    let blocks_after = du(&dir.path().join("ipfs"));
    assert!(
        blocks_after < blocks_before,
        "embedded store {blocks_before} -> {blocks_after} bytes"
    );
    for d in &want {
        assert_blob_gone(&c, "app", d).await;
    }
    c.get(&format!("/disco/v1/images/{}", b.desc.digest))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    for img in [&a, &x, &y, &idx, &sig, &sigsig, &bsig, &u] {
        assert_whole(&c, img).await;
    }
    // The digest and CID repositories of a kept image stay pullable.
    let a_info = c.get(&format!("/disco/v1/images/{}", a.desc.digest)).await;
    a_info.expect(200);
    let cid = a_info.json()["cid"].as_str().unwrap().to_string();
    let r = c.get_manifest(&cid, "latest").await;
    r.expect(200);
    assert_eq!(r.body, a.manifest);
    let hex = a.desc.digest.trim_start_matches("sha256:").to_string();
    assert_eq!(c.get_manifest(&hex, "latest").await.body, a.manifest);

    // Nothing left to collect without untagged deletion.
    let again = gc(&c, "registry=true").await;
    assert!(report_blobs(&again).is_empty(), "{again:#}");

    // With untagged deletion: u and b's referrer go; the index children
    // and the referrers of kept manifests stay.
    let dry = gc(&c, "registry=true&deleteUntagged=true&dryRun=true").await;
    let want = digests(&[&u, &bsig]);
    assert_eq!(report_blobs(&dry), want, "{dry:#}");
    let done = gc(&c, "registry=true&deleteUntagged=true").await;
    assert_eq!(report_blobs(&done), want);
    let mut manifests: Vec<String> = done["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    manifests.sort();
    let mut want_m = vec![u.desc.digest.clone(), bsig.desc.digest.clone()];
    want_m.sort();
    assert_eq!(manifests, want_m);
    for d in &want {
        assert_blob_gone(&c, "app", d).await;
    }
    c.get_manifest("app", &u.desc.digest)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    for img in [&a, &x, &y, &idx, &sig, &sigsig] {
        assert_whole(&c, img).await;
    }
    // The referrers API no longer lists the deleted referrer's siblings.
    let r = c.get(&format!("/v2/app/referrers/{}", a.desc.digest)).await;
    r.expect(200);
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);

    // Metrics.
    let m = reqwest::get(format!("http://{}/metrics", reg.debug_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.lines().any(|l| l == "disco_gc_runs_total 5"), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("disco_gc_blobs_deleted_total ") && !l.ends_with(" 0")),
        "{m}"
    );
}

#[tokio::test]
async fn retention_policies_keep_newest_tags_and_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start_fs(
        dir.path(),
        "  grace: 0s\n  interval: 0s\n  retention:\n    - repositories: [\"team/*\"]\n      keeptags: 2\n      keeppatterns: [\"release-*\"]\n      untaggedage: 0s\n    - repositories: [\"dry/**\"]\n      keeptags: 1\n      dryrun: true\n",
        "",
    );
    let c = Client::new(&reg);
    let mut imgs = Vec::new();
    for (i, tag) in ["v1", "release-1", "v2", "v3", "v4"].iter().enumerate() {
        imgs.push(push_img(&c, "team/app", Some(tag), 10 + i as u64, 1, &[], None).await);
        // Push times differ (the filesystem keeps nanoseconds).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let untouched = push_img(&c, "other", Some("a"), 30, 1, &[], None).await;
    let _untagged_other = push_img(&c, "other", None, 31, 1, &[], None).await;
    let d1 = push_img(&c, "dry/x", Some("a"), 40, 1, &[], None).await;
    let d2 = push_img(&c, "dry/x", Some("b"), 41, 1, &[], None).await;

    let dry = gc(&c, "registry=true&dryRun=true").await;
    let done = gc(&c, "registry=true").await;
    assert_eq!(report_blobs(&dry), report_blobs(&done));
    let mut tags: Vec<String> = done["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}:{}",
                t["repository"].as_str().unwrap(),
                t["tag"].as_str().unwrap()
            )
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec!["team/app:v1".to_string(), "team/app:v2".to_string()]
    );
    let mut left = c.tags("team/app").await;
    left.sort();
    assert_eq!(left, vec!["release-1", "v3", "v4"]);
    for i in [1, 3, 4] {
        assert_whole(&c, &imgs[i]).await;
    }
    // The untagged manifests of v1 and v2 went (untaggedage 0s).
    for i in [0, 2] {
        c.get_manifest("team/app", &imgs[i].desc.digest)
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        for (d, _) in &imgs[i].blobs {
            assert_blob_gone(&c, "team/app", d).await;
        }
    }
    // No policy for `other`: its untagged manifest stays.
    assert_whole(&c, &untouched).await;
    assert_eq!(
        c.get("/v2/other/tags/list").await.json()["tags"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A dryrun policy reports and deletes nothing.
    let reported: Vec<String> = done["policyDryRun"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(reported, vec!["dry/x: tag a".to_string()], "{done:#}");
    assert_whole(&c, &d1).await;
    assert_whole(&c, &d2).await;
}

#[tokio::test]
async fn read_only_registry_refuses_collections() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start_in(
        dir.path(),
        Options {
            storage: Some(format!(
                "{}  maintenance:\n    readonly:\n      enabled: true\n",
                offline_storage(dir.path())
            )),
            extra: String::new(),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    );
    let c = Client::new(&reg);
    for q in ["registry=true", "registry=true&dryRun=true", ""] {
        let r = c
            .send(Method::POST, &format!("/disco/v1/gc?{q}"), &[], None)
            .await;
        r.expect_error(405, "UNSUPPORTED");
        assert!(
            String::from_utf8_lossy(&r.body).contains("read-only"),
            "{q}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_disco"))
        .args(["gc", "--registry", "--url", &reg.url()])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read-only"), "{err}");
}

#[tokio::test]
async fn cli_lists_what_a_dry_run_would_delete() {
    let dir = tempfile::tempdir().unwrap();
    let reg = start_fs(dir.path(), "  grace: 0s\n", "");
    let c = Client::new(&reg);
    let orphan = bytes(2048, 5);
    let d = c.push_blob("app", &orphan).await;
    let kept = push_img(&c, "app", Some("v1"), 1, 1, &[], None).await;
    let disco = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_disco"))
            .args(args)
            .args(["--url", &reg.url()])
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let out = disco(&["gc", "--registry", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("would delete blob {d} (2048 bytes)")),
        "{text}"
    );
    assert!(text.contains("2048 bytes"), "{text}");
    c.get(&format!("/v2/app/blobs/{d}")).await.expect(200);
    let out = disco(&["gc", "--registry", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report_blobs(&v), vec![d.clone()]);
    assert_blob_gone(&c, "app", &d).await;
    assert_whole(&c, &kept).await;
    // Bad requests are refused clearly.
    let r = c
        .send(Method::POST, "/disco/v1/gc?dryRun=true", &[], None)
        .await;
    r.expect_error(400, "UNSUPPORTED");
    let r = c
        .send(
            Method::POST,
            "/disco/v1/gc",
            &[],
            Some(b"{not json".to_vec()),
        )
        .await;
    r.expect(400);
    // Filesystem storage has no block store.
    let r = c.send(Method::POST, "/disco/v1/gc", &[], None).await;
    r.expect_error(405, "UNSUPPORTED");
    // A JSON body selects a registry collection too.
    let r = c
        .send(
            Method::POST,
            "/disco/v1/gc",
            &[("Content-Type", "application/json")],
            Some(br#"{"registry":true,"dryRun":true}"#.to_vec()),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["dryRun"], true);
}
