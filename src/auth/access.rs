//! What a request needs: Distribution's access records (`type`, `name`,
//! `action`) and their rendering as challenge scopes and error details.

use std::fmt;

/// The kind of resource an access names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// A repository (`repository:<name>:<actions>`).
    Repository,
    /// The registry itself: `registry:catalog:*`, and disco's
    /// `registry:admin:*` for the `/disco/v1` administration endpoints.
    Registry,
}

impl ResourceType {
    /// The type's name in scopes and token claims.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Repository => "repository",
            ResourceType::Registry => "registry",
        }
    }
}

/// One access record: an action on a typed, named resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Access {
    /// Resource type.
    pub kind: ResourceType,
    /// Resource name (repository name, `catalog`, `admin`).
    pub name: String,
    /// `pull`, `push`, `delete` or `*`.
    pub action: String,
}

impl Access {
    /// `repository:<name>:<action>`.
    pub fn repository(name: &str, action: &str) -> Self {
        Self {
            kind: ResourceType::Repository,
            name: name.to_string(),
            action: action.to_string(),
        }
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Self {
        Self {
            kind: ResourceType::Registry,
            name: "catalog".into(),
            action: "*".into(),
        }
    }

    /// `registry:admin:*`: disco's administration endpoints.
    pub fn admin() -> Self {
        Self {
            kind: ResourceType::Registry,
            name: "admin".into(),
            action: "*".into(),
        }
    }
}

/// A set of access records as a challenge `scope`: one
/// `type:name:action,action` per resource, space-separated.
pub fn scope_param(access: &[Access]) -> String {
    let mut sorted: Vec<&Access> = access.iter().collect();
    sorted.sort();
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<(ResourceType, &str)> = None;
    for a in sorted {
        if last == Some((a.kind, a.name.as_str())) {
            let s = out.last_mut().expect("a scope was started");
            s.push(',');
            s.push_str(&a.action);
        } else {
            out.push(format!("{}:{}:{}", a.kind.as_str(), a.name, a.action));
            last = Some((a.kind, a.name.as_str()));
        }
    }
    out.join(" ")
}

/// The error detail Distribution gives with `UNAUTHORIZED`: the access
/// records asked for.
pub fn detail(access: &[Access]) -> serde_json::Value {
    serde_json::Value::Array(
        access
            .iter()
            .map(|a| {
                serde_json::json!({"Type": a.kind.as_str(), "Name": a.name, "Action": a.action})
            })
            .collect(),
    )
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind.as_str(), self.name, self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_merge_actions_per_resource() {
        let s = scope_param(&[
            Access::repository("a/b", "push"),
            Access::repository("a/b", "pull"),
            Access::repository("c", "pull"),
        ]);
        assert_eq!(s, "repository:a/b:pull,push repository:c:pull");
        assert_eq!(scope_param(&[Access::catalog()]), "registry:catalog:*");
        assert_eq!(scope_param(&[]), "");
    }
}
