//! Manifests: `PUT`/`GET`/`HEAD`/`DELETE /v2/<name>/manifests/<reference>`
//! (OCI Distribution v1.1 end-3, end-7, end-9) for Docker schema 2, Docker
//! manifest lists, OCI manifests and OCI indexes.
//!
//! Where CNCF Distribution 2.8 differs from the spec or disco's issue, the
//! test asserts the spec/issue and is skipped with
//! `DISCO_IT_REGISTRY=distribution`:
//! - `GET` without `Accept` returns the stored OCI manifest/index:
//!   Distribution answers 404 for OCI content unless the client accepts it.
//! - `PUT` by digest with `?tag=` parameters tags the manifest: Distribution
//!   ignores the parameters.
//! - manifests addressed by a sha512 digest: Distribution only computes
//!   sha256 manifest digests.
//! - `DELETE` by tag removes the tag: Distribution 2.8 answers 400
//!   `DIGEST_INVALID`.
//! - a repository holding only untagged manifests lists `{"tags":[]}`:
//!   Distribution answers 404 `NAME_UNKNOWN` (accepted for it only).
//! - non-distributable layers with `urls` are accepted: Distribution rejects
//!   them unless `validation.manifests.urls.allow` is configured, so the test
//!   configures it for Distribution only.
//! - an oversized manifest → 413 (or 400 `MANIFEST_INVALID`/`SIZE_INVALID`)
//!   with an OCI error body: any 4xx is accepted from Distribution.

use reqwest::Method;

use crate::support::oci::{
    self, ACCEPT_ALL_MANIFESTS, Client, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST,
    DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, Desc, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_LAYER_NONDIST, OCI_MANIFEST, RawResp, bytes, error_codes, sha256, sha512,
    skip_on_distribution,
};
use crate::support::registry::{Kind, Options, Registry};

/// Pushes config + one layer and returns their descriptors.
async fn blobs(
    c: &Client,
    name: &str,
    cfg_type: &str,
    layer_type: &str,
    seed: u64,
) -> (Desc, Desc) {
    let cfg = oci::config(seed);
    let layer = bytes(512 + seed as usize, seed);
    c.push_blob(name, &cfg).await;
    c.push_blob(name, &layer).await;
    (Desc::of(cfg_type, &cfg), Desc::of(layer_type, &layer))
}

/// Asserts GET and HEAD of `reference` with `accept` return `body` exactly.
async fn assert_served(
    c: &Client,
    name: &str,
    reference: &str,
    accept: &str,
    media_type: &str,
    body: &[u8],
) {
    let path = format!("/v2/{name}/manifests/{reference}");
    let r = c.get_h(&path, &[("Accept", accept)]).await;
    r.expect(200);
    assert!(
        r.body == body,
        "GET {path}: bytes differ: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("content-type"), media_type, "GET {path}");
    assert_eq!(
        r.header("docker-content-digest"),
        sha256(body),
        "GET {path}"
    );
    assert_eq!(
        r.header("content-length"),
        body.len().to_string(),
        "GET {path}"
    );
    let r = c
        .send(Method::HEAD, &path, &[("Accept", accept)], None)
        .await;
    r.expect(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), media_type, "HEAD {path}");
    assert_eq!(
        r.header("docker-content-digest"),
        sha256(body),
        "HEAD {path}"
    );
    assert_eq!(
        r.header("content-length"),
        body.len().to_string(),
        "HEAD {path}"
    );
}

#[tokio::test]
async fn put_by_tag_then_get_and_head_by_tag_and_digest_return_exact_bytes() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (cfg, layer) = blobs(&c, "m/basic", OCI_CONFIG, OCI_LAYER, 1).await;
    let m = oci::oci_manifest(&cfg, &[layer]);
    let digest = sha256(&m);
    let r = c.put_manifest("m/basic", "v1", OCI_MANIFEST, &m).await;
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), digest);
    let loc = c.url(&r.header("location")).path().to_string();
    assert!(
        loc == format!("/v2/m/basic/manifests/{digest}") || loc == "/v2/m/basic/manifests/v1",
        "Location {loc}"
    );
    for reference in ["v1", digest.as_str()] {
        assert_served(&c, "m/basic", reference, OCI_MANIFEST, OCI_MANIFEST, &m).await;
        assert_served(
            &c,
            "m/basic",
            reference,
            ACCEPT_ALL_MANIFESTS,
            OCI_MANIFEST,
            &m,
        )
        .await;
    }
    assert_eq!(c.tags("m/basic").await, vec!["v1"]);
}

