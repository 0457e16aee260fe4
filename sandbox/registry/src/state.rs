//! The registry's shared state: what it was opened with, which blobs each
//! repository holds, the uploads with a live writer, and the hub's
//! reachable blobs. Every handler reads it; it reaches no handler.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use store::content::Writer;
use store::{Digest, Namespace, Store};

use crate::context::lock;
use crate::documents::{self, MAX_MANIFEST_SIZE};
use crate::error::{Error, Result};
use crate::htpasswd::Htpasswd;
use crate::links::Links;
use crate::names::Naming;
use crate::upstream::Upstream;

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
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    /// The blobs each repository holds ([`Naming::Registry`] only). A std
    /// mutex: it is only locked inside `spawn_blocking` or for a lookup.
    pub(crate) blobs: Option<Mutex<Links>>,
    /// Uploads with a live writer in this process, by uuid.
    pub(crate) uploads: Uploads,
    /// For the hub: the blobs its names reach, with the names they were
    /// computed from (recomputed when the names change).
    pub(crate) reachable: Mutex<Option<Reachable>>,
    /// `Authorization` values already checked against the htpasswd file,
    /// so bcrypt runs once per client rather than once per request.
    pub(crate) verified: Mutex<HashSet<String>>,
}

impl Registry {
    /// Opens a registry; creates its blob lease if needed. One registry
    /// serves a namespace at a time (share it by cloning): the blob lease
    /// is read once and rewritten whole, so a second registry on the same
    /// namespace, in this process or another, is refused while the first
    /// is open.
    pub fn open(config: Config) -> Result<Registry> {
        let blobs = match config.naming {
            Naming::Registry => Some(Mutex::new(Links::open(&config.store, &config.namespace)?)),
            Naming::Hub => None,
        };
        Ok(Registry {
            inner: Arc::new(Inner {
                config,
                blobs,
                uploads: Uploads::default(),
                reachable: Mutex::new(None),
                verified: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// What this registry was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.config.store
    }

    pub(crate) fn namespace(&self) -> &Namespace {
        &self.inner.config.namespace
    }

    pub(crate) fn naming(&self) -> Naming {
        self.inner.config.naming
    }

    /// The hub's upstream, when it pulls through.
    pub(crate) fn upstream(&self) -> Option<&Upstream> {
        self.inner.config.upstream.as_ref()
    }

    /// Where manifests pulled through from the upstream are named.
    pub(crate) fn mirror(&self) -> Result<Namespace> {
        Namespace::new(MIRROR_NAMESPACE).map_err(|e| Error::Store(e.into()))
    }

    /// Whether `repository` serves blob `digest`; with no repository,
    /// whether any repository of the namespace does.
    pub(crate) fn holds_blob(&self, repository: Option<&str>, digest: &Digest) -> Result<bool> {
        match (&self.inner.blobs, repository) {
            (Some(links), Some(repository)) => Ok(lock(links).holds(repository, digest)),
            (Some(links), None) => Ok(lock(links).holds_anywhere(digest)),
            (None, _) => Ok(self.reachable()?.contains(digest)),
        }
    }

    /// Blobs reachable from the namespace's names (the hub's visibility),
    /// and from what was pulled through from its upstream.
    pub(crate) fn reachable(&self) -> Result<Arc<HashSet<Digest>>> {
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

/// The namespace naming what the hub pulled through from its upstream.
const MIRROR_NAMESPACE: &str = "hub-upstream";

/// The repositories this namespace has names in.
pub(crate) fn repositories(registry: &Registry) -> Result<Vec<String>> {
    Ok(registry
        .store()
        .list(registry.namespace())?
        .iter()
        .filter_map(|tag| registry.naming().repository(&tag.reference))
        .collect())
}

/// Uploads with an open writer, by uuid.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    pub(crate) live: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

#[derive(Debug)]
pub(crate) struct Slot {
    /// `None` until a request of this process opens it.
    pub(crate) writer: Option<Writer>,
    pub(crate) touched: Instant,
    /// Committed or cancelled: requests that waited on the lock find it gone.
    pub(crate) done: bool,
}

/// Whether `repository` (or, with none, any repository) holds `digest`.
pub(crate) async fn holds(
    registry: &Registry,
    repository: Option<&str>,
    digest: &Digest,
) -> Result<bool> {
    let registry = registry.clone();
    let repository = repository.map(str::to_owned);
    let digest = digest.clone();
    tokio::task::spawn_blocking(move || registry.holds_blob(repository.as_deref(), &digest)).await?
}

/// Adds committed blob `digest` to repository `name`.
pub(crate) async fn hold(registry: &Registry, name: &str, digest: Digest) -> Result<()> {
    let registry = registry.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        if let Some(links) = &registry.inner.blobs {
            lock(links).link(&name, digest)?;
        }
        Ok(())
    })
    .await?
}
