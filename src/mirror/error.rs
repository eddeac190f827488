//! Mirror failures and the OCI errors clients get for them.

use crate::registry::{ErrorCode, RegistryError};

/// Why the mirror could not serve something.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The upstream cannot be reached or answered with a server error.
    #[error("upstream {upstream} unavailable: {why}")]
    Unavailable {
        /// Upstream name.
        upstream: String,
        /// What happened.
        why: String,
    },
    /// The upstream refused our credentials (or we have none it accepts).
    #[error("upstream {upstream} refused authentication: {why}")]
    Auth {
        /// Upstream name.
        upstream: String,
        /// What happened.
        why: String,
    },
    /// The upstream sent bytes that do not match their digest.
    #[error("upstream {upstream} sent {what} that does not match its digest: {why}")]
    Corrupt {
        /// Upstream name.
        upstream: String,
        /// The manifest or blob.
        what: String,
        /// What differed.
        why: String,
    },
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl MirrorError {
    /// The error a client gets: 503 `UNAVAILABLE` when the upstream is
    /// down, 502 when it refuses us or sends corrupt content.
    pub fn response(&self) -> RegistryError {
        match self {
            MirrorError::Registry(e) => e.clone(),
            MirrorError::Unavailable { upstream, .. } => {
                RegistryError::new(ErrorCode::Unavailable, self.to_string())
                    .with_detail(serde_json::json!({ "upstream": upstream }))
            }
            MirrorError::Auth { upstream, .. } | MirrorError::Corrupt { upstream, .. } => {
                RegistryError::new(ErrorCode::Unavailable, self.to_string())
                    .with_status(502)
                    .with_detail(serde_json::json!({ "upstream": upstream }))
            }
        }
    }
}

impl From<crate::storage::StorageError> for MirrorError {
    fn from(e: crate::storage::StorageError) -> Self {
        MirrorError::Registry(e.into())
    }
}
