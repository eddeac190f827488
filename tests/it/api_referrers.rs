//! Referrers: `GET /v2/<name>/referrers/<digest>` (OCI Distribution v1.1
//! end-12a, end-12b) and the `OCI-Subject` header on manifest `PUT`.
//!
//! CNCF Distribution 2.8 has no referrers API and sends no `OCI-Subject`, so
//! every test here asserts the spec and is skipped with
//! `DISCO_IT_REGISTRY=distribution`.

use serde_json::{Value, json};

use crate::support::oci::{
    self, Client, Desc, EMPTY_JSON, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, bytes,
    error_codes, sha256, skip_on_distribution,
};
use crate::support::registry::Registry;

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIG_CONFIG: &str = "application/vnd.example.sig.config.v1+json";
const BUNDLE: &str = "application/vnd.example.bundle.v1";

fn start() -> Option<(Registry, Client)> {
    let reg = Registry::start();
    if skip_on_distribution(&reg, "no referrers API / OCI-Subject") {
        return None;
    }
    let c = Client::new(&reg);
    Some((reg, c))
}

/// Referrer manifests of `subject` in `name`: an SBOM (artifactType set,
/// annotations), a signature (artifactType from its config media type) and
/// an index (artifactType set). Returns (bytes, media type, expected
/// descriptor JSON) for each, pushed by digest, asserting `OCI-Subject`.
async fn push_referrers(
    c: &Client,
    name: &str,
    subject: &Desc,
    seed: u64,
) -> Vec<(Vec<u8>, Value)> {
    c.push_blob(name, EMPTY_JSON).await;
    let empty = Desc::of(OCI_EMPTY, EMPTY_JSON);
    let layer = bytes(200, seed);
    c.push_blob(name, &layer).await;
    let layer_d = Desc::of("application/spdx+json", &layer);
    let sig_cfg = format!(r#"{{"signer":"test-{seed}"}}"#).into_bytes();
    c.push_blob(name, &sig_cfg).await;

    let sbom = oci::oci_manifest_ext(
        &empty,
        std::slice::from_ref(&layer_d),
        Some(SBOM),
        Some(subject),
        Some(
            r#"{"org.example.kind":"sbom","org.opencontainers.image.created":"2024-01-01T00:00:00Z"}"#,
        ),
    );
    let sig = oci::oci_manifest_ext(
        &Desc::of(SIG_CONFIG, &sig_cfg),
        std::slice::from_ref(&empty),
        None,
        Some(subject),
        None,
    );
    let bundle = oci::oci_index_ext(
        &[],
        &[],
        Some(BUNDLE),
        Some(subject),
        Some(r#"{"org.example.kind":"bundle"}"#),
    );
    let mut out = Vec::new();
    for (body, mt, at, ann) in [
        (
            sbom,
            OCI_MANIFEST,
            SBOM,
            Some(
                json!({"org.example.kind":"sbom","org.opencontainers.image.created":"2024-01-01T00:00:00Z"}),
            ),
        ),
        (sig, OCI_MANIFEST, SIG_CONFIG, None),
        (
            bundle,
            OCI_INDEX,
            BUNDLE,
            Some(json!({"org.example.kind":"bundle"})),
        ),
    ] {
        let digest = sha256(&body);
        let r = c.put_manifest(name, &digest, mt, &body).await;
        r.expect(201);
        assert_eq!(
            r.header("oci-subject"),
            subject.digest,
            "OCI-Subject on PUT of a {at} referrer"
        );
        let mut d =
            json!({"mediaType": mt, "digest": digest, "size": body.len(), "artifactType": at});
        if let Some(a) = ann {
            d["annotations"] = a;
        }
        out.push((body, d));
    }
    out
}

/// GET referrers; asserts the index shape and returns the descriptors
/// sorted by digest, with empty annotations normalised away.
async fn referrers(
    c: &Client,
    name: &str,
    digest: &str,
    query: &str,
) -> (Vec<Value>, crate::support::oci::Resp) {
    let r = c
        .get(&format!("/v2/{name}/referrers/{digest}{query}"))
        .await;
    r.expect(200);
    assert_eq!(r.header("content-type"), OCI_INDEX);
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2, "{v}");
    assert_eq!(v["mediaType"], OCI_INDEX, "{v}");
    let mut ds: Vec<Value> = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("\"manifests\" must be an array (even when empty): {v}"))
        .clone();
    for d in &mut ds {
        let o = d
            .as_object_mut()
            .unwrap_or_else(|| panic!("descriptor is not an object: {v}"));
        // Compare the fields the spec requires; empty annotations = none.
        o.retain(|k, _| {
            ["mediaType", "digest", "size", "artifactType", "annotations"].contains(&k.as_str())
        });
        if o.get("annotations")
            .is_some_and(|a| a.as_object().is_some_and(|a| a.is_empty()))
        {
            o.remove("annotations");
        }
    }
    ds.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    (ds, r)
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    v
}

