//! Maps AWS SDK errors onto [`StorageError`].

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::storage::StorageError;

/// Turns an SDK error for `path` into a [`StorageError`]:
/// missing keys are `PathNotFound`, connection failures and exhausted 5xx
/// or throttling retries are `Unavailable`, timeouts are `Timeout`, and
/// rejected credentials get a message that says so.
pub(crate) fn map_sdk_error<E, R>(path: &str, bucket: &str, err: SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match &err {
        SdkError::DispatchFailure(d) if d.is_timeout() => StorageError::Timeout(format!(
            "S3 request for {path}: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::DispatchFailure(d) if d.is_io() => StorageError::Unavailable(format!(
            "cannot reach S3 for {path}: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::DispatchFailure(d) => {
            // Credential resolution failures surface here as "other"
            // connector errors; the SDK does not export their type.
            let debug = format!("{:?}", d.as_connector_error());
            if debug.contains("CredentialsNotLoaded") {
                StorageError::Other(format!(
                    "no S3 credentials: set storage.s3.accesskey and storage.s3.secretkey, or \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or another AWS credential \
                     source): {}",
                    DisplayErrorContext(&err)
                ))
            } else if debug.contains("Credentials") {
                StorageError::Other(format!(
                    "S3 credentials could not be loaded: {}",
                    DisplayErrorContext(&err)
                ))
            } else {
                StorageError::Unavailable(format!(
                    "cannot send the S3 request for {path}: {}",
                    DisplayErrorContext(&err)
                ))
            }
        }
        SdkError::TimeoutError(_) => StorageError::Timeout(format!(
            "S3 request for {path}: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            let status = service.raw().status();
            classify(path, bucket, code, message, status)
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status();
            if status >= 500 {
                StorageError::Unavailable(format!(
                    "S3 answered {status} for {path}: {}",
                    DisplayErrorContext(&err)
                ))
            } else {
                StorageError::Other(format!(
                    "unreadable S3 response for {path}: {}",
                    DisplayErrorContext(&err)
                ))
            }
        }
        _ => StorageError::Other(format!(
            "S3 request for {path}: {}",
            DisplayErrorContext(&err)
        )),
    }
}

/// Classifies an S3 error response by code and status.
pub(crate) fn classify(
    path: &str,
    bucket: &str,
    code: &str,
    message: &str,
    status: u16,
) -> StorageError {
    let detail = if message.is_empty() {
        format!("{code} (HTTP {status})")
    } else {
        format!("{code}: {message} (HTTP {status})")
    };
    match code {
        "NoSuchKey" | "NotFound" => StorageError::PathNotFound(path.to_string()),
        "NoSuchBucket" => {
            StorageError::Other(format!("S3 bucket {bucket:?} does not exist: {detail}"))
        }
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidToken"
        | "ExpiredToken"
        | "InvalidClientTokenId" => StorageError::Other(format!(
            "S3 rejected the credentials (check storage.s3.accesskey/secretkey or the AWS \
             credential environment): {detail}"
        )),
        "AccessDenied" | "Forbidden" => StorageError::Other(format!(
            "S3 denied access to bucket {bucket:?} for {path} (credentials wrong or lacking \
             permission): {detail}"
        )),
        "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout" => {
            StorageError::Unavailable(format!("S3 kept failing for {path}: {detail}"))
        }
        _ if status == 404 && code.is_empty() => StorageError::PathNotFound(path.to_string()),
        _ if status == 403 => StorageError::Other(format!(
            "S3 denied access to bucket {bucket:?} for {path} (credentials wrong or lacking \
             permission): {detail}"
        )),
        _ if status >= 500 => {
            StorageError::Unavailable(format!("S3 kept failing for {path}: {detail}"))
        }
        _ => StorageError::Other(format!("S3 error for {path}: {detail}")),
    }
}

/// Access to the HTTP status of a raw response.
pub(crate) trait HasStatus {
    /// The HTTP status code.
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// The S3 error code of an SDK error, if the service answered one.
pub(crate) fn error_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// The HTTP status of a service error, if any.
pub(crate) fn error_status<E, R: HasStatus>(err: &SdkError<E, R>) -> Option<u16> {
    match err {
        SdkError::ServiceError(s) => Some(s.raw().status()),
        SdkError::ResponseError(r) => Some(r.raw().status()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(classify("/p", "b", "NoSuchKey", "", 404).is_not_found());
        assert!(classify("/p", "b", "", "", 404).is_not_found());
        assert!(matches!(
            classify("/p", "b", "SlowDown", "", 503),
            StorageError::Unavailable(_)
        ));
        assert!(matches!(
            classify("/p", "b", "Weird", "", 502),
            StorageError::Unavailable(_)
        ));
        let e = classify("/p", "b", "InvalidAccessKeyId", "bad key", 403).to_string();
        assert!(e.contains("credentials") && e.contains("bad key"), "{e}");
        let e = classify("/p", "bkt", "NoSuchBucket", "", 404).to_string();
        assert!(e.contains("\"bkt\" does not exist"), "{e}");
        assert!(!classify("/p", "b", "NoSuchBucket", "", 404).is_not_found());
    }
}
