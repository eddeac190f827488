//! `GET /repo?name=<repo>&last=`: a repository's tags with digest, size,
//! media type, the platforms of an index and when the tag was pushed (the
//! tag link's time, where the store keeps one).

use std::fmt::Write as _;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use futures::StreamExt;

use super::html::{esc, image_href, page, q, size};
use super::routes::param;
use super::{PageError, PageResult, Viewer, Web, html};
use crate::registry::manifest::{self, Kind};
use crate::registry::manifests::Reference;
use crate::registry::tags::paginate;
use crate::registry::{RepoName, paths};

/// Tags per page.
const PAGE: usize = 100;

/// What a tag row shows.
struct TagRow {
    tag: String,
    digest: String,
    media_type: String,
    size: Option<u64>,
    platforms: Vec<String>,
    pushed: Option<String>,
}

/// `os/architecture[/variant]` of an index entry's platform.
pub fn platform_text(p: &serde_json::Value) -> String {
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let mut out = format!("{}/{}", s("os"), s("architecture"));
    if !s("variant").is_empty() {
        out.push('/');
        out.push_str(s("variant"));
    }
    out
}

async fn row(web: &Web, name: &RepoName, tag: String) -> Option<TagRow> {
    let reg = &web.registry;
    let digest = reg
        .resolve(name, &Reference::Tag(tag.clone()))
        .await
        .ok()??;
    let pushed = reg
        .driver()
        .stat(&paths::tag_current_link(name, &tag))
        .await
        .ok()
        .and_then(|i| i.modified)
        .map(|t| humantime::format_rfc3339_seconds(t).to_string());
    let stored = reg.load_manifest(&digest).await.ok();
    let mut r = TagRow {
        tag,
        digest: digest.to_string(),
        media_type: String::new(),
        size: None,
        platforms: Vec::new(),
        pushed,
    };
    if let Some(m) = stored {
        r.media_type = m.media_type.clone();
        if let Ok(parsed) = manifest::parse(&m.bytes, Some(&m.media_type)) {
            match parsed.kind {
                Kind::Image => {
                    let blobs: u64 = parsed.layers.iter().map(|l| l.size).sum::<u64>()
                        + parsed.config.as_ref().map_or(0, |c| c.size);
                    r.size = Some(blobs + m.bytes.len() as u64);
                }
                Kind::Index => {
                    r.platforms = parsed
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(platform_text))
                        .collect();
                }
            }
        }
    }
    Some(r)
}

/// The tags page.
pub async fn get(State(web): State<Web>, req: Request) -> PageResult {
    let (parts, _) = req.into_parts();
    let query = parts.uri.query();
    let viewer = Viewer::of(&parts);
    let raw = param(query, "name").unwrap_or_default();
    let name = RepoName::parse(&raw)
        .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "invalid repository name"))?;
    let last = param(query, "last").filter(|l| !l.is_empty());
    let tags = web.registry.list_tags(&name).await?;
    let (shown, more) = paginate(&tags, Some(PAGE), last.as_deref());
    let rows: Vec<TagRow> = futures::stream::iter(shown.clone())
        .map(|t| row(&web, &name, t))
        .buffered(8)
        .filter_map(|r| async { r })
        .collect()
        .await;

    let mut b = String::new();
    let _ = write!(
        b,
        "<p class=\"muted\"><a href=\"/\">Repositories</a> /</p><h1>{}</h1><p class=\"muted\">{} tag{}</p>",
        esc(name.as_str()),
        tags.len(),
        if tags.len() == 1 { "" } else { "s" }
    );
    if rows.is_empty() {
        b.push_str("<p>No tags.</p>");
    } else {
        b.push_str("<table id=\"tags\"><thead><tr><th>Tag</th><th>Digest</th><th class=\"num\">Size</th><th>Media type</th><th>Platforms</th><th>Pushed</th></tr></thead><tbody>");
        for r in &rows {
            let _ = write!(
                b,
                "<tr><td><a href=\"{}\">{}</a></td><td><a href=\"{}\"><code>{}</code></a></td><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                image_href(name.as_str(), &r.tag),
                esc(&r.tag),
                image_href(name.as_str(), &r.digest),
                esc(&r.digest),
                r.size.map(size).unwrap_or_else(|| "—".into()),
                esc(&r.media_type),
                r.platforms
                    .iter()
                    .map(|p| format!("<span class=\"tag\">{}</span>", esc(p)))
                    .collect::<String>(),
                esc(r.pushed.as_deref().unwrap_or("—")),
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("<nav class=\"pager\">");
    if more && let Some(l) = shown.last() {
        let _ = write!(
            b,
            "<a id=\"next\" href=\"/repo?name={}&amp;last={}\">Next »</a>",
            q(name.as_str()),
            q(l)
        );
    }
    b.push_str("</nav>");
    Ok(html(page(name.as_str(), viewer.name(), &b, None)))
}
