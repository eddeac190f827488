//! disco's collection of a storage directory written by CNCF Distribution
//! (Debian's `docker-registry`) leaves exactly the files Distribution's own
//! `docker-registry garbage-collect` leaves on a copy of it.
//!
//! One known difference is left out on purpose: Distribution 2.8's
//! `--delete-untagged` deletes the (untagged) children of a tagged index
//! and then their layers, breaking the index; disco keeps them. The
//! untagged comparison therefore has no index.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::gc_support::{gc, push_img, push_index};
use crate::support::oci::{Client, bytes};
use crate::support::registry::{Kind, Options, Registry};

/// Files under `root`, relative.
fn files(root: &Path) -> BTreeSet<String> {
    crate::support::oci::walk(root)
        .into_iter()
        .filter(|p| root.join(p).is_file())
        .map(|p| p.display().to_string())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Builds a storage directory with Distribution: tagged images, a deleted
/// manifest, an untagged manifest (its tag moved), an orphan blob, and
/// (with `index`) a tagged index of two children pushed by digest.
async fn distribution_storage(dir: &Path, index: bool) -> std::path::PathBuf {
    let mut reg = Registry::start_in(
        dir,
        Options {
            kind: Kind::Distribution,
            ..Options::default()
        },
    );
    let c = Client::new(&reg);
    let base = bytes(4096, 3);
    let shared = std::slice::from_ref(&base);
    push_img(&c, "lib/app", Some("v1"), 1, 2, shared, None).await;
    if index {
        let x = push_img(&c, "lib/app", None, 2, 1, shared, None).await;
        let y = push_img(&c, "lib/app", None, 3, 1, &[], None).await;
        push_index(&c, "lib/app", "multi", &[&x, &y]).await;
    }
    let b = push_img(&c, "lib/app", Some("v2"), 4, 2, shared, None).await;
    c.delete(&format!("/v2/lib/app/manifests/{}", b.desc.digest))
        .await
        .expect(202);
    push_img(&c, "lib/app", Some("v3"), 5, 1, &[], None).await;
    push_img(&c, "lib/app", Some("v3"), 6, 1, shared, None).await;
    push_img(&c, "other", Some("latest"), 7, 1, &[], None).await;
    c.push_blob("other", &bytes(1500, 8)).await;
    reg.stop();
    dir.join("storage")
}

fn distribution_gc(root: &Path, delete_untagged: bool) {
    let cfg = root.with_extension("yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            root.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("/usr/bin/docker-registry");
    cmd.arg("garbage-collect");
    if delete_untagged {
        cmd.arg("--delete-untagged");
    }
    let out = cmd.arg(&cfg).output().unwrap();
    assert!(
        out.status.success(),
        "docker-registry garbage-collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn disco_gc(dir: &Path, root: &Path, delete_untagged: bool) -> serde_json::Value {
    let mut reg = Registry::start_in(
        dir,
        Options {
            storage: Some(format!(
                "  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
                root.display()
            )),
            extra: "gc:\n  grace: 0s\n  interval: 0s\n".into(),
            env: Vec::new(),
            kind: Kind::Disco,
        },
    );
    let c = Client::new(&reg);
    let q = if delete_untagged {
        "registry=true&deleteUntagged=true"
    } else {
        "registry=true"
    };
    let r = gc(&c, q).await;
    reg.stop();
    r
}

async fn compare(index: bool, delete_untagged: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let storage = distribution_storage(&tmp.path().join("build"), index).await;
    let dist = tmp.path().join("dist");
    let disco = tmp.path().join("disco");
    copy_dir(&storage, &dist);
    copy_dir(&storage, &disco);
    let before = files(&storage);
    distribution_gc(&dist, delete_untagged);
    let report = disco_gc(&tmp.path().join("run"), &disco, delete_untagged).await;
    let (want, got) = (files(&dist), files(&disco));
    assert!(
        want.len() < before.len(),
        "Distribution collected something"
    );
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "disco deleted {missing:#?} that Distribution kept, and kept {extra:#?} that Distribution deleted; report {report:#}"
    );
}

#[tokio::test]
async fn same_files_as_distribution_garbage_collect() {
    compare(true, false).await;
}

#[tokio::test]
async fn same_files_as_distribution_garbage_collect_delete_untagged() {
    compare(false, true).await;
}
