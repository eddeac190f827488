//! Parsing and validating manifests: Docker schema 2 manifests and manifest
//! lists, OCI image manifests and indexes. Schema 1 is refused.

use serde::Deserialize;
use serde_json::Value;

use super::digest::Digest;
use super::error::{RegistryError, Result};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 1 (refused).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker schema 1 (refused).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type disco stores.
pub const SUPPORTED: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// Image manifest or index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Config plus layers.
    Image,
    /// A list of manifests.
    Index,
}

/// Kind of a supported media type.
pub fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        DOCKER_MANIFEST | OCI_MANIFEST => Some(Kind::Image),
        DOCKER_MANIFEST_LIST | OCI_INDEX => Some(Kind::Index),
        _ => None,
    }
}

/// A content descriptor, as referenced by a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// Media type of the target.
    pub media_type: String,
    /// Digest of the target.
    pub digest: Digest,
    /// Size of the target in bytes.
    pub size: u64,
    /// URLs of non-distributable content.
    pub urls: Vec<String>,
    /// Artifact type (OCI 1.1).
    pub artifact_type: Option<String>,
    /// Annotations, as given.
    pub annotations: Option<Value>,
    /// Platform, as given (index entries).
    pub platform: Option<Value>,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its media type (one of [`SUPPORTED`]).
    pub media_type: &'static str,
    /// Image or index.
    pub kind: Kind,
    /// Config blob (images).
    pub config: Option<Descriptor>,
    /// Layers (images).
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// Subject (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// `artifactType` of the manifest itself.
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: Option<Value>,
}

impl Manifest {
    /// The artifact type the referrers API reports: `artifactType`, else the
    /// config's media type for image manifests.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    #[serde(default)]
    urls: Option<Vec<String>>,
    artifact_type: Option<String>,
    annotations: Option<Value>,
    platform: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    artifact_type: Option<String>,
    annotations: Option<Value>,
    // Schema 1 markers.
    fs_layers: Option<Value>,
    signatures: Option<Value>,
}

fn descriptor(raw: RawDescriptor, what: &str) -> Result<Descriptor> {
    let invalid = |why: &str| RegistryError::manifest_invalid(format!("{what}: {why}"));
    let digest: Digest = raw
        .digest
        .as_deref()
        .ok_or_else(|| invalid("missing digest"))?
        .parse()
        .map_err(|e: RegistryError| invalid(&e.message))?;
    let size = raw.size.ok_or_else(|| invalid("missing size"))?;
    let size = u64::try_from(size).map_err(|_| invalid("negative size"))?;
    let media_type = raw.media_type.ok_or_else(|| invalid("missing mediaType"))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
        urls: raw.urls.unwrap_or_default(),
        artifact_type: raw.artifact_type,
        annotations: raw.annotations,
        platform: raw.platform,
    })
}

/// Strips parameters from a Content-Type value.
pub fn bare_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

fn is_schema1(mt: &str) -> bool {
    mt == DOCKER_SCHEMA1 || mt == DOCKER_SCHEMA1_SIGNED
}

fn schema1_error() -> RegistryError {
    RegistryError::manifest_invalid(
        "Docker schema 1 manifests are not supported; push with a client that writes Docker schema 2 or OCI manifests",
    )
}

