//! layerlab's content-addressed image store.
//!
//! Everything the engine, registry, builder and runtime know about images
//! lives here, under one root directory (its layout is drawn in `layout.rs`):
//!
//! - **Content** ([`content`]): blobs addressed by digest (sha256, or
//!   sha512 when a client names one), written under an ingest ref,
//!   checked (size and digest) and published by atomic rename.
//! - **Manifests** ([`manifests`]): OCI manifests/indexes and Docker schema2
//!   manifests/lists, always kept as the exact bytes received, so an image
//!   ID is the sha256 of its raw config and a manifest digest that of its
//!   raw bytes.
//! - **Names** ([`names`], [`reference`]): Docker-normalized references
//!   mapped to manifest digests, in isolated [`Namespace`]s (`hub`,
//!   `engine-<id>`, `registry-<id>`). Blobs and snapshots are shared.
//! - **Snapshots** ([`snapshots`]): each layer unpacked once into a
//!   read-only directory keyed by chain id, usable as an overlay lowerdir;
//!   writable snapshots on top.
//! - **Layers** ([`archive`]): tar ↔ directory with whiteouts converted,
//!   hostile tars refused, deterministic diffs.
//! - **Leases and GC** ([`leases`], [`Store::gc`]): mark and sweep that
//!   never frees what a name, a lease or an active snapshot references.
//! - **Transfer** ([`transfer`]): OCI image layout (dir and tar) and
//!   `docker save` archives, both directions.
//!
//! Invariants: a blob file never changes after commit; nothing is visible
//! under `blobs/` or `snapshots/committed/` until complete; nothing from a
//! tar, manifest or archive is trusted (sizes, digests and paths are
//! checked); no id is ever shifted when unpacking (the runtime maps ids with
//! idmapped mounts).
//!
//! [`Store`] is cheap to clone and safe to share between threads and
//! processes. Its calls block on disk I/O: async callers use
//! `spawn_blocking`.
//!
//! ```no_run
//! # fn main() -> Result<(), store::Error> {
//! use store::{Store, Namespace, Reference, archive::DiffOptions};
//! let store = Store::open("/var/lib/layerlab/store".as_ref())?;
//! let layer = store.create_layer_from_dir("/tmp/rootfs".as_ref(), &DiffOptions::default())?;
//! let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
//! # let config: Vec<u8> = config.to_vec();
//! let image = store.write_image(&config, &[layer])?;
//! let hub = Namespace::new("hub")?;
//! store.tag(&hub, &Reference::parse("busybox")?, &image.manifest_digest)?;
//! let unpacked = store.unpack(&store.resolve(&hub, &Reference::parse("busybox:latest")?)?)?;
//! println!("lowerdir={}", unpacked.lowerdir_option());
//! # Ok(()) }
//! ```

pub mod archive;
pub mod content;
pub mod digest;
mod durable;
mod error;
mod gc;
mod image;
mod layers;
mod layout;
pub mod leases;
pub mod manifests;
pub mod media_types;
pub mod names;
pub mod reference;
pub mod snapshots;
pub mod transfer;

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use archive::{Compression, DiffOptions, Limits};
pub use content::{ContentStore, Expected, Info};
pub use digest::{Algorithm, Digest};
pub use error::{Error, ErrorKind, Result};
pub use gc::{GcOptions, GcReport};
pub use image::{ImageRef, Unpacked};
pub use leases::Lease;
pub use manifests::{Image, Layer};
pub use names::{Namespace, Tag};
pub use reference::Reference;
pub use snapshots::{Mounts, Snapshots};
pub use transfer::Imported;

use crate::content::{Manager, Provider};
use crate::error::IoContext;
use crate::layout::Layout;
use crate::names::Names;

/// Tunables fixed when the store is opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Bounds applied to every layer unpacked.
    pub limits: Limits,
}

