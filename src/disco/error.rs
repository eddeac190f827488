//! Errors of publishing and cloning, and how the registry answers them.

use std::time::Duration;

use crate::ipfs::IpfsError;
use crate::registry::{Digest, ErrorCode, RegistryError};
use crate::storage::StorageError;

/// A publishing or cloning failure.
#[derive(Debug, thiserror::Error)]
pub enum DiscoError {
    /// The content could not be found on the IPFS network in time.
    #[error("{what} was not found on the IPFS network within {}", humantime::format_duration(*.timeout))]
    NotFound {
        /// What was looked for (`image <cid>`, `blob <digest> (<cid>)`).
        what: String,
        /// How long it was looked for.
        timeout: Duration,
    },
    /// The content at a CID is not a valid disco image.
    #[error("{cid} is not a valid disco image: {reason}")]
    Invalid {
        /// The image repository's CID.
        cid: String,
        /// What is wrong.
        reason: String,
    },
    /// Too many clones are running; this one did not get a slot in time.
    #[error("too many clones in progress ({0} at once); retry later")]
    Busy(usize),
    /// The IPFS backend failed.
    #[error("IPFS: {0}")]
    Ipfs(#[from] IpfsError),
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The registry failed.
    #[error("{0}")]
    Registry(#[from] RegistryError),
    /// The operation needs IPFS and the registry runs from its cache alone
    /// (`storage.ipfs.cacheonly`).
    #[error(
        "this registry runs from its cache alone (storage.ipfs.cacheonly): it has no IPFS node"
    )]
    NoIpfs,
}

impl DiscoError {
    /// An [`DiscoError::Invalid`] for the image at `cid`.
    pub fn invalid(cid: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        DiscoError::Invalid {
            cid: cid.to_string(),
            reason: reason.into(),
        }
    }

    /// The registry error a client gets for a failed clone of `cid`:
    /// content not found or invalid → 404 `MANIFEST_UNKNOWN` saying why;
    /// backend down → 503 `UNAVAILABLE`; anything else → 500.
    pub fn clone_response(&self, cid: &str) -> RegistryError {
        self.response_as(ErrorCode::ManifestUnknown, "manifest unknown", cid)
    }

    /// The registry error a blob download gets when the clone of `cid`
    /// it waited for failed: as [`DiscoError::clone_response`], with
    /// `BLOB_UNKNOWN` for content not found or invalid.
    pub fn blob_response(&self, cid: &str, digest: &Digest) -> RegistryError {
        self.response_as(
            ErrorCode::BlobUnknown,
            &format!("blob unknown: {digest}"),
            cid,
        )
    }

    fn response_as(&self, code: ErrorCode, unknown: &str, cid: &str) -> RegistryError {
        match self {
            DiscoError::NotFound { .. } => RegistryError::new(code, format!("{unknown}: {self}"))
                .with_detail(serde_json::json!({
                    "cid": cid,
                    "reason": "content not found on the IPFS network",
                })),
            DiscoError::Invalid { reason, .. } => {
                RegistryError::new(code, format!("{unknown}: {self}")).with_detail(
                    serde_json::json!({
                        "cid": cid,
                        "reason": format!("not a valid disco image: {reason}"),
                    }),
                )
            }
            DiscoError::Busy(_)
            | DiscoError::Ipfs(IpfsError::Unavailable(_))
            | DiscoError::Storage(StorageError::Unavailable(_)) => RegistryError::new(
                ErrorCode::Unavailable,
                format!("cloning {cid} failed: {self}"),
            ),
            DiscoError::Registry(e) => e.clone(),
            _ => RegistryError::internal(format!("cloning {cid} failed: {self}")),
        }
    }

    /// The registry error a manifest push gets when publishing fails.
    pub fn publish_response(&self) -> RegistryError {
        match self {
            DiscoError::Registry(e) => e.clone(),
            DiscoError::Ipfs(IpfsError::Unavailable(_))
            | DiscoError::Storage(StorageError::Unavailable(_)) => RegistryError::new(
                ErrorCode::Unavailable,
                format!("publishing the image failed: {self}"),
            ),
            _ => RegistryError::internal(format!("publishing the image failed: {self}")),
        }
    }
}

/// Result alias of the disco layer.
pub type Result<T, E = DiscoError> = std::result::Result<T, E>;
