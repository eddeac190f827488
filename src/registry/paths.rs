//! Storage paths in CNCF Distribution's on-disk layout, so a Distribution
//! storage directory is readable as is:
//!
//! ```text
//! /docker/registry/v2/blobs/<alg>/<hex[0..2]>/<hex>/data
//! /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//! /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//! /docker/registry/v2/repositories/<name>/_uploads/<id>/{data,startedat,hashstates/...}
//! ```
//!
//! disco adds one directory Distribution ignores, the referrers index:
//! `repositories/<name>/_referrers/<subject alg>/<subject hex>/<alg>/<hex>/link`.

use super::digest::Digest;
use super::name::RepoName;

/// Root of the layout.
pub const ROOT: &str = "/docker/registry/v2";
/// Parent of all repositories.
pub const REPOSITORIES: &str = "/docker/registry/v2/repositories";

/// `blobs/<alg>/<xx>/<hex>` (the blob's directory).
pub fn blob_dir(d: &Digest) -> String {
    format!(
        "{ROOT}/blobs/{}/{}/{}",
        d.algorithm().as_str(),
        &d.hex()[..2],
        d.hex()
    )
}

/// `blobs/<alg>/<xx>/<hex>/data`.
pub fn blob_data(d: &Digest) -> String {
    format!("{}/data", blob_dir(d))
}

/// `repositories/<name>`.
pub fn repo(name: &RepoName) -> String {
    format!("{REPOSITORIES}/{name}")
}

/// `repositories/<name>/_layers/<alg>/<hex>/link`.
pub fn layer_link(name: &RepoName, d: &Digest) -> String {
    format!(
        "{}/_layers/{}/{}/link",
        repo(name),
        d.algorithm().as_str(),
        d.hex()
    )
}

/// `repositories/<name>/_manifests/revisions/<alg>/<hex>/link`.
pub fn revision_link(name: &RepoName, d: &Digest) -> String {
    format!(
        "{}/_manifests/revisions/{}/{}/link",
        repo(name),
        d.algorithm().as_str(),
        d.hex()
    )
}

/// `repositories/<name>/_manifests/tags`.
pub fn tags_dir(name: &RepoName) -> String {
    format!("{}/_manifests/tags", repo(name))
}

/// `repositories/<name>/_manifests/tags/<tag>`.
pub fn tag_dir(name: &RepoName, tag: &str) -> String {
    format!("{}/{tag}", tags_dir(name))
}

/// `repositories/<name>/_manifests/tags/<tag>/current/link`.
pub fn tag_current_link(name: &RepoName, tag: &str) -> String {
    format!("{}/current/link", tag_dir(name, tag))
}

/// `repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link`.
pub fn tag_index_link(name: &RepoName, tag: &str, d: &Digest) -> String {
    format!(
        "{}/index/{}/{}/link",
        tag_dir(name, tag),
        d.algorithm().as_str(),
        d.hex()
    )
}

/// `repositories/<name>/_uploads/<id>`.
pub fn upload_dir(name: &RepoName, id: &str) -> String {
    format!("{}/_uploads/{id}", repo(name))
}

/// `repositories/<name>/_uploads/<id>/data`.
pub fn upload_data(name: &RepoName, id: &str) -> String {
    format!("{}/data", upload_dir(name, id))
}

/// `repositories/<name>/_uploads/<id>/startedat`.
pub fn upload_started_at(name: &RepoName, id: &str) -> String {
    format!("{}/startedat", upload_dir(name, id))
}

/// Saved SHA-256 state of an upload after `offset` bytes. The directory
/// name differs from Distribution's (`hashstates/sha256`, Go's format) so
/// neither misreads the other's state.
pub fn upload_hash_state(name: &RepoName, id: &str, offset: u64) -> String {
    format!("{}/hashstates/disco-sha256/{offset}", upload_dir(name, id))
}

/// Directory of saved hash states of an upload.
pub fn upload_hash_states(name: &RepoName, id: &str) -> String {
    format!("{}/hashstates/disco-sha256", upload_dir(name, id))
}

/// `repositories/<name>/_referrers/<alg>/<hex>` for a subject.
pub fn referrers_dir(name: &RepoName, subject: &Digest) -> String {
    format!(
        "{}/_referrers/{}/{}",
        repo(name),
        subject.algorithm().as_str(),
        subject.hex()
    )
}

/// Marker written once the referrers index of a repository covers every
/// manifest revision (including those written by CNCF Distribution, which
/// keeps no such index).
pub fn referrers_marker(name: &RepoName) -> String {
    format!("{}/_referrers/indexed", repo(name))
}

/// `repositories/<name>/_manifests/revisions`.
pub fn revisions_dir(name: &RepoName) -> String {
    format!("{}/_manifests/revisions", repo(name))
}

/// Link of one referrer of a subject.
pub fn referrer_link(name: &RepoName, subject: &Digest, referrer: &Digest) -> String {
    format!(
        "{}/{}/{}/link",
        referrers_dir(name, subject),
        referrer.algorithm().as_str(),
        referrer.hex()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_layout() {
        let n = RepoName::parse("library/busybox").unwrap();
        let d = Digest::sha256(b"");
        let h = d.hex();
        assert_eq!(
            blob_data(&d),
            format!("/docker/registry/v2/blobs/sha256/e3/{h}/data")
        );
        assert_eq!(
            layer_link(&n, &d),
            format!("/docker/registry/v2/repositories/library/busybox/_layers/sha256/{h}/link")
        );
        assert_eq!(
            tag_current_link(&n, "latest"),
            "/docker/registry/v2/repositories/library/busybox/_manifests/tags/latest/current/link"
        );
        assert_eq!(
            tag_index_link(&n, "latest", &d),
            format!(
                "/docker/registry/v2/repositories/library/busybox/_manifests/tags/latest/index/sha256/{h}/link"
            )
        );
        assert_eq!(
            revision_link(&n, &d),
            format!(
                "/docker/registry/v2/repositories/library/busybox/_manifests/revisions/sha256/{h}/link"
            )
        );
        assert_eq!(
            upload_data(&n, "u"),
            "/docker/registry/v2/repositories/library/busybox/_uploads/u/data"
        );
    }
}
