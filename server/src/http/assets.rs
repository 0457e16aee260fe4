//! Static assets (CSS, JS, vendored htmx and xterm.js) compiled into the
//! binary, served under a content-hash path so browsers cache them forever
//! and still never see a stale file after an upgrade. Our own files come
//! from `web/static`; the npm packages' files (under `vendor/`) from
//! `web/node_modules`, through the build script, which refuses to build
//! without them.

use std::borrow::Cow;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use super::state::SharedState;

#[derive(RustEmbed)]
#[folder = "../web/static"]
#[exclude = "*.map"]
// Where an older checkout copied the npm files; they come from the build
// script now.
#[exclude = "vendor/*"]
struct Static;

mod npm {
    include!(concat!(env!("OUT_DIR"), "/vendor.rs"));
}

const VENDOR_PREFIX: &str = "vendor/";

struct Asset {
    data: Cow<'static, [u8]>,
    sha256: [u8; 32],
}

fn asset(path: &str) -> Option<Asset> {
    if let Some(name) = path.strip_prefix(VENDOR_PREFIX) {
        static HASHES: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
        let hashes = HASHES.get_or_init(|| {
            npm::VENDOR
                .iter()
                .map(|(_, data)| Sha256::digest(data).into())
                .collect()
        });
        let index = npm::VENDOR.iter().position(|(n, _)| *n == name)?;
        return Some(Asset {
            data: Cow::Borrowed(npm::VENDOR[index].1),
            sha256: hashes[index],
        });
    }
    let file = Static::get(path)?;
    Some(Asset {
        sha256: file.metadata.sha256_hash(),
        data: file.data,
    })
}

pub fn router() -> Router<SharedState> {
    Router::new().route("/static/{version}/{*path}", get(serve))
}

/// Short hash over every embedded file's content.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut names: Vec<String> = Static::iter()
            .map(Cow::into_owned)
            .chain(
                npm::VENDOR
                    .iter()
                    .map(|(name, _)| format!("{VENDOR_PREFIX}{name}")),
            )
            .collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            hasher.update(name.as_bytes());
            if let Some(file) = asset(&name) {
                hasher.update(file.sha256);
            }
        }
        hex::encode(&hasher.finalize()[..6])
    })
}

pub fn url(path: &str) -> String {
    format!("/static/{}/{path}", version())
}

async fn serve(Path((requested_version, path)): Path<(String, String)>) -> Response {
    let Some(file) = asset(&path) else {
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
    let mut response = file.data.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&file.sha256[..8]))) {
        headers.insert(header::ETAG, etag);
    }
    response
}