#[tokio::test]
async fn referrers_list_every_manifest_with_that_subject() {
    let Some((_reg, c)) = start() else { return };
    let (subject, _) = c.push_image("r/app", Some("v1"), 1).await;
    let pushed = push_referrers(&c, "r/app", &subject, 10).await;
    let (got, r) = referrers(&c, "r/app", &subject.digest, "").await;
    assert!(
        !r.has("oci-filters-applied"),
        "OCI-Filters-Applied without a filter"
    );
    assert_eq!(got, sorted(pushed.iter().map(|(_, d)| d.clone()).collect()));
    // The referrers themselves are ordinary manifests.
    for (body, d) in &pushed {
        let digest = d["digest"].as_str().unwrap_or_default();
        assert_eq!(
            &c.get_manifest("r/app", digest).await.expect(200).body,
            body
        );
    }
}

#[tokio::test]
async fn artifact_type_filter_is_applied_and_announced() {
    let Some((_reg, c)) = start() else { return };
    let (subject, _) = c.push_image("r/filter", Some("v1"), 2).await;
    let pushed = push_referrers(&c, "r/filter", &subject, 20).await;
    for (at, idx) in [(SBOM, 0), (SIG_CONFIG, 1), (BUNDLE, 2)] {
        let q = format!("?artifactType={}", at.replace('+', "%2B"));
        let (got, r) = referrers(&c, "r/filter", &subject.digest, &q).await;
        assert_eq!(r.header("oci-filters-applied"), "artifactType");
        assert_eq!(got, vec![pushed[idx].1.clone()], "filter {at}");
    }
    let (got, r) = referrers(
        &c,
        "r/filter",
        &subject.digest,
        "?artifactType=application/vnd.none",
    )
    .await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert!(got.is_empty());
}

#[tokio::test]
async fn no_referrers_is_an_empty_index() {
    let Some((_reg, c)) = start() else { return };
    let (subject, _) = c.push_image("r/empty", Some("v1"), 3).await;
    let (got, _) = referrers(&c, "r/empty", &subject.digest, "").await;
    assert!(got.is_empty());
    // Unknown subject, and unknown repository: still an empty index.
    let (got, _) = referrers(&c, "r/empty", &sha256(b"no such manifest"), "").await;
    assert!(got.is_empty());
    let (got, _) = referrers(&c, "r/nowhere", &subject.digest, "").await;
    assert!(got.is_empty());
}

