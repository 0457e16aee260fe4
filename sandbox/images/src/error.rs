//! The crate error, composed from each module's own.

use std::io;
use std::path::PathBuf;

use crate::cache::CacheError;
use crate::chroot::ChrootError;
use crate::rootfs::RootfsError;

/// Why a recipe list cannot be built as given.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// A recipe without a name.
    #[error("a recipe has no tags; give it at least one name:tag")]
    NoTags,
    /// A tag that is not a Docker image reference.
    #[error("recipe {recipe}: tag {tag:?} is not a valid image name: {source}")]
    BadTag {
        /// The recipe's first tag.
        recipe: String,
        /// The offending tag.
        tag: String,
        /// What the reference parser said.
        #[source]
        source: store::Error,
    },
    /// The parent is neither built earlier in this run nor in the hub.
    #[error(
        "recipe {recipe} builds on {parent}, which is neither earlier in the list nor in the hub; build {parent} first"
    )]
    UnknownParent {
        /// The recipe's first tag.
        recipe: String,
        /// The parent it names.
        parent: String,
    },
    /// The catalog has no Debian image to make the package repository for.
    #[error(
        "the catalog has no {} recipe, which the package repository is made for",
        crate::recipes::DEBIAN
    )]
    NoDebian,
    /// The parent image in the hub has a config this crate cannot read.
    #[error("recipe {recipe}: the parent image {parent} has a config we cannot read: {source}")]
    ParentConfig {
        /// The recipe's first tag.
        recipe: String,
        /// The parent it names.
        parent: String,
        /// The decoding failure.
        #[source]
        source: serde_json::Error,
    },
}

/// What went wrong inside one build step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Producing a tree on the host failed (debootstrap, busybox, files).
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// A run step's chroot could not be set up, or its script failed.
    #[error(transparent)]
    Chroot(#[from] ChrootError),
    /// The build cache could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The store refused a snapshot, layer or image.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A host file a step needs could not be read or written.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// The operation.
        what: &'static str,
        /// The file it was applied to.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The store handed out a snapshot without an upperdir.
    #[error("the store gave no writable directory for snapshot {0}")]
    NoUpperdir(String),
    /// debootstrap makes a whole root filesystem, never a layer on top.
    #[error("a debootstrap step must be the first layer of a scratch recipe")]
    DebootstrapOnTop,
}

/// Every error of the crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipes are inconsistent.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// One step failed; nothing of it was kept.
    #[error("building {image}, step {step} ({what}): {source}")]
    Step {
        /// The recipe's first tag.
        image: String,
        /// 1-based.
        step: usize,
        /// The start of the step's history line, enough to find it in the recipe.
        what: String,
        /// Boxed: a step error is large and rare, the `Ok` path is hot.
        #[source]
        source: Box<StepError>,
    },
    /// The build cache directory is unusable.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// An image config or recipe step could not be encoded.
    #[error("cannot encode an image config or recipe step: {0}")]
    Encode(#[source] serde_json::Error),
    /// A name given to [`crate::export`] is not an image reference.
    #[error("invalid image name {name:?}: {source}")]
    InvalidName {
        /// As given.
        name: String,
        /// What the reference parser said.
        #[source]
        source: store::reference::ReferenceError,
    },
    /// A valid name the hub does not have.
    #[error(
        "no image {name} in the hub; `layerlab images list` shows what is there, `layerlab images build` builds the catalog"
    )]
    UnknownImage {
        /// Familiar form of the name.
        name: String,
    },
    /// The export file's directory does not exist.
    #[error(
        "cannot export to {}: directory {} does not exist; create it first or choose another path",
        path.display(),
        dir.display()
    )]
    ExportDirMissing {
        /// The file asked for.
        path: PathBuf,
        /// Its missing directory.
        dir: PathBuf,
    },
    /// Writing the export file failed.
    #[error("cannot export to {}: {source}", path.display())]
    ExportWrite {
        /// The file asked for.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The labs' package repository or its key could not be made.
    #[error("the package repository: {0}")]
    Packages(#[from] crate::packages::PackagesError),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
