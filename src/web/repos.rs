//! `GET /?q=&last=&n=&all=1`: the repositories the viewer may pull,
//! searched by substring, in pages. Content-addressed names (digest and CID
//! repositories) are listed only with `all=1`.

use std::fmt::Write as _;

use axum::extract::{Request, State};

use super::html::{esc, page, q, repo_href};
use super::routes::param;
use super::{PageResult, Viewer, Web, html};
use crate::disco::names::{NameKind, classify};
use crate::registry::RepoName;
use crate::registry::tags::paginate;

/// Repositories per page by default; at most [`MAX_PAGE`].
pub const PAGE: usize = 50;
/// Largest page asked for with `n`.
pub const MAX_PAGE: usize = 1000;

fn content_addressed(name: &str) -> bool {
    RepoName::parse(name).is_ok_and(|n| classify(&n) != NameKind::Normal)
}

/// The repositories page.
pub async fn get(State(web): State<Web>, req: Request) -> PageResult {
    let (parts, _) = req.into_parts();
    let query = parts.uri.query();
    let viewer = Viewer::of(&parts);
    let search = param(query, "q").unwrap_or_default();
    let last = param(query, "last").filter(|l| !l.is_empty());
    let all = param(query, "all").is_some_and(|v| v == "1");
    let n = param(query, "n")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(PAGE)
        .clamp(1, MAX_PAGE);
    let names = web.registry.list_repositories().await?;
    let names: Vec<String> = names
        .into_iter()
        .filter(|r| search.is_empty() || r.contains(search.as_str()))
        .filter(|r| all || !content_addressed(r))
        .collect();
    let names = viewer.visible(names).await;
    let (shown, more) = paginate(&names, Some(n), last.as_deref());

    let mut b = String::new();
    b.push_str("<h1>Repositories</h1>");
    let _ = write!(
        b,
        "<form class=\"search\" method=\"get\" action=\"/\"><input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Search repositories\" aria-label=\"Search\"><label><input type=\"checkbox\" name=\"all\" value=\"1\"{}> digest and CID names</label><button type=\"submit\">Search</button></form>",
        esc(&search),
        if all { " checked" } else { "" }
    );
    let _ = write!(
        b,
        "<p class=\"muted\" id=\"count\">{} repositor{}{}</p>",
        names.len(),
        if names.len() == 1 { "y" } else { "ies" },
        if search.is_empty() {
            String::new()
        } else {
            format!(" matching “{}”", esc(&search))
        }
    );
    if shown.is_empty() {
        b.push_str("<p>No repositories.</p>");
    } else {
        b.push_str("<table id=\"repos\"><thead><tr><th>Repository</th></tr></thead><tbody>");
        for r in &shown {
            let _ = write!(
                b,
                "<tr><td><a href=\"{}\">{}</a></td></tr>",
                repo_href(r),
                esc(r)
            );
        }
        b.push_str("</tbody></table>");
    }
    let keep = format!(
        "q={}&amp;n={n}{}",
        q(&search),
        if all { "&amp;all=1" } else { "" }
    );
    b.push_str("<nav class=\"pager\">");
    if last.is_some() {
        let _ = write!(b, "<a id=\"first\" href=\"/?{keep}\">« First</a>");
    }
    if more && let Some(l) = shown.last() {
        let _ = write!(
            b,
            "<a id=\"next\" href=\"/?{keep}&amp;last={}\">Next »</a>",
            q(l)
        );
    }
    b.push_str("</nav>");
    Ok(html(page("Repositories", viewer.name(), &b, None)))
}