#[tokio::test]
async fn referrers_follow_manifest_push_and_delete() {
    let Some((_reg, c)) = start() else { return };
    let (subject, _) = c.push_image("r/live", Some("v1"), 4).await;
    let pushed = push_referrers(&c, "r/live", &subject, 40).await;
    let sbom_digest = pushed[0].1["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    c.delete(&format!("/v2/r/live/manifests/{sbom_digest}"))
        .await
        .expect(202);
    let (got, _) = referrers(&c, "r/live", &subject.digest, "").await;
    assert_eq!(
        got,
        sorted(pushed[1..].iter().map(|(_, d)| d.clone()).collect())
    );
    // Pushing it again brings it back.
    c.put_manifest("r/live", &sbom_digest, OCI_MANIFEST, &pushed[0].0)
        .await
        .expect(201);
    let (got, _) = referrers(&c, "r/live", &subject.digest, "").await;
    assert_eq!(got.len(), 3);
    // A referrer pushed by tag is listed too.
    c.push_blob("r/live", EMPTY_JSON).await;
    let tagged = oci::oci_manifest_ext(
        &Desc::of(OCI_EMPTY, EMPTY_JSON),
        &[Desc::of(OCI_EMPTY, EMPTY_JSON)],
        Some("application/vnd.example.tagged"),
        Some(&subject),
        None,
    );
    let r = c
        .put_manifest("r/live", "sig-tag", OCI_MANIFEST, &tagged)
        .await;
    r.expect(201);
    assert_eq!(r.header("oci-subject"), subject.digest);
    let (got, _) = referrers(&c, "r/live", &subject.digest, "").await;
    assert_eq!(got.len(), 4);
}

#[tokio::test]
async fn referrer_may_be_pushed_before_its_subject() {
    let Some((_reg, c)) = start() else { return };
    let cfg = oci::config(5);
    let m = oci::oci_manifest(&Desc::of(OCI_CONFIG, &cfg), &[]);
    let subject = Desc::of(OCI_MANIFEST, &m);
    let pushed = push_referrers(&c, "r/early", &subject, 50).await;
    let (got, _) = referrers(&c, "r/early", &subject.digest, "").await;
    assert_eq!(got.len(), pushed.len());
    c.push_blob("r/early", &cfg).await;
    c.push_manifest("r/early", "v1", OCI_MANIFEST, &m).await;
    let (got, _) = referrers(&c, "r/early", &subject.digest, "").await;
    assert_eq!(got, sorted(pushed.iter().map(|(_, d)| d.clone()).collect()));
}

#[tokio::test]
async fn referrers_are_scoped_to_the_repository() {
    let Some((_reg, c)) = start() else { return };
    let (subject, m) = c.push_image("r/one", Some("v1"), 6).await;
    c.push_image("r/two", None, 6).await;
    c.push_manifest("r/two", "v1", OCI_MANIFEST, &m).await;
    push_referrers(&c, "r/one", &subject, 60).await;
    let (got, _) = referrers(&c, "r/two", &subject.digest, "").await;
    assert!(
        got.is_empty(),
        "referrers leaked across repositories: {got:?}"
    );
}

#[tokio::test]
async fn manifest_without_subject_has_no_oci_subject_header() {
    let Some((_reg, c)) = start() else { return };
    let cfg = oci::config(7);
    c.push_blob("r/nosub", &cfg).await;
    let m = oci::oci_manifest(&Desc::of(OCI_CONFIG, &cfg), &[]);
    let r = c.put_manifest("r/nosub", "v1", OCI_MANIFEST, &m).await;
    r.expect(201);
    assert!(!r.has("oci-subject"));
}

#[tokio::test]
async fn referrers_of_a_malformed_digest_is_400() {
    let Some((_reg, c)) = start() else { return };
    c.push_image("r/bad", Some("v1"), 8).await;
    for bad in [
        "sha256:abc",
        "latest",
        "sha256:ZZZZ8f4e5ad1b4c0b5e8e2a6f4f6f3b0e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9",
    ] {
        let r = c.get(&format!("/v2/r/bad/referrers/{bad}")).await;
        assert!(
            r.status.as_u16() == 400 || r.status.as_u16() == 404,
            "{bad} → {}",
            r.status
        );
        let codes = error_codes(&r.body);
        if r.status.as_u16() == 400 {
            assert!(
                codes.iter().any(|c| c == "DIGEST_INVALID"),
                "{bad}: {codes:?}"
            );
        }
    }
}
