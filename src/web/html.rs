//! HTML building: escaping and the page frame. Every dynamic value goes
//! through [`esc`] (text and attribute values alike).

use std::fmt::Write as _;

/// Escapes `s` for HTML text and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes `s` for a URL query value.
pub fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Bytes in a human unit (`1.5 MiB`).
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The link to a repository's tags page.
pub fn repo_href(name: &str) -> String {
    format!("/repo?name={}", q(name))
}

/// The link to an image page.
pub fn image_href(name: &str, reference: &str) -> String {
    format!("/image?name={}&amp;ref={}", q(name), q(reference))
}

/// A `<code>` with a copy button for a command line.
pub fn copyable(text: &str) -> String {
    let t = esc(text);
    format!(
        "<div class=\"cmd\"><code>{t}</code><button type=\"button\" class=\"copy\" data-copy=\"{t}\">Copy</button></div>"
    )
}

/// A whole page: `title` (text), the signed-in user (if any) and `body`
/// (already escaped HTML). `refresh` adds a reload every that many seconds.
pub fn page(title: &str, user: Option<&str>, body: &str, refresh: Option<u32>) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if let Some(s) = refresh {
        let _ = write!(out, "<meta http-equiv=\"refresh\" content=\"{s}\">");
    }
    let _ = write!(out, "<title>{} · disco</title>", esc(title));
    out.push_str("<link rel=\"stylesheet\" href=\"/static/style.css\">");
    out.push_str("<link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">");
    out.push_str("<script src=\"/static/app.js\" defer></script></head><body>");
    out.push_str("<header><a class=\"brand\" href=\"/\">disco</a><nav><a href=\"/\">Repositories</a><a href=\"/node\">Node</a></nav>");
    if let Some(u) = user {
        let _ = write!(
            out,
            "<form class=\"user\" method=\"post\" action=\"/logout\"><span>{}</span><button type=\"submit\">Sign out</button></form>",
            esc(u)
        );
    }
    out.push_str("</header><main>");
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(q("a/b c&d"), "a%2Fb+c%26d");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        let p = page("<t>", Some("<u>"), "<p>x</p>", None);
        assert!(p.contains("&lt;t&gt; · disco") && p.contains("<span>&lt;u&gt;</span>"));
        assert!(!p.contains("<t>") && !p.contains("<u>"));
    }
}
