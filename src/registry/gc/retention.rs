//! Retention policies (`gc.retention`): which tags of a repository go, by
//! count and pattern, and how old an untagged manifest must be to go.

use std::collections::BTreeMap;

use super::scan::TagInv;
use crate::config::RetentionPolicy;

/// Glob match: `*` any run of characters except `/`, `**` any run
/// including `/`, `?` one character except `/`; everything else literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = &p[2..];
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                for i in 0..=t.len() {
                    if go(rest, &t[i..]) {
                        return true;
                    }
                    if t.get(i) == Some(&b'/') {
                        break;
                    }
                }
                false
            }
            Some(b'?') => t.first().is_some_and(|&c| c != b'/') && go(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// The first policy whose globs match `repo`.
pub fn policy_for<'a>(policies: &'a [RetentionPolicy], repo: &str) -> Option<&'a RetentionPolicy> {
    policies
        .iter()
        .find(|p| p.repositories.iter().any(|g| glob_match(g, repo)))
}

/// The tags `policy` deletes: those not matching a keep pattern beyond the
/// newest `keeptags` (tags of unknown age count as newest; ties by name,
/// the greater name being newer).
pub fn expired_tags(policy: &RetentionPolicy, tags: &BTreeMap<String, TagInv>) -> Vec<String> {
    let Some(keep) = policy.keeptags else {
        return Vec::new();
    };
    let mut counted: Vec<(&String, &TagInv)> = tags
        .iter()
        .filter(|(t, _)| !policy.keeppatterns.iter().any(|p| glob_match(p, t)))
        .collect();
    // Newest first; unknown times first of all.
    counted.sort_by(|a, b| match (a.1.modified, b.1.modified) {
        (None, None) => b.0.cmp(a.0),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x).then_with(|| b.0.cmp(a.0)),
    });
    counted
        .into_iter()
        .skip(keep)
        .map(|(t, _)| t.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::registry::Digest;

    #[test]
    fn globs() {
        assert!(glob_match("*", "app"));
        assert!(!glob_match("*", "team/app"));
        assert!(glob_match("team/*", "team/app"));
        assert!(glob_match("**", "team/a/b"));
        assert!(glob_match("team/**", "team/a/b"));
        assert!(glob_match("v1.?", "v1.2"));
        assert!(!glob_match("v1.?", "v1.22"));
        assert!(glob_match("release-*", "release-2024"));
        assert!(!glob_match("release-*", "dev"));
    }

    #[test]
    fn keeps_newest_and_patterns() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let d = Digest::sha256(b"m");
        let mut tags = BTreeMap::new();
        for (i, name) in ["a", "b", "c", "release-1", "d"].iter().enumerate() {
            tags.insert(
                name.to_string(),
                TagInv {
                    digest: d.clone(),
                    modified: Some(t0 + Duration::from_secs(i as u64)),
                },
            );
        }
        let policy = RetentionPolicy {
            repositories: vec!["**".into()],
            keeptags: Some(2),
            keeppatterns: vec!["release-*".into()],
            ..Default::default()
        };
        let mut gone = expired_tags(&policy, &tags);
        gone.sort();
        assert_eq!(gone, vec!["a".to_string(), "b".to_string()]);
        tags.get_mut("a").unwrap().modified = None;
        let mut gone = expired_tags(&policy, &tags);
        gone.sort();
        assert_eq!(
            gone,
            vec!["b".to_string(), "c".to_string()],
            "unknown age counts as newest"
        );
        let none = RetentionPolicy::default();
        assert!(expired_tags(&none, &tags).is_empty());
    }
}
