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
mod error;
pub mod packages;
pub mod recipes;
mod rootfs;

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use store::{Digest, ErrorKind, Layer, Namespace, Reference, Store};

pub use error::{Error, RecipeError, Result, StepError};
pub use recipes::{Recipe, Step, catalog};

/// The store namespace that holds the catalog (what `docker pull` sees).
pub const HUB_NAMESPACE: &str = "hub";

/// The hub namespace as the store's type.
pub fn hub() -> Namespace {
    // A constant that is a valid namespace id; checked by a test.
    Namespace::new(HUB_NAMESPACE).unwrap_or_else(|_| unreachable!("\"hub\" is a valid namespace"))
}

/// One event of a build, in order. `Display` renders it as one line of
/// the `layerlab images build` output.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A recipe starts.
    Image {
        /// The recipe's first tag.
        name: String,
        /// How many steps it has.
        steps: usize,
    },
    /// A step starts (or is found in the cache).
    Step {
        /// The recipe's first tag.
        image: String,
        /// 1-based.
        step: usize,
        /// Steps in the recipe.
        steps: usize,
        /// The step's history line.
        created_by: String,
        /// Cached, building, or configuration only.
        status: StepStatus,
    },
    /// A line printed by a program a step runs (debootstrap, apt-get, gcc).
    Output {
        /// The recipe's first tag.
        image: String,
        /// One line, without its newline.
        line: String,
    },
    /// A step produced a new layer.
    Layer {
        /// The recipe's first tag.
        image: String,
        /// 1-based.
        step: usize,
        /// The stored layer blob.
        layer: Layer,
        /// Time the step took, layer compression included.
        elapsed: Duration,
    },
    /// The image is stored and tagged in the hub.
    Done(BuiltImage),
    /// The labs' package repository is ready.
    Packages(packages::Repository),
}

/// How a step is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Its layer came from the cache and is in the store.
    Cached,
    /// Its layer is being built.
    Building,
    /// It only changes the configuration.
    Config,
}

/// An image [`build`] stored and tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The recipe's first tag, e.g. `debian:bookworm`.
    pub name: String,
    /// Every tag it got in the hub.
    pub tags: Vec<String>,
    /// What the hub names point to.
    pub manifest_digest: Digest,
    /// The image ID.
    pub config_digest: Digest,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
    /// Whether any layer was built in this run (false: all from the cache).
    pub rebuilt: bool,
}

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

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Image { name, steps } => write!(f, "==> {name} ({steps} steps)"),
            Progress::Step {
                step,
                steps,
                created_by,
                status,
                ..
            } => {
                let line = created_by.lines().next().unwrap_or_default();
                let line: String = line.chars().take(100).collect();
                let note = match status {
                    StepStatus::Cached => " (cached)",
                    StepStatus::Building | StepStatus::Config => "",
                };
                write!(f, "Step {step}/{steps} : {line}{note}")
            }
            Progress::Output { line, .. } => write!(f, "    {line}"),
            Progress::Layer { layer, elapsed, .. } => write!(
                f,
                " ---> {} ({:.1} MB, {:.1}s)",
                layer.digest,
                layer.size as f64 / 1e6,
                elapsed.as_secs_f64()
            ),
            Progress::Packages(repository) => write!(
                f,
                "Package repository: {} packages ({})",
                repository.packages,
                if repository.rebuilt {
                    "built"
                } else {
                    "cached"
                }
            ),
            Progress::Done(image) => write!(
                f,
                "Tagged {} as {} ({})",
                image.manifest_digest,
                image.tags.join(", "),
                if image.rebuilt { "built" } else { "cached" }
            ),
        }
    }
}
