//! The registry's error type: every failure maps to one OCI error code and
//! HTTP status (rendered by `crate::http::error`).

use crate::storage::StorageError;

/// OCI Distribution error codes (spec v1.1, plus Distribution's extras).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    RangeInvalid,
    PaginationNumberInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unavailable,
    Unknown,
}

impl ErrorCode {
    /// The code string of the error JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }

    /// The HTTP status this code is answered with by default.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::PaginationNumberInvalid => 400,
            ErrorCode::RangeInvalid => 416,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Unknown => 500,
        }
    }
}

/// A registry failure: code, HTTP status, message and optional detail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct RegistryError {
    /// OCI error code.
    pub code: ErrorCode,
    /// HTTP status (usually `code.status()`).
    pub status: u16,
    /// Human-readable message.
    pub message: String,
    /// Optional structured detail.
    pub detail: Option<serde_json::Value>,
}

impl RegistryError {
    /// An error with the code's default status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status: code.status(),
            message: message.into(),
            detail: None,
        }
    }

    /// Adds a detail value.
    pub fn with_detail(mut self, detail: impl Into<serde_json::Value>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// `BLOB_UNKNOWN`.
    pub fn blob_unknown(digest: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::BlobUnknown, "blob unknown to registry")
            .with_detail(serde_json::json!({ "digest": digest.to_string() }))
    }

    /// `MANIFEST_UNKNOWN`.
    pub fn manifest_unknown(reference: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::ManifestUnknown, "manifest unknown")
            .with_detail(serde_json::json!({ "reference": reference.to_string() }))
    }

    /// `NAME_UNKNOWN`.
    pub fn name_unknown(name: &str) -> Self {
        Self::new(
            ErrorCode::NameUnknown,
            "repository name not known to registry",
        )
        .with_detail(serde_json::json!({ "name": name }))
    }

    /// `BLOB_UPLOAD_UNKNOWN`.
    pub fn upload_unknown(id: &str) -> Self {
        Self::new(
            ErrorCode::BlobUploadUnknown,
            "blob upload unknown to registry",
        )
        .with_detail(serde_json::json!({ "uuid": id }))
    }

    /// `DIGEST_INVALID` with a reason.
    pub fn digest_invalid(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::DigestInvalid, reason)
    }

    /// `MANIFEST_INVALID` with a reason.
    pub fn manifest_invalid(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::ManifestInvalid, reason)
    }

    /// `UNSUPPORTED` (405).
    pub fn unsupported(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unsupported, reason)
    }

    /// `DENIED` (403).
    pub fn denied(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::Denied, reason)
    }

    /// `UNKNOWN` (500) for internal failures.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unknown, reason)
    }
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::Unavailable(_) | StorageError::Timeout(_) => {
                RegistryError::new(ErrorCode::Unavailable, format!("storage unavailable: {e}"))
            }
            _ => RegistryError::internal(e.to_string()),
        }
    }
}

/// Result alias for registry operations.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
