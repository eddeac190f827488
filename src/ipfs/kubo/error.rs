//! Turning Kubo RPC error answers into typed [`IpfsError`]s.
//!
//! Kubo answers errors with HTTP 500 (400 for bad arguments) and a JSON body
//! `{"Message": ..., "Code": ..., "Type": "error"}`; a stream that fails after
//! a 200 carries the same object in the `X-Stream-Error` trailer. `Code` is 0
//! for almost every error, not-found included, so the kind is recognised by
//! the message, never by `Code`.

use serde::Deserialize;

use crate::ipfs::IpfsError;

/// The error object of a Kubo RPC answer. js-ipfs (hapi) sometimes answers
/// `{"statusCode","error","message"}` instead; both are accepted.
#[derive(Debug, Default, Deserialize)]
struct RpcErrorBody {
    #[serde(rename = "Message", alias = "message", default)]
    message: Option<String>,
    #[serde(rename = "error", default)]
    error: Option<String>,
}

/// The message of an error body (JSON or plain text), trimmed and bounded.
pub fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<RpcErrorBody>(body) {
        Ok(RpcErrorBody {
            message: Some(m), ..
        }) => m,
        Ok(RpcErrorBody { error: Some(e), .. }) => e,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    let mut end = text.len().min(1000);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Classifies an error message from a Kubo-RPC node. `status` is the HTTP
/// status (`None` for trailer errors); 400 marks client errors.
pub fn classify(status: Option<u16>, message: &str) -> IpfsError {
    let m = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    let msg = message.to_string();
    if has(&[
        "timed out",
        "timeout",
        "deadline exceeded",
        "context canceled",
    ]) {
        IpfsError::Timeout(msg)
    } else if has(&[
        "already has entry",
        "already exists",
        "file exists",
        "directory already has",
    ]) {
        IpfsError::AlreadyExists(msg)
    } else if has(&["not a directory", "not a unixfs node", "is not a directory"]) {
        IpfsError::NotADirectory(msg)
    } else if has(&[
        "not a file",
        "is a directory",
        "was not a file",
        "cannot read directory",
        "this dag node is a directory",
    ]) {
        IpfsError::NotAFile(msg)
    } else if has(&[
        "does not exist",
        "did not exist",
        "no link named",
        "not found",
        "could not find",
        "not pinned",
        "no such file",
    ]) {
        IpfsError::NotFound(msg)
    } else if status == Some(400)
        || has(&[
            "invalid",
            "failed to parse",
            "must start with",
            "unknown codec",
            "malformed",
        ])
    {
        IpfsError::Invalid(msg)
    } else {
        IpfsError::Other(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(msg: &str) -> &'static str {
        match classify(Some(500), msg) {
            IpfsError::NotFound(_) => "notfound",
            IpfsError::AlreadyExists(_) => "exists",
            IpfsError::NotADirectory(_) => "notdir",
            IpfsError::NotAFile(_) => "notfile",
            IpfsError::Timeout(_) => "timeout",
            IpfsError::Unavailable(_) => "unavailable",
            IpfsError::Invalid(_) => "invalid",
            IpfsError::Other(_) => "other",
        }
    }

    #[test]
    fn messages_of_kubo_and_js_ipfs() {
        // js-ipfs 0.66.1 (observed) and Kubo texts.
        for m in [
            "/nope does not exist",
            "file does not exist",
            "No link named QmX/x/y found in raw node bafk",
            "no link named \"x\" under QmY",
            "merkledag: not found",
            "block was not found locally (offline): ipld: could not find bafk",
            "Failed to remove pin: bafk is not pinned",
            "destination did not exist, pass -p to create intermediate directories",
            "Intermediate directory path /ipfs/Qm/d1 does not exist, use the -p flag to create it",
        ] {
            assert_eq!(kind(m), "notfound", "{m}");
        }
        for m in [
            "Failed to cat file: request timed out",
            "request timed out",
            "context deadline exceeded",
        ] {
            assert_eq!(kind(m), "timeout", "{m}");
        }
        assert_eq!(kind("file already exists"), "exists");
        assert_eq!(kind("directory already has entry by that name"), "exists");
        assert_eq!(
            kind("cp: cannot put node in path /x: directory already has entry by that name"),
            "exists"
        );
        assert_eq!(kind("cannot write to f: Not a directory"), "notdir");
        assert_eq!(kind("/x/y/abc/d was not a UnixFS node"), "notdir");
        assert_eq!(kind("/d1 was not a file or raw bytes"), "notfile");
        assert_eq!(
            kind("/d1/d2 is a directory, use -r to remove directories"),
            "notfile"
        );
        assert_eq!(kind("Tried to dial self"), "other");
        // Code 0 alone never means not-found.
        assert_eq!(kind("Failed to add pin: something broke"), "other");
        assert!(matches!(
            classify(Some(400), "Invalid request query input"),
            IpfsError::Invalid(_)
        ));
        assert!(matches!(classify(Some(400), "bad"), IpfsError::Invalid(_)));
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(br#"{"Message":"file does not exist","Code":0,"Type":"error"}"#),
            "file does not exist"
        );
        assert_eq!(
            error_message(
                br#"{"statusCode":500,"error":"Internal Server Error","message":"An internal server error occurred"}"#
            ),
            "An internal server error occurred"
        );
        assert_eq!(error_message(b"404 page not found\n"), "404 page not found");
    }
}
