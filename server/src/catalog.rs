//! Whether the catalog images labs are made from are in the store: the one
//! source of truth for "catalog ready", cheap to read.
//!
//! `serve` on a store that lacks catalog images starts at once and builds
//! them in the background with the code `layerlab images build` runs
//! (cached, so only what is missing costs time). Pages show how far it
//! got; a lab waits for its own image rather than failing. A failed build
//! is not retried while the server runs (it would fail the same way, for
//! minutes, on every lab start): labs that need a missing image fail with
//! the build's error, and restarting the server tries again.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

/// What the catalog is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CatalogStatus {
    /// Building: `done` of `total` steps (the images, then the labs'
    /// package repository) are finished, `current` is under way.
    Preparing {
        done: usize,
        total: usize,
        current: String,
    },
    /// Every catalog image is in the store.
    Ready,
    /// The build failed with this error (or the server was told not to
    /// build); restarting the server tries again.
    Failed { error: String },
}

impl fmt::Display for CatalogStatus {
    /// "debian 2/7": the step under way and its place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogStatus::Preparing {
                done,
                total,
                current,
            } => write!(f, "{current} {}/{total}", (done + 1).min(*total)),
            CatalogStatus::Ready => f.write_str("ready"),
            CatalogStatus::Failed { error } => write!(f, "failed: {error}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot open the image store in {dir}: {source}")]
    Store { dir: PathBuf, source: store::Error },
    #[error(
        "the lab images could not be prepared ({0}); an administrator can restart the server to try again, or run `layerlab images build` to see every step"
    )]
    Failed(String),
}

/// The status and the images ready so far (canonical references), which
/// labs wait on.
#[derive(Debug, Clone)]
struct Snapshot {
    status: CatalogStatus,
    ready: BTreeSet<String>,
}

pub struct Catalog {
    state: watch::Sender<Snapshot>,
}

/// Where a build gets its inputs.
pub struct BuildPlan {
    pub store_dir: PathBuf,
    pub cache_dir: PathBuf,
    /// The executable `registry:2` and `workstation` carry.
    pub layerlab: PathBuf,
    pub mirror: images::packages::Mirror,
}

/// The canonical form of an image name, or the name itself when it does
/// not parse (such a lab fails later, saying why).
fn canonical(name: &str) -> String {
    store::Reference::parse(name)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| name.to_owned())
}

/// The name pages show for a recipe's first tag: `debian:bookworm` is
/// `debian`.
fn short(tag: &str) -> String {
    store::Reference::parse(tag)
        .map(|r| r.familiar_name())
        .unwrap_or_else(|_| tag.to_owned())
}

impl Catalog {
    fn new(status: CatalogStatus, ready: BTreeSet<String>) -> Arc<Catalog> {
        Arc::new(Catalog {
            state: watch::Sender::new(Snapshot { status, ready }),
        })
    }

    /// A catalog whose every image is in the store, for a host that brings
    /// its own images (a test's fake host).
    pub fn ready() -> Arc<Catalog> {
        Catalog::new(CatalogStatus::Ready, BTreeSet::new())
    }

    /// Looks for every catalog image in the store; when some are missing,
    /// builds the catalog on a thread of its own and returns at once, or
    /// without `build` reports them as a failure.
    pub fn prepare(plan: BuildPlan, build: bool) -> Result<Arc<Catalog>, CatalogError> {
        let store = store::Store::open(&plan.store_dir).map_err(|source| CatalogError::Store {
            dir: plan.store_dir.clone(),
            source,
        })?;
        // Recipes are data: the paths they name are read only by a build.
        let recipes = images::catalog(
            Path::new(images::recipes::LAYERLAB_PATH),
            Path::new(images::packages::KEYRING_PATH),
        );
        let hub = images::hub();
        let (ready, missing): (Vec<String>, Vec<String>) = recipes
            .iter()
            .filter_map(|r| r.tags.first().cloned())
            .partition(|tag| {
                store::Reference::parse(tag).is_ok_and(|r| store.resolve(&hub, &r).is_ok())
            });
        if missing.is_empty() {
            return Ok(Catalog::ready());
        }
        let ready: BTreeSet<String> = ready.iter().map(|t| canonical(t)).collect();
        if !build {
            let error = format!(
                "{} not in the store, and --missing-images fail keeps the server from building them",
                missing.join(", ")
            );
            tracing::warn!("{error}; labs needing them fail until `layerlab images build` has run");
            return Ok(Catalog::new(CatalogStatus::Failed { error }, ready));
        }
        tracing::info!(
            missing = %missing.join(", "),
            "catalog images are missing from the store; building them in the background (minutes the first time), labs wait for theirs"
        );
        let first = recipes
            .first()
            .and_then(|r| r.tags.first())
            .map(|t| short(t))
            .unwrap_or_default();
        let total = recipes.len() + 1;
        let catalog = Catalog::new(
            CatalogStatus::Preparing {
                done: 0,
                // The package repository is the last step.
                total,
                current: first,
            },
            ready,
        );
        let building = catalog.clone();
        std::thread::Builder::new()
            .name("catalog-build".into())
            .spawn(move || building.build(store, plan, total))
            .map_err(|e| CatalogError::Failed(format!("cannot start the build thread: {e}")))?;
        Ok(catalog)
    }