#[tokio::test]
async fn put_by_digest_stores_without_tagging() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (cfg, layer) = blobs(&c, "m/bydigest", OCI_CONFIG, OCI_LAYER, 2).await;
    let m = oci::oci_manifest(&cfg, &[layer]);
    let digest = sha256(&m);
    let r = c
        .put_manifest("m/bydigest", &digest, OCI_MANIFEST, &m)
        .await;
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), digest);
    assert_served(&c, "m/bydigest", &digest, OCI_MANIFEST, OCI_MANIFEST, &m).await;
    let r = c.get("/v2/m/bydigest/tags/list").await;
    if reg.kind == Kind::Distribution && r.status.as_u16() == 404 {
        r.expect_error(404, "NAME_UNKNOWN");
    } else {
        r.expect(200);
        assert!(oci::strings(&r.json()["tags"]).is_empty());
    }
}

#[tokio::test]
async fn put_by_digest_with_tag_parameters_tags_the_manifest() {
    let reg = Registry::start();
    if skip_on_distribution(&reg, "?tag= parameters ignored") {
        return;
    }
    let c = Client::new(&reg);
    let (cfg, layer) = blobs(&c, "m/tagparams", OCI_CONFIG, OCI_LAYER, 3).await;
    let m = oci::oci_manifest(&cfg, &[layer]);
    let digest = sha256(&m);
    let r = c
        .put_manifest(
            "m/tagparams",
            &format!("{digest}?tag=one&tag=two"),
            OCI_MANIFEST,
            &m,
        )
        .await;
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), digest);
    let mut tags = c.tags("m/tagparams").await;
    tags.sort();
    assert_eq!(tags, vec!["one", "two"]);
    for t in ["one", "two"] {
        assert_served(&c, "m/tagparams", t, OCI_MANIFEST, OCI_MANIFEST, &m).await;
    }
}

#[tokio::test]
async fn every_manifest_media_type_round_trips_with_accept_negotiation() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let name = "m/types";
    // Docker schema 2 and a Docker manifest list of two of them.
    let mut docker = Vec::new();
    for seed in [10, 11] {
        let (cfg, layer) = blobs(&c, name, DOCKER_CONFIG, DOCKER_LAYER, seed).await;
        let m = oci::docker_manifest(&cfg, &[layer]);
        docker.push(
            c.push_manifest(name, &format!("docker-{seed}"), DOCKER_MANIFEST, &m)
                .await,
        );
        assert_served(
            &c,
            name,
            &format!("docker-{seed}"),
            DOCKER_MANIFEST,
            DOCKER_MANIFEST,
            &m,
        )
        .await;
        assert_served(
            &c,
            name,
            &sha256(&m),
            ACCEPT_ALL_MANIFESTS,
            DOCKER_MANIFEST,
            &m,
        )
        .await;
    }
    let list = oci::docker_list(&docker, &[("linux", "amd64"), ("linux", "arm64")]);
    c.push_manifest(name, "docker-list", DOCKER_LIST, &list)
        .await;
    assert_served(&c, name, "docker-list", DOCKER_LIST, DOCKER_LIST, &list).await;
    assert_served(
        &c,
        name,
        "docker-list",
        ACCEPT_ALL_MANIFESTS,
        DOCKER_LIST,
        &list,
    )
    .await;
    assert_served(&c, name, &sha256(&list), DOCKER_LIST, DOCKER_LIST, &list).await;

    // OCI manifests and an OCI index of two of them.
    let mut ocis = Vec::new();
    for seed in [20, 21] {
        let (cfg, layer) = blobs(&c, name, OCI_CONFIG, OCI_LAYER, seed).await;
        let m = oci::oci_manifest(&cfg, &[layer]);
        ocis.push(
            c.push_manifest(name, &format!("oci-{seed}"), OCI_MANIFEST, &m)
                .await,
        );
        assert_served(
            &c,
            name,
            &format!("oci-{seed}"),
            OCI_MANIFEST,
            OCI_MANIFEST,
            &m,
        )
        .await;
    }
    let index = oci::oci_index(&ocis, &[("linux", "amd64"), ("linux", "arm64")]);
    c.push_manifest(name, "oci-index", OCI_INDEX, &index).await;
    assert_served(&c, name, "oci-index", OCI_INDEX, OCI_INDEX, &index).await;
    assert_served(
        &c,
        name,
        "oci-index",
        ACCEPT_ALL_MANIFESTS,
        OCI_INDEX,
        &index,
    )
    .await;
    assert_served(&c, name, &sha256(&index), OCI_INDEX, OCI_INDEX, &index).await;
    // Accept with parameters and several header lines.
    let r = c
        .get_h(
            &format!("/v2/{name}/manifests/oci-index"),
            &[
                ("Accept", "application/json;q=0.5"),
                ("Accept", "application/vnd.oci.image.index.v1+json;q=0.9"),
            ],
        )
        .await;
    r.expect(200);
    assert_eq!(r.body, index);
}

