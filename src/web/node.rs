//! `GET /node`: the IPFS node (peer id, addresses, connected peers,
//! network mode), the store's size on disk, garbage collection, and the
//! clones in progress with progress bars (the page reloads itself every
//! few seconds while clones run).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};

use super::html::{esc, page, size};
use super::{PageResult, Viewer, Web, html};

/// How long a measured store size is reused.
const SIZE_TTL: Duration = Duration::from_secs(30);
/// Reload interval of the page while clones run, in seconds.
const REFRESH: u32 = 3;

/// Bytes of the files under `dir` (blocking).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

impl Web {
    /// The embedded node's size on disk, measured at most every
    /// [`SIZE_TTL`].
    async fn store_size(&self) -> Option<u64> {
        let node = self.node.as_ref()?;
        if let Some((at, n)) = *self.store_size.lock()
            && at.elapsed() < SIZE_TTL
        {
            return Some(n);
        }
        let path = node.path();
        let n = tokio::task::spawn_blocking(move || dir_size(&path))
            .await
            .ok()?;
        *self.store_size.lock() = Some((Instant::now(), n));
        Some(n)
    }
}

fn kv(b: &mut String, k: &str, v: &str) {
    let _ = write!(b, "<dt>{}</dt><dd>{v}</dd>", esc(k));
}

/// The node page.
pub async fn get(State(web): State<Web>, req: Request) -> PageResult {
    let (parts, _) = req.into_parts();
    let viewer = Viewer::of(&parts);
    let mut b = String::from("<h1>Node</h1><h2>IPFS</h2><dl class=\"kv\" id=\"node\">");
    match &web.disco {
        Some(d) => match d.node().await {
            Ok(id) => {
                kv(
                    &mut b,
                    "Peer ID",
                    &format!("<code id=\"peer-id\">{}</code>", esc(&id.peer_id)),
                );
                kv(&mut b, "Agent", &esc(&id.agent));
                let addrs: String = id
                    .addresses
                    .iter()
                    .map(|a| format!("<code>{}</code><br>", esc(a)))
                    .collect();
                kv(
                    &mut b,
                    "Addresses",
                    if addrs.is_empty() {
                        "<span class=\"muted\">none (offline)</span>"
                    } else {
                        &addrs
                    },
                );
            }
            Err(e) => kv(
                &mut b,
                "Node",
                &format!("<span class=\"error\">{}</span>", esc(&e.to_string())),
            ),
        },
        None => kv(&mut b, "Storage", "not IPFS: images have no CIDs"),
    }
    kv(&mut b, "Network", &esc(&web.net_mode));
    if let Some(n) = web.store_size().await {
        kv(
            &mut b,
            "Store size",
            &format!("<span id=\"store-size\">{}</span>", size(n)),
        );
    }
    if let Some(node) = &web.node {
        let gc = &node.config().gc;
        let schedule = if gc.enabled {
            format!("every {}", humantime::format_duration(gc.interval))
        } else {
            "scheduled collection off".into()
        };
        let last = match node.last_gc() {
            Some((at, s)) => format!(
                "; last run {}: {} blocks kept, {} removed, {} freed",
                humantime::format_rfc3339_seconds(at),
                s.marked,
                s.removed,
                size(s.freed_bytes)
            ),
            None => "; not run since start".into(),
        };
        kv(
            &mut b,
            "Garbage collection",
            &esc(&format!("{schedule}{last}")),
        );
    }
    b.push_str("</dl>");

    if let Some(net) = &web.network {
        let peers = net.connected_peers();
        let _ = write!(b, "<h2>Connected peers ({})</h2>", peers.len());
        if peers.is_empty() {
            b.push_str("<p class=\"muted\">None.</p>");
        } else {
            b.push_str(
                "<table id=\"peers\"><thead><tr><th>Peer</th><th>Address</th></tr></thead><tbody>",
            );
            for (p, a) in peers {
                let _ = write!(
                    b,
                    "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
                    esc(&p.to_string()),
                    esc(&a.to_string())
                );
            }
            b.push_str("</tbody></table>");
        }
    }

    let clones = web
        .disco
        .as_ref()
        .map(|d| d.clones_running())
        .unwrap_or_default();
    let _ = write!(b, "<h2>Clones in progress ({})</h2>", clones.len());
    if clones.is_empty() {
        b.push_str("<p class=\"muted\">None.</p>");
    } else {
        b.push_str("<table id=\"clones\"><thead><tr><th>CID</th><th>Blobs</th><th>Progress</th></tr></thead><tbody>");
        for c in &clones {
            let (text, bar) = match c.total {
                Some(t) => (
                    format!("{} / {t}", c.ready),
                    format!("<progress max=\"{t}\" value=\"{}\"></progress>", c.ready),
                ),
                None => ("fetching manifests".into(), "<progress></progress>".into()),
            };
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{bar}</td></tr>",
                esc(&c.cid),
                esc(&text)
            );
        }
        b.push_str("</tbody></table>");
    }
    let refresh = (!clones.is_empty()).then_some(REFRESH);
    Ok(html(page("Node", viewer.name(), &b, refresh)))
}
