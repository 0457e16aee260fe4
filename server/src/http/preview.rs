//! The port preview: a web server in a student's lab (nginx on a
//! published port, a registry's `/v2/_catalog`, a small app) seen in that
//! student's browser through this server, HTTP and websockets alike.
//!
//! `/labs/{id}/ports/{port}/…` is forwarded to `127.0.0.1:{port}` as the
//! node sees it, over a connection the host makes inside the node's
//! network namespace, so nothing of the host or of another lab can be
//! reached. Only the lab's owner gets through (anyone else, logged in or
//! not, gets the same 404). What the lab answers is the student's own
//! content on our origin, so it is fenced in: its `Set-Cookie` is
//! dropped, the student's cookies never reach the lab, and a CSP
//! `sandbox` gives every page an origin of its own, so its scripts cannot
//! read this site's pages or call its API as the student. Paths are
//! rewritten both ways: the prefix is taken off the request, and put in
//! front of absolute paths in `Location` and in HTML links, so pages
//! written for `/` work under the prefix.

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use regex::bytes::Regex;
use serde::Serialize;

use super::error::AppError;
use super::labs::{owned_lab, require_ready};
use super::session::{ApiUser, Viewer};
use super::state::SharedState;
use crate::db::LabState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .merge(super::lab_api::nest(
            Router::new().route("/{id}/ports", get(ports)),
        ))
        .route("/labs/{id}/ports/{port}", any(to_folder))
        .route("/labs/{id}/ports/{port}/", any(root))
        .route("/labs/{id}/ports/{port}/{*rest}", any(forward))
}

/// How long the lab's server has to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTML larger than this is passed through without its links rewritten.
const MAX_REWRITTEN: usize = 8 << 20;

/// What a page of the lab may do: run its scripts and forms, as a site of
/// its own (no `allow-same-origin`).
const SANDBOX_POLICY: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// Request headers that belong to this hop or to this site, never to the lab.
const NOT_FORWARDED: &[header::HeaderName] = &[
    header::COOKIE,
    header::AUTHORIZATION,
    header::HOST,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

#[derive(Serialize)]
struct Port {
    port: u16,
    /// Where the browser opens it.
    url: String,
}

#[derive(Serialize)]
struct Ports {
    ports: Vec<Port>,
}

/// `GET /api/labs/{id}/ports`: what listens in the node.
async fn ports(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Ports>, AppError> {
    let lab = owned_lab(&state, &user, &id).await?;
    require_ready(&lab, "start it to see its ports")?;
    let host = state.labs.host();
    let found = tokio::task::spawn_blocking(move || host.listening_ports(&lab.id))
        .await
        .map_err(AppError::internal)??;
    Ok(Json(Ports {
        ports: found
            .into_iter()
            .map(|port| Port {
                port,
                url: format!("/labs/{id}/ports/{port}/"),
            })
            .collect(),
    }))
}

/// `/labs/x/ports/80` → `/labs/x/ports/80/`, so relative links resolve
/// inside the preview.
async fn to_folder(Path((id, port)): Path<(String, u16)>) -> Redirect {
    Redirect::temporary(&format!("/labs/{id}/ports/{port}/"))
}

async fn root(
    state: State<SharedState>,
    viewer: Viewer,
    Path((id, port)): Path<(String, u16)>,
    request: Request,
) -> Response {
    preview(state, viewer, id, port, request).await
}

async fn forward(
    state: State<SharedState>,
    viewer: Viewer,
    Path((id, port, _)): Path<(String, u16, String)>,
    request: Request,
) -> Response {
    preview(state, viewer, id, port, request).await
}

async fn preview(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    id: String,
    port: u16,
    request: Request,
) -> Response {
    let nothing_here = || {
        AppError::not_found(format!(
            "there is no preview of port {port} of a lab of yours here"
        ))
        .into_response()
    };
    let Some(user) = user else {
        return nothing_here();
    };
    let lab = match owned_lab(&state, &user, &id).await {
        Ok(lab) => lab,
        Err(_) => return nothing_here(),
    };
    if lab.state != LabState::Ready || port == 0 {
        return nothing_here();
    }
    let prefix = format!("/labs/{id}/ports/{port}");
    match relay(&state, &lab.id, port, &prefix, request).await {
        Ok(response) => response,
        Err(message) => AppError::new(StatusCode::BAD_GATEWAY, message).into_response(),
    }
}

async fn relay(
    state: &SharedState,
    lab: &str,
    port: u16,
    prefix: &str,
    mut request: Request,
) -> Result<Response, String> {
    let unreachable = |e: &dyn std::fmt::Display| {
        tracing::debug!(lab, port, error = %e, "preview cannot reach the lab's server");
        format!(
            "nothing answers on port {port} in node1: start a server there (or publish a container's port with -p {port}:80) and reload"
        )
    };
    let host = state.labs.host();
    let owned = lab.to_owned();
    let stream = tokio::task::spawn_blocking(move || host.connect(&owned, port, CONNECT_TIMEOUT))
        .await
        .map_err(|e| unreachable(&e))?
        .map_err(|e| unreachable(&e))?;
    stream.set_nonblocking(true).map_err(|e| unreachable(&e))?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| unreachable(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "preview connection ended");
        }
    });

    let from_browser = hyper::upgrade::on(&mut request);
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .strip_prefix(prefix)
        .unwrap_or("/");
    let path = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let mut upstream = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(Uri::try_from(path).map_err(|e| e.to_string())?)
        .body(body)
        .map_err(|e| e.to_string())?;
    let headers = upstream.headers_mut();
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::HOST,
        HeaderValue::from_str(&format!("localhost:{port}")).map_err(|e| e.to_string())?,
    );
    headers.insert(
        "x-forwarded-prefix",
        HeaderValue::from_str(prefix).map_err(|e| e.to_string())?,
    );

    let mut response = sender
        .send_request(upstream)
        .await
        .map_err(|e| unreachable(&e))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let from_lab = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(browser), Ok(lab)) = tokio::join!(from_browser, from_lab) else {
                return;
            };
            let _ =
                tokio::io::copy_bidirectional(&mut TokioIo::new(browser), &mut TokioIo::new(lab))
                    .await;
        });
        let (parts, _) = response.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    fence(&mut parts.headers, prefix);
    let html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let small = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n <= MAX_REWRITTEN);
    let identity = !parts.headers.contains_key(header::CONTENT_ENCODING);
    if html && small && identity {
        let bytes = axum::body::to_bytes(Body::new(body), MAX_REWRITTEN)
            .await
            .map_err(|e| unreachable(&e))?;
        let rewritten = rewrite_links(&bytes, prefix);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Ok(Response::from_parts(parts, Body::from(rewritten)));
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Keeps the lab's answer from acting as this site.
fn fence(headers: &mut HeaderMap, prefix: &str) {
    headers.remove(header::SET_COOKIE);
    headers.remove(header::STRICT_TRANSPORT_SECURITY);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX_POLICY),
    );
    if let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok())
        && location.starts_with('/')
        && !location.starts_with("//")
        && let Ok(moved) = HeaderValue::from_str(&format!("{prefix}{location}"))
    {
        headers.insert(header::LOCATION, moved);
    }
}

