//! What a build reports: its [`Progress`] events, and the images and
//! package repository it made. Shared by the builders of images and of the
//! package repository, and depending on neither.

use std::fmt;
use std::time::Duration;

use store::{Digest, Layer};

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
    Packages(Repository),
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

/// An image [`crate::build`] stored and tagged.
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

/// What making the package repository did, as [`crate::build_catalog`]
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `.deb` files it serves.
    pub packages: usize,
    /// Whether it was made in this run (false: the last one is current).
    pub rebuilt: bool,
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
