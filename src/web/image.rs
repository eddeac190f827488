//! `GET /image?name=<repo>&ref=<tag or digest>`: an image's manifest,
//! config (environment, entrypoint, command, history), layers with sizes
//! and CIDs, referrers, `disco.json`, and pull commands by tag, digest and
//! CID for the host the page was asked from.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use serde_json::Value;

use super::html::{copyable, esc, image_href, page, repo_href, size};
use super::repo::platform_text;
use super::routes::param;
use super::{PageError, PageResult, Viewer, Web, html};
use crate::registry::manifest::{self, Kind};
use crate::registry::manifests::Reference;
use crate::registry::{Digest, RepoName};

/// Largest config blob shown.
const MAX_CONFIG: u64 = 1024 * 1024;

fn pretty(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned())
}

fn list(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|x| format!("<code>{}</code>", esc(x.as_str().unwrap_or(&x.to_string()))))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "<span class=\"muted\">—</span>".into(),
    }
}

/// The config section: platform, environment, entrypoint, command, history.
fn config_html(b: &mut String, config: &Value) {
    let null = Value::Null;
    let c = config.get("config").unwrap_or(&null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    b.push_str("<h2>Config</h2><dl class=\"kv\" id=\"config\">");
    let _ = write!(
        b,
        "<dt>Platform</dt><dd>{}/{}</dd><dt>Created</dt><dd>{}</dd><dt>Entrypoint</dt><dd>{}</dd><dt>Command</dt><dd>{}</dd><dt>Working dir</dt><dd>{}</dd><dt>Environment</dt><dd>",
        esc(&s(config, "os")),
        esc(&s(config, "architecture")),
        esc(&s(config, "created")),
        list(c.get("Entrypoint")),
        list(c.get("Cmd")),
        esc(&s(c, "WorkingDir")),
    );
    match c.get("Env").and_then(Value::as_array) {
        Some(env) if !env.is_empty() => {
            for e in env {
                let _ = write!(b, "<code>{}</code><br>", esc(e.as_str().unwrap_or("")));
            }
        }
        _ => b.push_str("<span class=\"muted\">—</span>"),
    }
    b.push_str("</dd></dl>");
    if let Some(h) = config.get("history").and_then(Value::as_array)
        && !h.is_empty()
    {
        b.push_str("<h2>History</h2><table id=\"history\"><thead><tr><th>Created</th><th>Step</th></tr></thead><tbody>");
        for step in h {
            let _ = write!(
                b,
                "<tr><td>{}</td><td><code>{}</code>{}</td></tr>",
                esc(&s(step, "created")),
                esc(&s(step, "created_by")),
                if step.get("empty_layer").and_then(Value::as_bool) == Some(true) {
                    " <span class=\"muted\">(no layer)</span>"
                } else {
                    ""
                }
            );
        }
        b.push_str("</tbody></table>");
    }
}

/// The image page.
pub async fn get(State(web): State<Web>, req: Request) -> PageResult {
    let (parts, _) = req.into_parts();
    let query = parts.uri.query();
    let viewer = Viewer::of(&parts);
    let bad = |m: &str| PageError::new(StatusCode::BAD_REQUEST, m);
    let raw = param(query, "name").unwrap_or_default();
    let name = RepoName::parse(&raw).map_err(|_| bad("invalid repository name"))?;
    let raw_ref = param(query, "ref").unwrap_or_else(|| "latest".into());
    let reference = Reference::parse(&raw_ref)?.ok_or_else(|| bad("invalid tag"))?;
    let reg = &web.registry;
    let stored = reg.get_manifest(&name, &reference).await?;
    let digest = stored.digest.clone();
    let parsed = manifest::parse(&stored.bytes, Some(&stored.media_type)).ok();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let info = match &web.disco {
        Some(d) => d.image_info(&digest).await.unwrap_or(None),
        None => None,
    };
    let cids: HashMap<Digest, String> = info
        .as_ref()
        .map(|(_, j)| {
            j.blobs
                .iter()
                .map(|b| (b.digest.clone(), crate::ipfs::cid_v1_string(&b.cid)))
                .collect()
        })
        .unwrap_or_default();

    let mut b = String::new();
    let _ = write!(
        b,
        "<p class=\"muted\"><a href=\"/\">Repositories</a> / <a href=\"{}\">{}</a> /</p><h1>{}{}{}</h1>",
        repo_href(name.as_str()),
        esc(name.as_str()),
        esc(name.as_str()),
        if matches!(reference, Reference::Tag(_)) {
            ":"
        } else {
            "@"
        },
        esc(&raw_ref)
    );
    b.push_str("<dl class=\"kv\" id=\"summary\">");
    let _ = write!(
        b,
        "<dt>Digest</dt><dd><code id=\"digest\">{}</code></dd><dt>Media type</dt><dd><code>{}</code></dd><dt>Manifest size</dt><dd>{}</dd>",
        esc(&digest.to_string()),
        esc(&stored.media_type),
        size(stored.bytes.len() as u64)
    );
    if let Some((cid, _)) = &info {
        let _ = write!(
            b,
            "<dt>CID</dt><dd><code id=\"cid\">{}</code></dd>",
            esc(cid)
        );
    }
    b.push_str("</dl>");

    // Pull commands.
    b.push_str("<h2>Pull</h2><div id=\"pull\">");
    let repo = format!("{host}/{}", name.as_str());
    let mut refs = Vec::new();
    if let Reference::Tag(t) = &reference {
        refs.push(format!("{repo}:{t}"));
    }
    refs.push(format!("{repo}@{digest}"));
    if let Some((cid, _)) = &info {
        refs.push(format!("{host}/{cid}"));
    }
    for tool in ["docker", "podman"] {
        for r in &refs {
            b.push_str(&copyable(&format!("{tool} pull {r}")));
        }
    }
    b.push_str("</div>");

    if let Some(m) = &parsed {
        match m.kind {
            Kind::Index => {
                b.push_str("<h2>Manifests</h2><table id=\"manifests\"><thead><tr><th>Platform</th><th>Digest</th><th class=\"num\">Size</th><th>Media type</th></tr></thead><tbody>");
                for d in &m.manifests {
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td><a href=\"{}\"><code>{}</code></a></td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
                        esc(&d.platform.as_ref().map(platform_text).unwrap_or_default()),
                        image_href(name.as_str(), &d.digest.to_string()),
                        esc(&d.digest.to_string()),
                        size(d.size),
                        esc(&d.media_type)
                    );
                }
                b.push_str("</tbody></table>");
            }
            Kind::Image => {
                if let Some(c) = m.config.as_ref().filter(|c| c.size <= MAX_CONFIG)
                    && let Ok(bytes) = reg.read_blob(&c.digest).await
                    && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
                {
                    config_html(&mut b, &v);
                }
                b.push_str("<h2>Layers</h2><table id=\"layers\"><thead><tr><th>#</th><th>Digest</th><th class=\"num\">Size</th><th>CID</th><th>Media type</th></tr></thead><tbody>");
                let total: u64 = m.layers.iter().map(|l| l.size).sum();
                for (i, l) in m.layers.iter().enumerate() {
                    let _ = write!(
                        b,
                        "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                        i + 1,
                        esc(&l.digest.to_string()),
                        size(l.size),
                        esc(cids.get(&l.digest).map_or("—", String::as_str)),
                        esc(&l.media_type)
                    );
                }
                let _ = write!(
                    b,
                    "</tbody><tfoot><tr><th></th><th>{} layer{}</th><th class=\"num\">{}</th><th></th><th></th></tr></tfoot></table>",
                    m.layers.len(),
                    if m.layers.len() == 1 { "" } else { "s" },
                    size(total)
                );
            }
        }
        if let Some(a) = m.annotations.as_ref().and_then(Value::as_object)
            && !a.is_empty()
        {
            b.push_str("<h2>Annotations</h2><dl class=\"kv\" id=\"annotations\">");
            for (k, v) in a {
                let _ = write!(
                    b,
                    "<dt>{}</dt><dd>{}</dd>",
                    esc(k),
                    esc(v.as_str().unwrap_or(&v.to_string()))
                );
            }
            b.push_str("</dl>");
        }
    }

    // Referrers (signatures, SBOMs, ...).
    let referrers = reg
        .referrers(&name, &digest, None)
        .await
        .unwrap_or_default();
    b.push_str("<h2>Referrers</h2>");
    if referrers.is_empty() {
        b.push_str("<p class=\"muted\">None.</p>");
    } else {
        b.push_str("<table id=\"referrers\"><thead><tr><th>Artifact type</th><th>Digest</th><th class=\"num\">Size</th><th>Annotations</th></tr></thead><tbody>");
        for r in &referrers {
            let d = r.get("digest").and_then(Value::as_str).unwrap_or("");
            let ann = r
                .get("annotations")
                .and_then(Value::as_object)
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            format!(
                                "<span class=\"tag\">{}={}</span>",
                                esc(k),
                                esc(v.as_str().unwrap_or(&v.to_string()))
                            )
                        })
                        .collect::<String>()
                })
                .unwrap_or_default();
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td><a href=\"{}\"><code>{}</code></a></td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(r.get("artifactType").and_then(Value::as_str).unwrap_or("")),
                image_href(name.as_str(), d),
                esc(d),
                size(r.get("size").and_then(Value::as_u64).unwrap_or(0)),
                ann
            );
        }
        b.push_str("</tbody></table>");
    }

    if let Some((_, json)) = &info {
        let _ = write!(
            b,
            "<h2>disco.json</h2><pre id=\"disco-json\">{}</pre>",
            esc(&pretty(&json.to_bytes()))
        );
    }
    let _ = write!(
        b,
        "<h2>Manifest</h2><pre id=\"manifest\">{}</pre>",
        esc(&pretty(&stored.bytes))
    );
    let title = format!("{}:{}", name.as_str(), raw_ref);
    Ok(html(page(&title, viewer.name(), &b, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_escape() {
        let v: Value = serde_json::json!(["<a>", "b&c"]);
        assert_eq!(
            list(Some(&v)),
            "<code>&lt;a&gt;</code> <code>b&amp;c</code>"
        );
        assert!(list(None).contains("—"));
        assert_eq!(
            image_href("a/b", "sha256:1"),
            "/image?name=a%2Fb&amp;ref=sha256%3A1"
        );
    }
}
