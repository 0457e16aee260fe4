//! Static assets (CSS, JS, vendored htmx and xterm.js) compiled into the
//! binary, served under a content-hash path so browsers cache them forever
//! and still never see a stale file after an upgrade.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use super::SharedState;

#[derive(RustEmbed)]
#[folder = "../web/static"]
#[exclude = "*.map"]
struct Static;

pub fn router() -> Router<SharedState> {
    Router::new().route("/static/{version}/{*path}", get(serve))
}

/// Short hash over every embedded file's content.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut names: Vec<_> = Static::iter().collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            hasher.update(name.as_bytes());
            if let Some(file) = Static::get(&name) {
                hasher.update(file.metadata.sha256_hash());
            }
        }
        hex::encode(&hasher.finalize()[..6])
    })
}

pub fn url(path: &str) -> String {
    format!("/static/{}/{path}", version())
}

async fn serve(Path((requested_version, path)): Path<(String, String)>) -> Response {
    let Some(file) = Static::get(&path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    // An old page may ask for an old version: serve what we have, but do
    // not let it be cached under the old name.
    let cache = if requested_version == version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&format!(
        "\"{}\"",
        hex::encode(&file.metadata.sha256_hash()[..8])
    )) {
        headers.insert(header::ETAG, etag);
    }
    response
}
