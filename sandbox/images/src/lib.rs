//! The catalog images of layerlab's hub, built from Debian packages.
//!
//! This machine reaches Debian's package archive, not Docker Hub, so every
//! image a lesson pulls (`busybox`, `debian`, `nginx`, `hello-world`) and
//! the lab node's own image (`workstation`) is built here from recipes and
//! stored in the store's `hub` namespace, where `docker pull` finds them.
//!
//! - [`recipes`]: [`Recipe`]s and their [`Step`]s as data; [`catalog`]
//!   lists the catalog, parents first. `registry:2` and `workstation`
//!   carry the layerlab binary itself at `/usr/local/bin/layerlab` (one
//!   shared layer), so `layerlab registry serve` runs in both.
//! - [`build_catalog`] / [`build`]: apply recipes, reporting [`Progress`]
//!   events (debootstrap and apt-get output included, line by line), and
//!   tag the results in the hub. The binary wires this as
//!   `layerlab images build`.
//! - [`packages`]: the Debian package repository labs install from
//!   offline, signed with the installation's key, which the catalog's
//!   Debian images trust; [`build_catalog`] keeps it current.
//! - [`list`] and [`export`]: `layerlab images list` and
//!   `layerlab images export NAME FILE` (an OCI archive that
//!   `skopeo inspect oci-archive:FILE` accepts).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = store::Store::open("/var/lib/layerlab/store".as_ref())?;
//! let layerlab = std::env::current_exe()?;
//! let mirror = images::packages::Mirror::new("/var/lib/layerlab/packages".as_ref());
//! let built = images::build_catalog(&store, "/var/tmp/layerlab/images".as_ref(), &layerlab, &mirror, |event| {
//!     println!("{event}");
//! })?;
//! for summary in images::list(&store)? {
//!     println!("{} {}", summary.name, summary.manifest_digest);
//! }
//! images::export(&store, "nginx", "/tmp/nginx.tar".as_ref())?;
//! # drop(built); Ok(()) }
//! ```
//!
//! Invariants:
//! - A layer is rebuilt only when its step, an earlier step or the parent
//!   image changed (the key chain is described in `cache`), and a cached
//!   layer is used only after the store confirmed it holds the blob.
//! - Images built on another share its layers: nginx's and workstation's
//!   first layer is debian's layer, byte for byte.
//! - The same recipes and cache give the same config and manifest digests.
//! - A build holds an flock on the cache directory, so concurrent builds
//!   of one cache run one after the other.
//! - Builds run as host root with the host's network, in a private mount
//!   namespace (nothing stays mounted after a build); they run only our
//!   own recipes, never student input.
//!
//! Host packages needed: `debootstrap`, `busybox-static`, `gcc` and
//! `libc6-dev` (the static hello program), `binutils` (`strip` for the
//! layerlab binary in `registry` and `workstation`), `gnupg` and
//! `dpkg-dev` (the package repository's key, signatures and index);
//! `skopeo` for the tests.

#![deny(missing_docs)]

mod build;
mod cache;
mod chroot;
mod command;
mod config;
mod debian;
mod error;
mod hub;
pub mod packages;
mod progress;
pub mod recipes;
mod rootfs;

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::Path;

use store::{Digest, ErrorKind, Reference, Store};

pub use error::{Error, RecipeError, Result, StepError};
pub use hub::{HUB_NAMESPACE, hub};
pub use progress::{BuiltImage, Progress, StepStatus};
pub use recipes::{Recipe, Step, catalog};

/// One image of the hub, for `layerlab images list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Familiar name, e.g. `nginx:latest`.
    pub name: String,
    /// What the name points to.
    pub manifest_digest: Digest,
    /// The image ID.
    pub config_digest: Digest,
    /// Number of layers.
    pub layers: usize,
    /// Compressed size of its layers.
    pub size: u64,
    /// Built for layerlab itself (the lab node), not for lessons.
    pub internal: bool,
}

/// Builds [`catalog`] into the hub namespace of `store`, with the build
/// cache in `cache_dir` (e.g. `/var/tmp/layerlab/images`); `layerlab` is
/// the executable the `registry` and `workstation` images carry. Then
/// makes `mirror`'s package repository on the built Debian image (its key
/// first, the first time: the Debian images carry it).
pub fn build_catalog(
    store: &Store,
    cache_dir: &Path,
    layerlab: &Path,
    mirror: &packages::Mirror,
    mut progress: impl FnMut(Progress),
) -> Result<Vec<BuiltImage>> {
    let _lock = mirror.lock()?;
    let key = mirror.ensure_key(&mut progress)?;
    let built = build::build(store, cache_dir, &catalog(layerlab, &key), &mut progress)?;
    let debian = built
        .iter()
        .find(|b| b.name == recipes::DEBIAN)
        .ok_or(RecipeError::NoDebian)?;
    let repository = mirror.build(store, cache_dir, debian, &mut progress)?;
    progress(Progress::Packages(repository));
    Ok(built)
}

/// Builds `recipes` in order into the hub namespace. A recipe's parent must
/// come earlier in the list or already be in the hub.
pub fn build(
    store: &Store,
    cache_dir: &Path,
    recipes: &[Recipe],
    mut progress: impl FnMut(Progress),
) -> Result<Vec<BuiltImage>> {
    build::build(store, cache_dir, recipes, &mut progress)
}

/// Every image in the hub namespace, sorted by name.
pub fn list(store: &Store) -> Result<Vec<ImageSummary>> {
    // Recipes are data: the binary path is read only when one is built.
    let internal: BTreeSet<String> = catalog(
        Path::new(recipes::LAYERLAB_PATH),
        Path::new(packages::KEYRING_PATH),
    )
    .iter()
    .filter(|r| r.internal)
    .flat_map(|r| r.tags.iter())
    .filter_map(|t| Reference::parse(t).ok())
    .map(|r| r.familiar())
    .collect();
    let mut out = Vec::new();
    for tag in store.list(&hub())? {
        let image = store.image(&tag.digest)?;
        let name = tag.reference.familiar();
        out.push(ImageSummary {
            internal: internal.contains(&name),
            name,
            manifest_digest: tag.digest,
            config_digest: image.config_digest,
            layers: image.layers.len(),
            size: image.layers.iter().map(|l| l.size).sum(),
        });
    }
    Ok(out)
}

/// Writes hub image `name` (e.g. `nginx`, `debian:bookworm`) to `path` as
/// an OCI archive. The file appears complete or not at all.
pub fn export(store: &Store, name: &str, path: &Path) -> Result<Digest> {
    let reference = Reference::parse(name).map_err(|source| Error::InvalidName {
        name: name.to_owned(),
        source,
    })?;
    let hub = hub();
    let digest = match store.resolve(&hub, &reference) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::UnknownImage {
                name: reference.familiar(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::ExportDirMissing {
            path: path.to_owned(),
            dir: dir.to_owned(),
        });
    }
    let write_err = |source| Error::ExportWrite {
        path: path.to_owned(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        store.export_oci_archive(&hub, &[reference], &mut out)?;
        out.flush().map_err(write_err)?;
    }
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(digest)
}
