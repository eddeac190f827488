//! The web page's paths and what each needs, for the one auth layer
//! (`crate::http::auth`), which also accepts the session cookie on these
//! paths only.
//!
//! | path | needs |
//! |---|---|
//! | `/` (repositories; the list is filtered like the catalog) | a signed-in caller |
//! | `/repo?name=<repo>` (tags), `/image?name=<repo>&ref=<tag or digest>` | `repository:<repo>:pull` |
//! | `/node` (identity, peers, store, clones) | `registry:admin:*` |
//! | `/login`, `/logout`, `/static/...`, `/favicon.ico` | nothing |

/// What a web path needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebNeed {
    /// Anyone (sign-in, assets).
    Public,
    /// A signed-in caller.
    SignedIn,
    /// Pull on a repository.
    Pull(String),
    /// The admin right.
    Admin,
}

/// The web path `path` (with its `query`), if it is one.
pub fn classify(path: &str, query: Option<&str>) -> Option<WebNeed> {
    let name = || {
        form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v.into_owned())
    };
    Some(match path {
        "/" => WebNeed::SignedIn,
        "/repo" | "/image" => match name() {
            Some(n) if !n.is_empty() => WebNeed::Pull(n),
            _ => WebNeed::SignedIn,
        },
        "/node" => WebNeed::Admin,
        "/login" | "/logout" | "/favicon.ico" => WebNeed::Public,
        p if p.starts_with("/static/") => WebNeed::Public,
        _ => return None,
    })
}

/// One query parameter.
pub fn param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(classify("/", None), Some(WebNeed::SignedIn));
        assert_eq!(
            classify("/repo", Some("name=a%2Fb&last=x")),
            Some(WebNeed::Pull("a/b".into()))
        );
        assert_eq!(
            classify("/image", Some("ref=x&name=c")),
            Some(WebNeed::Pull("c".into()))
        );
        assert_eq!(classify("/repo", None), Some(WebNeed::SignedIn));
        assert_eq!(classify("/node", None), Some(WebNeed::Admin));
        assert_eq!(classify("/static/style.css", None), Some(WebNeed::Public));
        assert_eq!(classify("/v2/", None), None);
        assert_eq!(classify("/disco/v1/node", None), None);
    }
}