// `href="/x"`, `src='/x'`, `action=/x`: absolute paths in the attributes
// that load or link, not `//host` (another site).
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(href|src|action)=(["']?)/([^/])"#).expect("static pattern")
});

/// Absolute paths in HTML links, moved under the preview's prefix.
fn rewrite_links(html: &[u8], prefix: &str) -> Vec<u8> {
    let replacement = format!("${{1}}=${{2}}{prefix}/${{3}}");
    LINK.replace_all(html, replacement.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_links_move_under_the_prefix_and_others_stay() {
        let html = br#"<a href="/docs/">d</a> <img src='/logo.png'> <form action=/send> <a href="//cdn.example/x"> <a href="page.html"> <a href="https://nginx.org/">"#;
        let out = rewrite_links(html, "/labs/a/ports/80");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"<a href="/labs/a/ports/80/docs/">d</a> <img src='/labs/a/ports/80/logo.png'> <form action=/labs/a/ports/80/send> <a href="//cdn.example/x"> <a href="page.html"> <a href="https://nginx.org/">"#
        );
    }

    #[test]
    fn the_labs_answer_cannot_set_cookies_or_leave_its_sandbox() {
        let mut headers = HeaderMap::new();
        headers.insert(header::SET_COOKIE, HeaderValue::from_static("session=x"));
        headers.insert(
            header::LOCATION,
            HeaderValue::from_static("/v2/app/blobs/uploads/1"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src *"),
        );
        fence(&mut headers, "/labs/a/ports/5000");
        assert!(headers.get(header::SET_COOKIE).is_none());
        assert_eq!(
            headers[header::LOCATION],
            "/labs/a/ports/5000/v2/app/blobs/uploads/1"
        );
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], SANDBOX_POLICY);
        let mut elsewhere = HeaderMap::new();
        elsewhere.insert(
            header::LOCATION,
            HeaderValue::from_static("//evil.example/"),
        );
        fence(&mut elsewhere, "/labs/a/ports/80");
        assert_eq!(elsewhere[header::LOCATION], "//evil.example/");
    }
}
