//! The crate error, composed from each module's own.

use std::io;
use std::path::PathBuf;

use crate::cache::CacheError;
use crate::chroot::ChrootError;
use crate::rootfs::RootfsError;

/// Why a recipe list cannot be built as given.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("a recipe has no tags; give it at least one name:tag")]
    NoTags,
    #[error("recipe {recipe}: tag {tag:?} is not a valid image name: {source}")]
    BadTag {
        recipe: String,
        tag: String,
        #[source]
        source: store::Error,
    },
    #[error(
        "recipe {recipe} builds on {parent}, which is neither earlier in the list nor in the hub; build {parent} first"
    )]
    UnknownParent { recipe: String, parent: String },
    #[error("recipe {recipe}: the parent image {parent} has a config we cannot read: {source}")]
    ParentConfig {
        recipe: String,
        parent: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What went wrong inside one build step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Chroot(#[from] ChrootError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode an image config: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the store gave no writable directory for snapshot {0}")]
    NoUpperdir(String),
    #[error("a debootstrap step must be the first layer of a scratch recipe")]
    DebootstrapOnTop,
}

/// Every error of the crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error("building {image}, step {step} ({what}): {source}")]
    Step {
        image: String,
        step: usize,
        /// The start of the step's history line, enough to find it in the recipe.
        what: String,
        /// Boxed: a step error is large and rare, the `Ok` path is hot.
        #[source]
        source: Box<StepError>,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot encode an image config or recipe step: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("invalid image name {name:?}: {source}")]
    InvalidName {
        name: String,
        #[source]
        source: store::reference::ReferenceError,
    },
    #[error(
        "no image {name} in the hub; `layerlab images list` shows what is there, `layerlab images build` builds the catalog"
    )]
    UnknownImage { name: String },
    #[error(
        "cannot export to {}: directory {} does not exist; create it first or choose another path",
        path.display(),
        dir.display()
    )]
    ExportDirMissing { path: PathBuf, dir: PathBuf },
    #[error("cannot export to {}: {source}", path.display())]
    ExportWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
