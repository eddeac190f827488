//! Which node of a [`Router`](super::Router) holds an MFS path.
//!
//! Content is placed by a stable hash of its identity, found in the path
//! (CNCF Distribution's layout):
//! - `.../repositories/<name>/_uploads/<id>/...` and `.../_uploads/<id>/...`:
//!   the upload id;
//! - `.../repositories/<name>/_<anything>/...`: the repository name (which
//!   may span several components, e.g. `library/alpine`);
//! - `.../blobs/<algorithm>/<2 hex>/<digest>/...`: the digest.
//!
//! Paths without an identity (the shared parents `/`, `.../repositories`,
//! `.../blobs/sha256/ab`, or anything outside the layout) are [`Route::Shared`]:
//! listings merge all nodes, and new files there go to the first node.
//!
//! The node is `sha256(identity)`'s first 8 bytes (big endian) modulo the
//! number of nodes.

use sha2::{Digest, Sha256};

/// Where a path lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On exactly one node, chosen by this identity.
    Keyed(String),
    /// Possibly on every node (a shared parent directory, or a path outside
    /// the registry layout).
    Shared,
}

/// The route of an MFS path.
pub fn route(path: &str) -> Route {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, comp) in comps.iter().enumerate() {
        match *comp {
            "_uploads" => {
                if let Some(id) = comps.get(i + 1) {
                    return Route::Keyed((*id).to_string());
                }
            }
            "blobs" => {
                if let (Some(_alg), Some(prefix), Some(digest)) =
                    (comps.get(i + 1), comps.get(i + 2), comps.get(i + 3))
                    && prefix.len() == 2
                    && digest.starts_with(prefix)
                {
                    return Route::Keyed((*digest).to_string());
                }
            }
            "repositories" => {
                let rest = &comps[i + 1..];
                if let Some(j) = rest.iter().position(|c| c.starts_with('_')) {
                    if j == 0 {
                        continue;
                    }
                    if rest[j] == "_uploads" {
                        if let Some(id) = rest.get(j + 1) {
                            return Route::Keyed((*id).to_string());
                        }
                        // `<name>/_uploads` itself is shared by all uploads.
                        return Route::Shared;
                    }
                    return Route::Keyed(rest[..j].join("/"));
                }
                return Route::Shared;
            }
            _ => {}
        }
    }
    Route::Shared
}

/// The node index (`0..nodes`) for an identity.
pub fn node_for(identity: &str, nodes: usize) -> usize {
    if nodes <= 1 {
        return 0;
    }
    let h = Sha256::digest(identity.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(first) % nodes as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(s: &str) -> Route {
        Route::Keyed(s.to_string())
    }

    #[test]
    fn identities() {
        let v2 = "/root/docker/registry/v2";
        assert_eq!(
            route(&format!(
                "{v2}/repositories/library/alpine/_layers/sha256/abcd/link"
            )),
            keyed("library/alpine")
        );
        assert_eq!(
            route(&format!("{v2}/repositories/library/alpine/_manifests")),
            keyed("library/alpine")
        );
        assert_eq!(
            route(&format!("{v2}/repositories/a/_uploads/u-1/data")),
            keyed("u-1")
        );
        assert_eq!(
            route(&format!("{v2}/repositories/a/_uploads/u-1")),
            keyed("u-1")
        );
        assert_eq!(
            route(&format!("{v2}/repositories/a/_uploads")),
            Route::Shared
        );
        assert_eq!(
            route(&format!("{v2}/blobs/sha256/ab/abcdef/data")),
            keyed("abcdef")
        );
        assert_eq!(
            route(&format!("{v2}/blobs/sha256/ab/abcdef")),
            keyed("abcdef")
        );
        assert_eq!(route("/_uploads/u1/data"), keyed("u1"));
        for shared in [
            "/",
            "/root",
            v2,
            "/root/docker/registry/v2/repositories",
            "/root/docker/registry/v2/repositories/library",
            "/root/docker/registry/v2/repositories/library/alpine",
            "/root/docker/registry/v2/blobs/sha256/ab",
            "/a/b/c",
            // A root directory named `blobs` is not mistaken for the layout.
            "/blobs/docker/registry/v2",
        ] {
            assert_eq!(route(shared), Route::Shared, "{shared}");
        }
    }

    #[test]
    fn node_choice_is_stable_and_spread() {
        assert_eq!(node_for("x", 1), 0);
        let a = node_for("library/alpine", 3);
        assert_eq!(a, node_for("library/alpine", 3));
        let mut counts = [0usize; 3];
        for i in 0..300 {
            counts[node_for(&format!("digest{i}"), 3)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
    }
}