/// Parses and validates a manifest body sent with `content_type`.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest> {
    let header = content_type.map(bare_media_type).filter(|h| !h.is_empty());
    if header.is_some_and(is_schema1) {
        return Err(schema1_error());
    }
    let raw: RawManifest = serde_json::from_slice(body)
        .map_err(|e| RegistryError::manifest_invalid(format!("manifest is not valid JSON: {e}")))?;
    if raw.schema_version == Some(1) || raw.fs_layers.is_some() || raw.signatures.is_some() {
        return Err(schema1_error());
    }
    if raw.schema_version != Some(2) {
        return Err(RegistryError::manifest_invalid("schemaVersion must be 2"));
    }
    if let Some(mt) = raw.media_type.as_deref()
        && is_schema1(mt)
    {
        return Err(schema1_error());
    }
    // The header counts only if it names a manifest type; generic JSON or
    // octet-stream defers to the body.
    let header_manifest =
        header.filter(|h| SUPPORTED.contains(h) || h.starts_with("application/vnd."));
    let media_type: String = match (raw.media_type.as_deref(), header_manifest) {
        (Some(body_mt), Some(h)) if body_mt != h => {
            return Err(RegistryError::manifest_invalid(format!(
                "mediaType {body_mt:?} does not match Content-Type {h:?}"
            )));
        }
        (Some(body_mt), _) => body_mt.to_string(),
        (None, Some(h)) => h.to_string(),
        (None, None) => {
            if raw.manifests.is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        }
    };
    let media_type: &'static str = SUPPORTED
        .iter()
        .copied()
        .find(|s| *s == media_type)
        .ok_or_else(|| {
            RegistryError::manifest_invalid(format!(
                "unsupported manifest media type {media_type:?}"
            ))
        })?;
    let kind = kind_of(media_type).unwrap_or(Kind::Image);
    let subject = raw.subject.map(|s| descriptor(s, "subject")).transpose()?;
    let mut m = Manifest {
        media_type,
        kind,
        config: None,
        layers: Vec::new(),
        manifests: Vec::new(),
        subject,
        artifact_type: raw.artifact_type,
        annotations: raw.annotations,
    };
    match kind {
        Kind::Image => {
            if raw.manifests.is_some() {
                return Err(RegistryError::manifest_invalid(
                    "an image manifest cannot list manifests",
                ));
            }
            let config = raw
                .config
                .ok_or_else(|| RegistryError::manifest_invalid("missing config"))?;
            m.config = Some(descriptor(config, "config")?);
            let layers = raw
                .layers
                .ok_or_else(|| RegistryError::manifest_invalid("missing layers"))?;
            m.layers = layers
                .into_iter()
                .enumerate()
                .map(|(i, l)| descriptor(l, &format!("layers[{i}]")))
                .collect::<Result<_>>()?;
        }
        Kind::Index => {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(RegistryError::manifest_invalid(
                    "an index cannot have config or layers",
                ));
            }
            let list = raw
                .manifests
                .ok_or_else(|| RegistryError::manifest_invalid("missing manifests"))?;
            m.manifests = list
                .into_iter()
                .enumerate()
                .map(|(i, d)| descriptor(d, &format!("manifests[{i}]")))
                .collect::<Result<_>>()?;
        }
    }
    Ok(m)
}

/// Whether an `Accept` header admits `media_type`. No header, an empty one,
/// or wildcards admit everything.
pub fn accepts(accept: &[&str], media_type: &str) -> bool {
    let mut any = false;
    for value in accept {
        for item in value.split(',') {
            let t = bare_media_type(item);
            if t.is_empty() {
                continue;
            }
            any = true;
            if t == media_type || t == "*/*" || t == "application/*" || t == "application/json" {
                return true;
            }
        }
    }
    !any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::sha256(&[n]).to_string()
    }

    #[test]
    fn oci_manifest() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5}}}}"#,
            d(1),
            d(2),
            d(3)
        );
        let m = parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, Kind::Image);
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.subject.unwrap().digest.to_string(), d(3));
        assert_eq!(m.config.unwrap().size, 2);
    }

    #[test]
    fn infers_and_checks_media_type() {
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}]}}"#,
            d(1)
        );
        assert_eq!(parse(idx.as_bytes(), None).unwrap().media_type, OCI_INDEX);
        assert_eq!(
            parse(idx.as_bytes(), Some(OCI_INDEX)).unwrap().media_type,
            OCI_INDEX
        );
        let mismatched =
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(parse(mismatched.as_bytes(), Some(DOCKER_MANIFEST_LIST)).is_err());
        assert!(parse(b"{\"schemaVersion\":1,\"fsLayers\":[]}", None).is_err());
        assert!(parse(b"{}", Some(DOCKER_SCHEMA1_SIGNED)).is_err());
        assert!(parse(b"not json", None).is_err());
        assert!(parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None).is_err());
        let bad_digest = r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}"#;
        assert!(parse(bad_digest.as_bytes(), None).is_err());
    }

    #[test]
    fn accept_header() {
        assert!(accepts(&[], OCI_INDEX));
        assert!(accepts(&[""], OCI_INDEX));
        assert!(accepts(
            &[
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
            ],
            OCI_INDEX
        ));
        assert!(!accepts(&[DOCKER_MANIFEST], OCI_INDEX));
        assert!(accepts(&[DOCKER_MANIFEST, "*/*;q=0.1"], OCI_INDEX));
    }
}
