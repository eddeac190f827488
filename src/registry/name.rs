//! Repository names and tags, validated as the OCI Distribution spec
//! defines them. Only validated names and tags ever reach a storage path.

use std::fmt;

use super::error::{ErrorCode, RegistryError};

/// Longest accepted repository name (Distribution's limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest accepted tag.
pub const MAX_TAG_LEN: usize = 128;

/// A validated repository name: `/`-separated components, each
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let invalid = |why: &str| {
            RegistryError::new(
                ErrorCode::NameInvalid,
                format!("invalid repository name: {why}"),
            )
            .with_detail(serde_json::json!({ "name": s }))
        };
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 255 characters"));
        }
        for comp in s.split('/') {
            if !valid_component(comp) {
                return Err(invalid(
                    "components must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*",
                ));
            }
        }
        Ok(RepoName(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// Validates a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "library/busybox",
            "a/b/c/d",
            "foo.bar",
            "foo_bar",
            "foo__bar",
            "foo---bar",
            "0",
            "a1/b2",
        ] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "..",
            "a/../b",
            "%2e%2e",
            "a\\b",
            "a\0b",
            "a b",
            "-a",
            "a-",
            "a.",
            ".a",
            "a..b",
            "a___b",
            "a_.b",
            long.as_str(),
            "Upper/case",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RepoName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"t".repeat(129), "..", "a b"] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }
}
