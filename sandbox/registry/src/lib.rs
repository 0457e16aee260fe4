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
//! references), `links` (which blobs each repository holds), `upstream`
//! (the hub's pull-through), [`keep_alive`] (answers sent before the
//! request's body was read, also used by the web server), and one module
//! per area of the protocol: `blobs`, `uploads`, `manifests`, `listing`
//! (tags and catalog), `auth`, `routes` (URL parsing and dispatch), `gc`.
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
mod documents;
pub mod error;
mod gc;
pub mod keep_alive;
mod links;
mod listing;
mod manifests;
pub mod names;
mod routes;
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

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use store::{Digest, Namespace, Store};

pub use auth::Htpasswd;
pub use error::{Code, Error, Result};
pub use gc::GcReport;
pub use names::{ManifestRef, Naming, REPOSITORY_DOMAIN};
pub use upstream::Upstream;

/// Largest manifest or index accepted (distribution's limit too).
pub const MAX_MANIFEST_SIZE: u64 = store::manifests::MAX_DOCUMENT_SIZE;

/// What a [`Registry`] serves and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The content store blobs, names and uploads live in.
    pub store: Store,
    /// The store namespace holding this registry's names.
    pub namespace: Namespace,
    /// How repository names map to store references.
    pub naming: Naming,
    /// Refuse every write (`405 UNSUPPORTED`).
    pub read_only: bool,
    /// When set, every request needs basic auth from this file.
    pub htpasswd: Option<Htpasswd>,
    /// Manifests larger than this are refused with `413`.
    pub max_manifest_size: u64,
    /// For the hub: where to pull through from what the catalog lacks.
    pub upstream: Option<Upstream>,
}

impl Config {
    /// A writable registry with [`Naming::Registry`], no auth.
    pub fn new(store: Store, namespace: Namespace) -> Config {
        Config {
            store,
            namespace,
            naming: Naming::Registry,
            read_only: false,
            htpasswd: None,
            max_manifest_size: MAX_MANIFEST_SIZE,
            upstream: None,
        }
    }
}

/// A registry over one namespace; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    /// The blobs each repository holds ([`Naming::Registry`] only). A std
    /// mutex: it is only locked inside `spawn_blocking` or for a lookup.
    blobs: Option<Mutex<links::Links>>,
    /// Uploads with a live writer in this process, by uuid.
    uploads: uploads::Uploads,
    /// For the hub: the blobs its names reach, with the names they were
    /// computed from (recomputed when the names change).
    reachable: Mutex<Option<Reachable>>,
    /// `Authorization` values already checked against the htpasswd file,
    /// so bcrypt runs once per client rather than once per request.
    verified: Mutex<HashSet<String>>,
}

impl Registry {
    /// Opens a registry; creates its blob lease if needed. One registry
    /// serves a namespace at a time (share it by cloning): the blob lease
    /// is read once and rewritten whole, so a second registry on the same
    /// namespace, in this process or another, is refused while the first
    /// is open.
    pub fn open(config: Config) -> Result<Registry> {
        let blobs = match config.naming {
            Naming::Registry => Some(Mutex::new(links::Links::open(
                &config.store,
                &config.namespace,
            )?)),
            Naming::Hub => None,
        };
        Ok(Registry {
            inner: Arc::new(Inner {
                config,
                blobs,
                uploads: uploads::Uploads::default(),
                reachable: Mutex::new(None),
                verified: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// What this registry was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn store(&self) -> &Store {
        &self.inner.config.store
    }

    fn namespace(&self) -> &Namespace {
        &self.inner.config.namespace
    }

    fn naming(&self) -> Naming {
        self.inner.config.naming
    }

    /// The hub's upstream, when it pulls through.
    fn upstream(&self) -> Option<&Upstream> {
        self.inner.config.upstream.as_ref()
    }

    /// Where manifests pulled through from the upstream are named.
    fn mirror(&self) -> Result<Namespace> {
        Namespace::new(MIRROR_NAMESPACE).map_err(|e| Error::Store(e.into()))
    }

    /// The HTTP API (`/v2/…`) of this registry.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Whether `repository` serves blob `digest`; with no repository,
    /// whether any repository of the namespace does.
    fn holds_blob(&self, repository: Option<&str>, digest: &Digest) -> Result<bool> {
        match (&self.inner.blobs, repository) {
            (Some(links), Some(repository)) => Ok(lock(links).holds(repository, digest)),
            (Some(links), None) => Ok(lock(links).holds_anywhere(digest)),
            (None, _) => Ok(self.reachable()?.contains(digest)),
        }
    }

    /// Blobs reachable from the namespace's names (the hub's visibility),
    /// and from what was pulled through from its upstream.
    fn reachable(&self) -> Result<Arc<HashSet<Digest>>> {
        let mut tags = self.store().list(self.namespace())?;
        if self.upstream().is_some() {
            tags.extend(self.store().list(&self.mirror()?)?);
        }
        let names: Vec<(String, Digest)> = tags
            .into_iter()
            .map(|t| (t.reference.to_string(), t.digest))
            .collect();
        if let Some((cached_names, set)) = lock(&self.inner.reachable).as_ref()
            && *cached_names == names
        {
            return Ok(set.clone());
        }
        let mut set = HashSet::new();
        let mut pending: Vec<Digest> = names.iter().map(|(_, d)| d.clone()).collect();
        while let Some(digest) = pending.pop() {
            if !set.insert(digest.clone()) {
                continue;
            }
            let Ok(bytes) = self.store().read_blob(&digest, MAX_MANIFEST_SIZE) else {
                continue;
            };
            let Ok(doc) = documents::parse(&digest, &bytes, None) else {
                continue;
            };
            set.extend(doc.blobs().unwrap_or_default());
            pending.extend(doc.children().unwrap_or_default());
        }
        let set = Arc::new(set);
        *lock(&self.inner.reachable) = Some((names, set.clone()));
        Ok(set)
    }
}

/// The names a reachability set was computed from, and the set.
type Reachable = (Vec<(String, Digest)>, Arc<HashSet<Digest>>);

/// Locks a std mutex, recovering from a panic in another holder: every
/// value kept under these locks stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The namespace naming what the hub pulled through from its upstream.
const MIRROR_NAMESPACE: &str = "hub-upstream";

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

/// The repositories this namespace has names in.
fn repositories(registry: &Registry) -> Result<Vec<String>> {
    Ok(registry
        .store()
        .list(registry.namespace())?
        .iter()
        .filter_map(|tag| registry.naming().repository(&tag.reference))
        .collect())
}
