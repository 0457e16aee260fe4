//! layerlab's OCI registry: the Distribution Spec v1.1 over the shared
//! content store.
//!
//! One [`Registry`] serves one store [`Namespace`]. It plays two roles:
//!
//! - **the hub** ([`hub`]): a read-only, anonymous view of the catalog
//!   namespace `hub`, with Docker Hub's naming (`busybox` is
//!   `library/busybox`), mounted by `layerlab serve`, optionally pulling
//!   what the catalog lacks through from an [`Upstream`];
//! - **a registry** ([`Registry::open`] with [`Naming::Registry`]): the
//!   program inside the `registry:2` image (`layerlab registry serve`),
//!   or a lab's own registry, optionally behind htpasswd basic auth.
//!
//! Modules: [`error`] (the spec's error table), [`names`] (repository
//! names, tags and their store references), `documents` (what a manifest
//! references), `links` (which blobs each repository holds), `htpasswd`
//! (the users file), `state` ([`Registry`] and what it holds), `context`
//! (the request as handlers see it and the helpers they share), `upstream`
//! (the hub's pull-through), [`keep_alive`] (answers sent before the
//! request's body was read, also used by the web server), and one module
//! per area of the protocol: `blobs`, `uploads`, `manifests`, `listing`
//! (tags and catalog), `auth`, `routes` (URL parsing and dispatch), `gc`.
//! Dependencies point one way: `routes` reaches the handlers, handlers
//! reach `state`, `upstream` and `context`, and those only leaves.
//!
//! Where things live:
//!
//! - blob bytes in the store's content area, shared and deduplicated with
//!   every image already there;
//! - which blobs each repository holds (`links`): one store lease per
//!   repository, which also keeps pushed blobs from GC until a manifest
//!   references them or they are deleted;
//! - tags as store names `localhost/<repo>:<tag>`, and every manifest the
//!   repository holds as `localhost/<repo>@<digest>`, so that the store's
//!   GC roots are exactly what the registry serves;
//! - uploads in progress in the store's ingest area under the ref
//!   `registry/<namespace>/<uuid>`: invisible until the final `PUT`
//!   verified the digest, resumable after a restart or a `kill -9`.
//!
//! Invariants: a blob is served only from a repository that holds it
//! (hub: only if a hub manifest references it); a manifest is stored only after
//! its bytes parsed, its digest matched and everything it references was
//! found; manifest bytes are served exactly as pushed; nothing from a URL
//! reaches a path (names match the spec's pattern, digests are hex).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = store::Store::open("/var/lib/registry".as_ref())?;
//! let namespace = store::Namespace::new("registry")?;
//! let registry = registry::Registry::open(registry::Config::new(store, namespace))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! registry::serve(listener, registry.router(), std::future::pending()).await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod auth;
mod blobs;
mod context;
mod documents;
pub mod error;
mod gc;
mod htpasswd;
pub mod keep_alive;
mod links;
mod listing;
mod manifests;
pub mod names;
mod routes;
mod state;
mod uploads;
mod upstream;

/// The parsers of what clients and upstreams send, reachable for the fuzz
/// targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{HeaderMap, HeaderValue, header};

    /// A pushed manifest or index as the registry validates it, and what
    /// it references: the document's media type.
    pub fn parse_document(
        digest: &store::Digest,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> crate::Result<String> {
        let doc = crate::documents::parse(digest, bytes, content_type)?;
        let _ = (doc.blobs(), doc.children(), doc.effective_artifact_type());
        Ok(doc.media_type)
    }

    /// A `Range` header against a blob of `size` bytes: the inclusive
    /// `(start, end)` served, `None` without a header, `Err` for a 416.
    pub fn range(value: Option<&HeaderValue>, size: u64) -> crate::Result<Option<(u64, u64)>> {
        crate::blobs::range(value, size)
    }

    /// Whether a chunk's `Content-Range` (and `Content-Length`) continue an
    /// upload that has `offset` bytes.
    pub fn content_range(
        content_range: HeaderValue,
        content_length: Option<HeaderValue>,
        offset: u64,
    ) -> crate::Result<()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_RANGE, content_range);
        if let Some(length) = content_length {
            headers.insert(header::CONTENT_LENGTH, length);
        }
        crate::uploads::check_chunk(&headers, offset)
    }

    /// A `WWW-Authenticate: Bearer …` challenge as `(realm, service,
    /// scope)`.
    pub fn bearer_challenge(value: &str) -> Option<(String, Option<String>, Option<String>)> {
        crate::upstream::BearerChallenge::parse(value).map(|c| (c.realm, c.service, c.scope))
    }

    /// `user` and `password` of an `Authorization: Basic …` value.
    pub fn basic_credentials(value: &str) -> Option<(String, String)> {
        crate::auth::credentials(value)
    }

    /// Whether a path after `/v2/` names something the registry serves.
    pub fn route(path: &str) -> bool {
        crate::routes::parse(path).is_some()
    }
}

use std::future::Future;

use store::{Namespace, Store};

pub use documents::MAX_MANIFEST_SIZE;
pub use error::{Code, Error, Result};
pub use gc::GcReport;
pub use htpasswd::Htpasswd;
pub use names::{ManifestRef, Naming, REPOSITORY_DOMAIN};
pub use state::{Config, Registry};
pub use upstream::Upstream;

impl Registry {
    /// The HTTP API (`/v2/…`) of this registry.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }
}

/// The hub: a read-only, anonymous registry over the store's `hub`
/// namespace with Docker Hub's naming, pulling what the catalog lacks
/// through from `upstream` when one is given.
pub fn hub(store: Store, upstream: Option<Upstream>) -> Result<axum::Router> {
    let namespace = Namespace::new("hub").map_err(store::Error::from)?;
    let registry = Registry::open(Config {
        naming: Naming::Hub,
        read_only: true,
        upstream,
        ..Config::new(store, namespace)
    })?;
    Ok(registry.router())
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