#[tokio::test]
async fn get_without_accept_returns_the_stored_manifest() {
    let reg = Registry::start();
    if skip_on_distribution(&reg, "OCI content needs an Accept header") {
        return;
    }
    let c = Client::new(&reg);
    let (cfg, layer) = blobs(&c, "m/noaccept", OCI_CONFIG, OCI_LAYER, 30).await;
    let m = oci::oci_manifest(&cfg, &[layer]);
    let d = c.push_manifest("m/noaccept", "v1", OCI_MANIFEST, &m).await;
    let index = oci::oci_index(&[d], &[("linux", "amd64")]);
    c.push_manifest("m/noaccept", "idx", OCI_INDEX, &index)
        .await;
    for (tag, mt, body) in [("v1", OCI_MANIFEST, &m), ("idx", OCI_INDEX, &index)] {
        let r = c.get(&format!("/v2/m/noaccept/manifests/{tag}")).await;
        r.expect(200);
        assert_eq!(&r.body, body);
        assert_eq!(r.header("content-type"), mt);
    }
}

#[tokio::test]
async fn schema1_manifests_are_refused_with_a_clear_error() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let layer = bytes(100, 40);
    let digest = c.push_blob("m/schema1", &layer).await;
    let body = format!(
        r#"{{"schemaVersion":1,"name":"m/schema1","tag":"old","architecture":"amd64","fsLayers":[{{"blobSum":"{digest}"}}],"history":[{{"v1Compatibility":"{{\"id\":\"a\"}}"}}]}}"#
    );
    for mt in [DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1] {
        let r = c
            .put_manifest("m/schema1", "old", mt, body.as_bytes())
            .await;
        assert!(r.status.is_client_error(), "schema1 ({mt}) → {}", r.status);
        let codes = error_codes(&r.body);
        assert!(
            codes
                .iter()
                .any(|c| c == "MANIFEST_INVALID" || c == "UNSUPPORTED"),
            "schema1 ({mt}) codes {codes:?}"
        );
        let v = r.json();
        let message = v["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "no message for schema1 refusal");
    }
    c.get_manifest("m/schema1", "old")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn missing_config_or_layer_is_400_manifest_blob_unknown() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let name = "m/missing";
    let cfg = oci::config(50);
    let layer = bytes(300, 50);
    let (cfg_d, layer_d) = (Desc::of(OCI_CONFIG, &cfg), Desc::of(OCI_LAYER, &layer));
    // Nothing pushed.
    let m = oci::oci_manifest(&cfg_d, std::slice::from_ref(&layer_d));
    c.put_manifest(name, "v1", OCI_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // Config present, layer missing.
    c.push_blob(name, &cfg).await;
    c.put_manifest(name, "v1", OCI_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    let dm = oci::docker_manifest(
        &Desc::of(DOCKER_CONFIG, &cfg),
        &[Desc::of(DOCKER_LAYER, &layer)],
    );
    c.put_manifest(name, "v1", DOCKER_MANIFEST, &dm)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    c.get_manifest(name, "v1")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    c.get_manifest(name, &sha256(&m))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    // A layer present only in another repository does not count.
    c.push_blob("m/elsewhere", &layer).await;
    c.put_manifest(name, "v1", OCI_MANIFEST, &m)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // Once pushed here, the manifest is accepted.
    c.push_blob(name, &layer).await;
    c.push_manifest(name, "v1", OCI_MANIFEST, &m).await;
}

#[tokio::test]
async fn index_children_must_exist() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let name = "m/index";
    let (cfg, layer) = blobs(&c, name, OCI_CONFIG, OCI_LAYER, 60).await;
    let child = oci::oci_manifest(&cfg, &[layer]);
    let child_d = Desc::of(OCI_MANIFEST, &child);
    let index = oci::oci_index(std::slice::from_ref(&child_d), &[("linux", "amd64")]);
    c.put_manifest(name, "idx", OCI_INDEX, &index)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    let list = oci::docker_list(&[Desc::of(DOCKER_MANIFEST, &child)], &[("linux", "amd64")]);
    c.put_manifest(name, "list", DOCKER_LIST, &list)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    c.get_manifest(name, "idx")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    c.push_manifest(name, &child_d.digest, OCI_MANIFEST, &child)
        .await;
    c.push_manifest(name, "idx", OCI_INDEX, &index).await;
    assert_served(&c, name, "idx", OCI_INDEX, OCI_INDEX, &index).await;
}

#[tokio::test]
async fn non_distributable_layers_with_urls_need_not_exist() {
    let probe = crate::support::registry::Kind::from_env();
    let extra = if probe == Kind::Distribution {
        "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n".to_string()
    } else {
        String::new()
    };
    let reg = Registry::start_with(Options {
        extra,
        ..Options::default()
    });
    let c = Client::new(&reg);
    let name = "m/foreign";
    let cfg = oci::config(70);
    c.push_blob(name, &cfg).await;
    let foreign = Desc {
        media_type: OCI_LAYER_NONDIST.into(),
        digest: sha256(b"foreign layer"),
        size: 13,
    };
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{{"mediaType":"{}","digest":"{}","size":{},"urls":["https://example.com/layer.tar.gz"]}}]}}"#,
        Desc::of(OCI_CONFIG, &cfg).json(),
        foreign.media_type,
        foreign.digest,
        foreign.size
    )
    .into_bytes();
    c.push_manifest(name, "oci", OCI_MANIFEST, &m).await;
    assert_served(&c, name, "oci", OCI_MANIFEST, OCI_MANIFEST, &m).await;
    let dm = format!(
        r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":13,"urls":["https://example.com/layer.tar.gz"]}}]}}"#,
        Desc::of(DOCKER_CONFIG, &cfg).json(),
        foreign.digest
    )
    .into_bytes();
    c.push_manifest(name, "docker", DOCKER_MANIFEST, &dm).await;
    assert_served(&c, name, "docker", DOCKER_MANIFEST, DOCKER_MANIFEST, &dm).await;
}

