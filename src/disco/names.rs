//! Repository names disco gives meaning to: a CIDv1 (an image repository
//! published or cloned by content) and a manifest digest's hex (the image's
//! digest repository). Both are pull-only for clients.

use cid::Cid;

use crate::ipfs::cid_v1_string;
use crate::registry::RepoName;

/// What a repository name means to disco.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKind {
    /// A CIDv1: an image repository. `canonical` is true when the name is
    /// the CID's canonical text (base32, the form disco creates).
    Cid {
        /// The parsed CID.
        cid: Cid,
        /// The name is the canonical base32 text of the CID.
        canonical: bool,
    },
    /// 64 or 128 lower-case hex characters: a manifest digest repository.
    Digest,
    /// Any other name.
    Normal,
}

/// Classifies a repository name. Only single-component names are special.
pub fn classify(name: &RepoName) -> NameKind {
    let s = name.as_str();
    if s.contains('/') {
        return NameKind::Normal;
    }
    if is_digest_hex(s) {
        return NameKind::Digest;
    }
    match parse_cid_v1(s) {
        Some(cid) => NameKind::Cid {
            canonical: cid_v1_string(&cid) == s,
            cid,
        },
        None => NameKind::Normal,
    }
}

/// True for 64 (sha256) or 128 (sha512) lower-case hex characters.
pub fn is_digest_hex(s: &str) -> bool {
    matches!(s.len(), 64 | 128) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses `s` as a CIDv1 (any multibase); `None` for anything else,
/// including CIDv0.
pub fn parse_cid_v1(s: &str) -> Option<Cid> {
    let cid = Cid::try_from(s).ok()?;
    (cid.version() == cid::Version::V1).then_some(cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn classifies_names() {
        let cid = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354";
        match classify(&name(cid)) {
            NameKind::Cid { cid: c, canonical } => {
                assert!(canonical);
                assert_eq!(c.to_string(), cid);
            }
            other => panic!("{other:?}"),
        }
        // The same CID in base36 is a CID name, but not the canonical one.
        let base36 = Cid::try_from(cid)
            .unwrap()
            .to_string_of_base(cid::multibase::Base::Base36Lower)
            .unwrap();
        assert!(matches!(
            classify(&name(&base36)),
            NameKind::Cid {
                canonical: false,
                ..
            }
        ));
        let hex = "a".repeat(64);
        assert_eq!(classify(&name(&hex)), NameKind::Digest);
        assert_eq!(classify(&name(&"0".repeat(128))), NameKind::Digest);
        for normal in [
            "library/busybox",
            &"a".repeat(63),
            &"a".repeat(65),
            &format!("x/{hex}"),
            &format!("x/{cid}"),
            "bafy",
            // A CIDv0 is not lower case, so it is never a valid name; its
            // lower-cased text is no CID.
            "qmt78zsubmus4z925wzfrqq1qhaj56dqatfymuf7f8ff5o",
        ] {
            assert_eq!(classify(&name(normal)), NameKind::Normal, "{normal}");
        }
    }
}
