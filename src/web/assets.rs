//! Static assets, embedded in the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("static/style.css");
const JS: &str = include_str!("static/app.js");
const ICON: &str = include_str!("static/favicon.svg");

/// `GET /static/<file>`.
pub async fn get(Path(file): Path<String>) -> Response {
    let (ct, body) = match file.as_str() {
        "style.css" => ("text/css; charset=utf-8", CSS),
        "app.js" => ("text/javascript; charset=utf-8", JS),
        "favicon.svg" => ("image/svg+xml", ICON),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /favicon.ico`: the SVG icon.
pub async fn favicon() -> Response {
    get(Path("favicon.svg".into())).await
}