/// An OCI manifest padded with an annotation to exactly `size` bytes.
fn padded_manifest(cfg: &Desc, size: usize) -> Vec<u8> {
    let base = oci::oci_manifest_ext(cfg, &[], None, None, Some(r#"{"pad":""}"#));
    assert!(size >= base.len());
    let pad = "x".repeat(size - base.len());
    let m = oci::oci_manifest_ext(cfg, &[], None, None, Some(&format!(r#"{{"pad":"{pad}"}}"#)));
    assert_eq!(m.len(), size);
    m
}

#[tokio::test]
async fn four_mib_manifest_is_accepted() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let cfg = oci::config(80);
    c.push_blob("m/big", &cfg).await;
    let m = padded_manifest(&Desc::of(OCI_CONFIG, &cfg), 4 << 20);
    c.push_manifest("m/big", "big", OCI_MANIFEST, &m).await;
    assert_served(&c, "m/big", "big", OCI_MANIFEST, OCI_MANIFEST, &m).await;
}

#[tokio::test]
async fn oversized_manifest_is_rejected_cleanly() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let cfg = oci::config(81);
    c.push_blob("m/huge", &cfg).await;
    let m = padded_manifest(&Desc::of(OCI_CONFIG, &cfg), 32 << 20);
    let r: RawResp = oci::raw_request(
        reg.addr,
        "PUT",
        b"/v2/m/huge/manifests/huge",
        &[("Content-Type", OCI_MANIFEST)],
        m.clone(),
    );
    if reg.kind == Kind::Distribution {
        assert!(
            (400..500).contains(&r.status),
            "oversized manifest → {}",
            r.status
        );
    } else {
        let codes = error_codes(&r.body);
        assert!(
            r.status == 413
                || (r.status == 400
                    && codes
                        .iter()
                        .any(|c| c == "MANIFEST_INVALID" || c == "SIZE_INVALID")),
            "oversized manifest → {} {codes:?}",
            r.status
        );
    }
    // Nothing stored, registry still serving.
    c.get_manifest("m/huge", "huge").await.expect(404);
    c.get_manifest("m/huge", &sha256(&m)).await.expect(404);
    c.get("/v2/").await.expect(200);
}

#[tokio::test]
async fn invalid_manifests_are_400_manifest_invalid() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let name = "m/invalid";
    let cfg = oci::config(90);
    c.push_blob(name, &cfg).await;
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (OCI_MANIFEST, b"{not json".to_vec()),
        (OCI_MANIFEST, b"".to_vec()),
        (OCI_MANIFEST, b"[1,2,3]".to_vec()),
        (OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":"nope","layers":[]}}"#).into_bytes()),
        (OCI_INDEX, format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":{{}}}}"#).into_bytes()),
        (DOCKER_MANIFEST, b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{\"digest\":\"notadigest\",\"size\":1}}".to_vec()),
    ];
    for (mt, body) in bad {
        let r = c.put_manifest(name, "bad", mt, &body).await;
        assert_eq!(
            r.status.as_u16(),
            400,
            "{mt} {:?}: {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&r.body)
        );
        let codes = error_codes(&r.body);
        assert!(
            codes
                .iter()
                .any(|c| c == "MANIFEST_INVALID" || c == "DIGEST_INVALID"),
            "{mt} {:?}: codes {codes:?}",
            String::from_utf8_lossy(&body)
        );
    }
    c.get_manifest(name, "bad")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    c.get("/v2/").await.expect(200);
}

#[tokio::test]
async fn put_by_digest_with_mismatched_body_is_400_digest_invalid() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let name = "m/mismatch";
    let (cfg, layer) = blobs(&c, name, OCI_CONFIG, OCI_LAYER, 100).await;
    let m = oci::oci_manifest(&cfg, &[layer]);
    let wrong = sha256(b"not this manifest");
    c.put_manifest(name, &wrong, OCI_MANIFEST, &m)
        .await
        .expect_error(400, "DIGEST_INVALID");
    c.get_manifest(name, &wrong)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    c.get_manifest(name, &sha256(&m))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn sha512_manifest_digest() {
    let reg = Registry::start();
    if skip_on_distribution(&reg, "sha512 manifest digests") {
        return;
    }
    let c = Client::new(&reg);
    let name = "m/sha512";
    let (cfg, layer) = blobs(&c, name, OCI_CONFIG, OCI_LAYER, 110).await;
    let m = oci::oci_manifest(&cfg, &[layer]);
    let d = sha512(&m);
    let r = c.put_manifest(name, &d, OCI_MANIFEST, &m).await;
    r.expect(201);
    let r = c
        .get_h(
            &format!("/v2/{name}/manifests/{d}"),
            &[("Accept", OCI_MANIFEST)],
        )
        .await;
    r.expect(200);
    assert_eq!(r.body, m);
    assert_eq!(r.header("content-type"), OCI_MANIFEST);
    let wrong = sha512(b"other");
    c.put_manifest(name, &wrong, OCI_MANIFEST, &m)
        .await
        .expect_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn unknown_manifest_is_404_manifest_unknown() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    c.push_image("m/unknown", Some("v1"), 120).await;
    for reference in ["nope".to_string(), sha256(b"nope")] {
        c.get_manifest("m/unknown", &reference)
            .await
            .expect_error(404, "MANIFEST_UNKNOWN");
        let r = c
            .send(
                Method::HEAD,
                &format!("/v2/m/unknown/manifests/{reference}"),
                &[("Accept", ACCEPT_ALL_MANIFESTS)],
                None,
            )
            .await;
        r.expect(404);
        assert!(r.body.is_empty());
    }
    // Unknown repository.
    let r = c.get_manifest("m/never", "v1").await;
    r.expect(404);
    let codes = error_codes(&r.body);
    assert!(
        codes
            .iter()
            .any(|c| c == "MANIFEST_UNKNOWN" || c == "NAME_UNKNOWN"),
        "{codes:?}"
    );
}

#[tokio::test]
async fn tag_can_be_moved_to_another_manifest() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (a, abytes) = c.push_image("m/retag", Some("latest"), 130).await;
    let (b, bbytes) = c.push_image("m/retag", Some("latest"), 131).await;
    assert_ne!(a.digest, b.digest);
    assert_eq!(
        c.get_manifest("m/retag", "latest").await.expect(200).body,
        bbytes
    );
    // The old manifest is still there by digest.
    assert_eq!(
        c.get_manifest("m/retag", &a.digest).await.expect(200).body,
        abytes
    );
    assert_eq!(c.tags("m/retag").await, vec!["latest"]);
}

#[tokio::test]
async fn delete_by_digest_is_202_then_404() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (d, _) = c.push_image("m/del", Some("v1"), 140).await;
    let (other, other_bytes) = c.push_image("m/del", Some("keep"), 141).await;
    let path = format!("/v2/m/del/manifests/{}", d.digest);
    c.delete(&path).await.expect(202);
    c.get_manifest("m/del", &d.digest)
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    c.get_manifest("m/del", "v1")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    c.delete(&path).await.expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(c.tags("m/del").await, vec!["keep"]);
    assert_eq!(
        c.get_manifest("m/del", &other.digest)
            .await
            .expect(200)
            .body,
        other_bytes
    );
    // Unknown digest.
    c.delete(&format!("/v2/m/del/manifests/{}", sha256(b"x")))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn delete_by_tag_deletes_only_the_tag() {
    let reg = Registry::start();
    if skip_on_distribution(&reg, "DELETE by tag → 400 DIGEST_INVALID") {
        return;
    }
    let c = Client::new(&reg);
    let (d, bytes_) = c.push_image("m/deltag", Some("one"), 150).await;
    c.push_manifest("m/deltag", "two", OCI_MANIFEST, &bytes_)
        .await;
    c.delete("/v2/m/deltag/manifests/one").await.expect(202);
    c.get_manifest("m/deltag", "one")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(
        c.get_manifest("m/deltag", "two").await.expect(200).body,
        bytes_
    );
    assert_eq!(
        c.get_manifest("m/deltag", &d.digest).await.expect(200).body,
        bytes_
    );
    assert_eq!(c.tags("m/deltag").await, vec!["two"]);
    c.delete("/v2/m/deltag/manifests/one").await.expect(404);
}

#[tokio::test]
async fn invalid_tags_are_rejected() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (_, m) = c.push_image("m/badtag", Some("ok"), 160).await;
    let long = "a".repeat(129);
    for tag in ["-dash", ".dot", long.as_str(), "a%2Fb", "t%20t"] {
        let r = c.put_manifest("m/badtag", tag, OCI_MANIFEST, &m).await;
        let s = r.status.as_u16();
        assert!(s == 400 || s == 404, "tag {tag:?} → {s}");
        if reg.kind == Kind::Disco {
            error_codes(&r.body);
        }
    }
    assert_eq!(c.tags("m/badtag").await, vec!["ok"]);
    // The longest valid tag is fine.
    let max = format!("A{}", "b".repeat(127));
    c.push_manifest("m/badtag", &max, OCI_MANIFEST, &m).await;
}

#[tokio::test]
async fn manifests_are_scoped_to_their_repository() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let (d, m) = c.push_image("m/scope-a", Some("v1"), 170).await;
    c.get_manifest("m/scope-b", &d.digest).await.expect(404);
    // An index in b may not reference a manifest that only a holds.
    c.push_image("m/scope-b", Some("other"), 171).await;
    let index = oci::oci_index(std::slice::from_ref(&d), &[("linux", "amd64")]);
    c.put_manifest("m/scope-b", "idx", OCI_INDEX, &index)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // Once b has it (same bytes, same blobs), the index is accepted.
    c.push_image("m/scope-b", None, 170).await;
    c.push_manifest("m/scope-b", "idx", OCI_INDEX, &index).await;
    assert_eq!(
        c.get_manifest("m/scope-b", &d.digest)
            .await
            .expect(200)
            .body,
        m
    );
}

#[tokio::test]
async fn concurrent_pushes_to_one_tag_leave_a_consistent_tag() {
    let reg = Registry::start();
    let c = Client::new(&reg);
    let mut manifests = Vec::new();
    for seed in 180..186 {
        let (cfg, layer) = blobs(&c, "m/race", OCI_CONFIG, OCI_LAYER, seed).await;
        manifests.push(oci::oci_manifest(&cfg, &[layer]));
    }
    let tasks: Vec<_> = manifests
        .iter()
        .cloned()
        .map(|m| {
            let c = c.clone();
            tokio::spawn(async move {
                c.put_manifest("m/race", "latest", OCI_MANIFEST, &m)
                    .await
                    .expect(201);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("push task panicked");
    }
    let r = c.get_manifest("m/race", "latest").await;
    r.expect(200);
    assert!(
        manifests.contains(&r.body),
        "tag points at bytes nobody pushed"
    );
    assert_eq!(r.header("docker-content-digest"), sha256(&r.body));
    for m in &manifests {
        assert_eq!(
            &c.get_manifest("m/race", &sha256(m)).await.expect(200).body,
            m
        );
    }
    assert_eq!(c.tags("m/race").await, vec!["latest"]);
}
