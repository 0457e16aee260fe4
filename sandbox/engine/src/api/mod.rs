//! The Docker Engine API (1.41, what Debian's docker.io 20.10 CLI speaks)
//! as an axum service on the lab's unix socket.
//!
//! Image names contain `/`, so paths are not matched segment by segment:
//! one function strips the optional `/v1.NN` prefix, then each area
//! (`system`, `images`, `containers`, `exec`, `networks`, `volumes`)
//! recognises its own paths by their head and tail and
//! answers, or passes. Unknown paths get Docker's 404 `page not found`;
//! areas of Docker this engine does not serve (swarm, plugins, …) get one
//! 501 that names the feature. Every answer carries the headers the CLI
//! reads to pick its code paths (`Api-Version`, `Ostype`, …).

mod archive;
mod area;
mod body;
mod build;
mod commit;
mod containers;
pub mod error;
mod exec;
mod execs;
mod hijack;
mod images;
mod networks;
mod progress;
mod query;
mod system;
pub mod types;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::Engine;
use area::{Handled, only};
use error::{ApiError, ApiResult};
pub(crate) use execs::Execs;
use query::Query;
pub use system::API_VERSION;

/// The parsers of what the CLI sends, reachable for the fuzz targets in
/// `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::Uri;

    use super::types::CreateBody;

    /// A `POST /containers/create` body after it parsed: its `-v` and `-p`
    /// specifications and its stop signal, checked as `create` checks them.
    pub fn check_create(body: &CreateBody) -> bool {
        let mounts = crate::containers::mounts(&body.host_config).is_ok();
        let ports = crate::ports::requested(&body.host_config).is_ok();
        let signal = crate::containers::signal_number(&body.config.stop_signal).is_some();
        mounts && ports && signal
    }

    /// A request's query string as the API reads it: `filters`, a
    /// resize's size, and a build's tags and options.
    pub fn query(uri: &Uri) -> bool {
        let Ok(query) = super::Query::parse(uri) else {
            return false;
        };
        let filters = query.filters().is_ok();
        let size = query.window_size().is_ok();
        let tags = super::build::tags(&query).is_ok();
        let options = super::build::options(&query, "/nonexistent".into()).is_ok();
        filters && size && tags && options
    }
}

/// The oldest version moby 20.10 accepts.
const MIN_API_VERSION: (u32, u32) = (1, 12);

/// The service for one lab's socket.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new().fallback(dispatch).with_state(engine)
}

async fn dispatch(State(engine): State<Arc<Engine>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = match strip_version(&path) {
        Ok(rest) => route(engine, rest, request)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => e.into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("api-version", API_VERSION),
        ("docker-experimental", "false"),
        ("ostype", "linux"),
        (
            "server",
            concat!("layerlab-engine/", env!("CARGO_PKG_VERSION")),
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn route(engine: Arc<Engine>, path: &str, request: Request) -> ApiResult {
    let engine = &engine;
    let method = request.method().clone();
    let request = match system::handle(engine, &method, path, request).await {
        Handled::Yes(r) => return r,
        Handled::No(request) => request,
    };
    let request = match images::handle(engine, &method, path, request).await {
        Handled::Yes(r) => return r,
        Handled::No(request) => request,
    };
    if path == "/build" {
        only(&method, &[Method::POST])?;
        return build::build(engine, &Query::parse(request.uri())?, request).await;
    }
    if path == "/commit" {
        only(&method, &[Method::POST])?;
        return commit::commit(engine, &Query::parse(request.uri())?).await;
    }
    let request = match containers::handle(engine, &method, path, request).await {
        Handled::Yes(r) => return r,
        Handled::No(request) => request,
    };
    let request = match exec::handle(engine, &method, path, request).await {
        Handled::Yes(r) => return r,
        Handled::No(request) => request,
    };
    let request = match networks::handle(engine, &method, path, request).await {
        Handled::Yes(r) => return r,
        Handled::No(request) => request,
    };
    let _request = match volumes::handle(engine, &method, path, request).await {
        Handled::Yes(r) => return r,
        Handled::No(request) => request,
    };
    if let Some(feature) = unserved_feature(path) {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{feature} is not available in a layerlab lab"),
        ));
    }
    Err(ApiError::not_found())
}

/// Docker features outside a single-node training lab.
fn unserved_feature(path: &str) -> Option<&'static str> {
    let head = path.trim_start_matches('/').split('/').next()?;
    Some(match head {
        "swarm" | "nodes" | "services" | "tasks" | "secrets" | "configs" => "swarm mode",
        "plugins" => "docker plugins",
        "session" | "grpc" => "BuildKit",
        "distribution" => "registry distribution inspection",
        _ => return None,
    })
}

/// `/v1.41/images/json` → `/images/json`; a version above ours is refused
/// the way dockerd refuses it.
fn strip_version(path: &str) -> Result<&str, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((major, minor)) = version.split_once('.') else {
        return Ok(path);
    };
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return Ok(path);
    };
    let ours = API_VERSION
        .split_once('.')
        .map(|(a, b)| (a.parse().unwrap_or(1), b.parse().unwrap_or(41)))
        .unwrap_or((1, 41));
    if (major, minor) > ours {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if (major, minor) < MIN_API_VERSION {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version",
            MIN_API_VERSION.0, MIN_API_VERSION.1
        )));
    }
    Ok(if tail.is_empty() { "/" } else { tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_stripped_and_checked() {
        assert_eq!(strip_version("/v1.41/images/json").unwrap(), "/images/json");
        assert_eq!(strip_version("/v1.24/_ping").unwrap(), "/_ping");
        assert_eq!(strip_version("/_ping").unwrap(), "/_ping");
        assert_eq!(strip_version("/version").unwrap(), "/version");
        assert_eq!(strip_version("/v1.41").unwrap(), "/");
        let too_new = strip_version("/v1.42/info").unwrap_err();
        assert_eq!(
            too_new.message(),
            "client version 1.42 is too new. Maximum supported API version is 1.41"
        );
        assert!(strip_version("/v1.11/info").is_err());
        assert!(strip_version("/v2.0/info").is_err());
        // Not a version at all: left for the areas (and their 404).
        assert_eq!(strip_version("/vx.y/info").unwrap(), "/vx.y/info");
        assert_eq!(
            strip_version("/v99999999999999.1/info").unwrap(),
            "/v99999999999999.1/info"
        );
    }

    #[test]
    fn unserved_features_are_named() {
        assert_eq!(unserved_feature("/swarm/init"), Some("swarm mode"));
        assert_eq!(unserved_feature("/plugins"), Some("docker plugins"));
        assert_eq!(unserved_feature("/images/json"), None);
    }
}