    fn build(&self, store: store::Store, plan: BuildPlan, total: usize) {
        let mut done = 0;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            images::build_catalog(
                &store,
                &plan.cache_dir,
                &plan.layerlab,
                &plan.mirror,
                |event| self.progress(event, &mut done, total),
            )
        }));
        let status = match result {
            Ok(Ok(built)) => {
                tracing::info!(images = built.len(), "catalog ready");
                CatalogStatus::Ready
            }
            Ok(Err(err)) => {
                let error = err.to_string();
                tracing::error!(error = %error, "building the catalog failed; labs needing a missing image fail until the server is restarted");
                CatalogStatus::Failed { error }
            }
            Err(_) => {
                tracing::error!("building the catalog panicked");
                CatalogStatus::Failed {
                    error: "the build stopped unexpectedly".into(),
                }
            }
        };
        self.state.send_modify(|s| s.status = status);
    }

    fn progress(&self, event: images::Progress, done: &mut usize, total: usize) {
        match event {
            images::Progress::Image { name, .. } => {
                let current = short(&name);
                tracing::info!(image = %current, i = *done + 1, n = total, "preparing catalog image");
                self.state.send_modify(|s| {
                    s.status = CatalogStatus::Preparing {
                        done: *done,
                        total,
                        current,
                    }
                });
            }
            images::Progress::Done(image) => {
                *done += 1;
                let rebuilt = image.rebuilt;
                tracing::info!(image = %short(&image.name), i = *done, n = total, rebuilt, "catalog image ready");
                let last = *done + 1 == total;
                if last {
                    tracing::info!(
                        i = total,
                        n = total,
                        "preparing the labs' package repository"
                    );
                }
                self.state.send_modify(|s| {
                    s.ready.extend(image.tags.iter().map(|t| canonical(t)));
                    if last {
                        s.status = CatalogStatus::Preparing {
                            done: *done,
                            total,
                            current: "package repository".into(),
                        };
                    }
                });
            }
            images::Progress::Packages(repository) => {
                tracing::info!(
                    packages = repository.packages,
                    i = total,
                    n = total,
                    "labs' package repository ready"
                );
            }
            // Every line of debootstrap and apt-get, for whoever asks.
            event => tracing::debug!("{event}"),
        }
    }

    /// What the catalog is doing now.
    pub fn status(&self) -> CatalogStatus {
        self.state.borrow().status.clone()
    }

    /// Resolves at the next change of the status (never, once ready).
    pub async fn changed(&self) {
        let mut receiver = self.state.subscribe();
        if receiver.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// While a lab of `image` would wait: the step under way ("debian 2/7").
    pub fn waiting_for(&self, image: &str) -> Option<String> {
        let state = self.state.borrow();
        match &state.status {
            CatalogStatus::Preparing { .. } if !state.ready.contains(&canonical(image)) => {
                Some(state.status.to_string())
            }
            _ => None,
        }
    }

    /// Waits until `image` is built, or the build failed without it. An
    /// image the catalog does not have is "ready" once the build ended:
    /// the lab then fails saying the store lacks it.
    pub async fn wait_for(&self, image: &str) -> Result<(), CatalogError> {
        let image = canonical(image);
        let mut receiver = self.state.subscribe();
        let snapshot = receiver
            .wait_for(|s| {
                !matches!(s.status, CatalogStatus::Preparing { .. }) || s.ready.contains(&image)
            })
            .await
            // The sender lives as long as `self`.
            .map_err(|_| CatalogError::Failed("the build went away".into()))?
            .clone();
        match snapshot.status {
            CatalogStatus::Failed { error } if !snapshot.ready.contains(&image) => {
                Err(CatalogError::Failed(error))
            }
            _ => Ok(()),
        }
    }
}