/// Handle to a store root; clones share it.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    layout: Layout,
    content: ContentStore,
    names: Names,
    snapshots: Snapshots,
    options: Options,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        Store::open_with(root, Options::default())
    }

    pub fn open_with(root: &Path, options: Options) -> Result<Store> {
        let layout = Layout::new(root);
        for dir in layout.dirs() {
            fs::create_dir_all(&dir).ctx("creating store directory", &dir)?;
        }
        let content = ContentStore::new(layout.clone());
        let snapshots = Snapshots::new(layout.clone(), content.clone(), options.limits);
        Ok(Store {
            inner: Arc::new(Inner {
                names: Names::new(layout.clone()),
                layout,
                content,
                snapshots,
                options,
            }),
        })
    }

    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    pub(crate) fn names_db(&self) -> &Names {
        &self.inner.names
    }

    /// The content store (containerd-style traits: [`content::Provider`],
    /// [`content::Ingester`], [`content::IngestManager`], [`content::Manager`]).
    pub fn content(&self) -> &ContentStore {
        &self.inner.content
    }

    pub fn snapshots(&self) -> &Snapshots {
        &self.inner.snapshots
    }

    // ---- blobs ----

    /// Writes a blob from `reader`, checking `expected` digest and size.
    pub fn write_blob(&self, reader: impl std::io::Read, expected: Expected) -> Result<Info> {
        self.content().write(reader, expected)
    }

    pub fn write_blob_bytes(&self, bytes: &[u8]) -> Result<Info> {
        self.content().write_bytes(bytes)
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<fs::File> {
        self.content().open(digest)
    }

    /// Reads a whole blob of at most `limit` bytes.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        self.content().read_all(digest, limit)
    }

    /// Path of a committed blob (read-only; for handing to other programs).
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        self.content().path(digest)
    }

    pub fn blob_info(&self, digest: &Digest) -> Result<Info> {
        self.content().info(digest)
    }

    pub fn blob_exists(&self, digest: &Digest) -> bool {
        self.content().exists(digest)
    }

    /// Deletes a blob now, referenced or not; prefer [`Store::gc`].
    pub fn delete_blob(&self, digest: &Digest) -> Result<()> {
        self.content().delete(digest)
    }

    // ---- names ----

    /// Points `reference` in `namespace` at `manifest_digest` (which must be
    /// stored). Returns the digest it pointed to before, if any.
    pub fn tag(
        &self,
        namespace: &Namespace,
        reference: &Reference,
        manifest_digest: &Digest,
    ) -> Result<Option<Digest>> {
        let _gc = durable::FileLock::shared(&self.layout().lock())?;
        if !self.blob_exists(manifest_digest) {
            return Err(content::ContentError::NotFound(manifest_digest.clone()).into());
        }
        self.names_db().tag(namespace, reference, manifest_digest)
    }

    /// Removes a name; returns the digest it pointed to.
    pub fn untag(&self, namespace: &Namespace, reference: &Reference) -> Result<Digest> {
        self.names_db().untag(namespace, reference)
    }

    /// The manifest digest `reference` names in `namespace`. A digest
    /// reference resolves only if the namespace names that digest.
    pub fn resolve(&self, namespace: &Namespace, reference: &Reference) -> Result<Digest> {
        self.names_db().resolve(namespace, reference)
    }

    /// All names of a namespace, sorted.
    pub fn list(&self, namespace: &Namespace) -> Result<Vec<Tag>> {
        self.names_db().list(namespace)
    }

    /// Drops every name of `namespace`; what only they reached is left
    /// for GC.
    pub fn remove_namespace(&self, namespace: &Namespace) -> Result<()> {
        self.names_db().remove_namespace(namespace)
    }

    /// Namespaces that have (or had) names.
    pub fn namespaces(&self) -> Result<Vec<Namespace>> {
        self.names_db().namespaces()
    }

    // ---- leases ----

    /// Takes over a lease kept with [`Lease::keep`].
    pub fn adopt_lease(&self, id: &str) -> Result<Lease> {
        Lease::adopt(self.layout(), id)
    }

    /// Releases a kept lease by id.
    pub fn release_lease(&self, id: &str) -> Result<()> {
        leases::release(self.layout(), id)
    }

    /// Ids of all leases on disk.
    pub fn leases(&self) -> Result<Vec<String>> {
        leases::list(self.layout())
    }

    /// The lease named `id` (a safe id such as `registry-1`), created if
    /// missing. Named leases persist across handles and restarts until
    /// [`Store::release_lease`].
    pub fn named_lease(&self, id: &str) -> Result<Lease> {
        Lease::named(self.layout(), id)
    }

    /// A new, empty lease.
    pub fn lease(&self) -> Result<Lease> {
        Lease::create(self.layout(), leases::LeaseRecord::default())
    }
}
