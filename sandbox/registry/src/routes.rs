//! URL parsing and dispatch.
//!
//! Repository names contain `/`, so routes cannot be matched segment by
//! segment: the raw path (never percent-decoded) is split into segments
//! and recognised by its tail (`…/blobs/uploads/<uuid>`, `…/manifests/<ref>`,
//! …); what precedes the tail is the name, checked against the spec's
//! pattern before anything else happens.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::context::Call;
use crate::error::{Code, Error, Result};
use crate::names::{ManifestRef, check_name};
use crate::state::Registry;
use crate::{auth, blobs, keep_alive, listing, manifests, uploads};

/// What a `/v2/…` path addresses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    Catalog,
    Tags {
        name: &'a str,
    },
    Blob {
        name: &'a str,
        digest: &'a str,
    },
    /// `uuid` is `None` for `POST …/blobs/uploads/`.
    Upload {
        name: &'a str,
        uuid: Option<&'a str>,
    },
    Manifest {
        name: &'a str,
        reference: &'a str,
    },
    Referrers {
        name: &'a str,
        digest: &'a str,
    },
}

/// Recognises the path after `/v2/`; `None` for anything else.
pub(crate) fn parse(path: &str) -> Option<Target<'_>> {
    if path == "_catalog" {
        return Some(Target::Catalog);
    }
    let name_before = |tail: &str| -> Option<&str> {
        let name = path.strip_suffix(tail)?;
        (!name.is_empty()).then_some(name)
    };
    if let Some(name) = name_before("/tags/list") {
        return Some(Target::Tags { name });
    }
    if let Some(name) = name_before("/blobs/uploads/").or_else(|| name_before("/blobs/uploads")) {
        return Some(Target::Upload { name, uuid: None });
    }
    let (head, last) = path.rsplit_once('/')?;
    let (name, kind) = head.rsplit_once('/')?;
    if name.is_empty() || last.is_empty() {
        return None;
    }
    match kind {
        "uploads" => {
            let name = name.strip_suffix("/blobs")?;
            (!name.is_empty()).then_some(Target::Upload {
                name,
                uuid: Some(last),
            })
        }
        "blobs" => Some(Target::Blob { name, digest: last }),
        "manifests" => Some(Target::Manifest {
            name,
            reference: last,
        }),
        "referrers" => Some(Target::Referrers { name, digest: last }),
        _ => None,
    }
}

pub(crate) fn router(registry: Registry) -> Router {
    Router::new()
        .route("/v2", any(ping))
        .route("/v2/", any(ping))
        .route("/v2/{*rest}", any(dispatch))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            registry.clone(),
            auth::require,
        ))
        .layer(middleware::from_fn(api_version))
        .layer(middleware::from_fn(keep_alive::drain_unread))
        .with_state(registry)
}

/// Every answer says which protocol it speaks; clients check it on `/v2/`.
async fn api_version(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn ping(method: Method) -> Response {
    match method {
        Method::GET | Method::HEAD => {
            let mut response = (StatusCode::OK, "{}").into_response();
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        _ => unsupported(),
    }
}

async fn not_found() -> Response {
    Error::protocol(
        Code::NameUnknown,
        "no such endpoint; the API lives under /v2/",
    )
    .into_response()
}

fn unsupported() -> Response {
    Error::protocol(Code::Unsupported, "method not allowed on this endpoint").into_response()
}

async fn dispatch(
    State(registry): State<Registry>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().strip_prefix("/v2/").unwrap_or_default();
    let call = Call {
        method: parts.method,
        headers: parts.headers,
        query,
        body,
    };
    match route(&registry, path, call).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(registry: &Registry, path: &str, call: Call) -> Result<Response> {
    let Some(target) = parse(path) else {
        return Ok(not_found().await);
    };
    let write = !matches!(call.method, Method::GET | Method::HEAD);
    if let Target::Tags { name }
    | Target::Blob { name, .. }
    | Target::Upload { name, .. }
    | Target::Manifest { name, .. }
    | Target::Referrers { name, .. } = &target
    {
        check_name(name)?;
    }
    if write && registry.config().read_only {
        return Err(Error::protocol(
            Code::Unsupported,
            "this registry is read-only",
        ));
    }
    let method = call.method.clone();
    match (target, method) {
        (Target::Catalog, Method::GET) => listing::catalog(registry, &call),
        (Target::Tags { name }, Method::GET) => listing::tags(registry, name, &call),
        (Target::Blob { name, digest }, Method::GET | Method::HEAD) => {
            blobs::get(registry, name, digest, call).await
        }
        (Target::Blob { name, digest }, Method::DELETE) => {
            blobs::delete(registry, name, digest).await
        }
        (Target::Upload { name, uuid: None }, Method::POST) => {
            uploads::start(registry, name, call).await
        }
        (
            Target::Upload {
                name,
                uuid: Some(uuid),
            },
            method,
        ) => match method {
            Method::GET => uploads::status(registry, name, uuid).await,
            Method::PATCH => uploads::patch(registry, name, uuid, call).await,
            Method::PUT => uploads::finish(registry, name, uuid, call).await,
            Method::DELETE => uploads::cancel(registry, uuid).await,
            _ => Ok(unsupported()),
        },
        (Target::Manifest { name, reference }, method) => {
            let reference = match ManifestRef::parse(reference) {
                Ok(reference) => reference,
                // A tag the pattern refuses names no manifest: reading or
                // deleting it is the 404 of any absent one, and only a
                // push is told the tag is malformed.
                Err(Error::Protocol {
                    code: Code::ManifestInvalid,
                    detail,
                }) if method != Method::PUT => {
                    return Err(Error::protocol(
                        Code::ManifestUnknown,
                        format!("repository {name} has no such manifest: {detail}"),
                    ));
                }
                Err(e) => return Err(e),
            };
            match method {
                Method::GET | Method::HEAD => {
                    manifests::get(registry, name, &reference, call).await
                }
                Method::PUT => manifests::put(registry, name, &reference, call).await,
                Method::DELETE => manifests::delete(registry, name, &reference).await,
                _ => Ok(unsupported()),
            }
        }
        (Target::Referrers { name, digest }, Method::GET) => {
            let filter = call.query.get("artifactType").cloned();
            manifests::referrers(registry, name, digest, filter).await
        }
        _ => Ok(unsupported()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_their_tail() {
        assert_eq!(parse("_catalog"), Some(Target::Catalog));
        assert_eq!(parse("a/b/tags/list"), Some(Target::Tags { name: "a/b" }));
        assert_eq!(
            parse("a/blobs/uploads/"),
            Some(Target::Upload {
                name: "a",
                uuid: None
            })
        );
        assert_eq!(
            parse("a/blobs/blobs/uploads/u-1"),
            Some(Target::Upload {
                name: "a/blobs",
                uuid: Some("u-1")
            })
        );
        assert_eq!(
            parse("x/manifests/y/manifests/latest"),
            Some(Target::Manifest {
                name: "x/manifests/y",
                reference: "latest"
            })
        );
        assert_eq!(
            parse("a/blobs/sha256:00"),
            Some(Target::Blob {
                name: "a",
                digest: "sha256:00"
            })
        );
        assert_eq!(
            parse("a/referrers/sha256:00"),
            Some(Target::Referrers {
                name: "a",
                digest: "sha256:00"
            })
        );
        assert_eq!(parse("manifests/latest"), None);
        assert_eq!(parse("a/manifests/"), None);
        assert_eq!(parse("a/other/x"), None);
    }
}
