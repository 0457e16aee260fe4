//! Turning recipes into images in the store, one step at a time, reusing
//! every layer the cache and the store still have.
//!
//! A layer step runs in a store snapshot: `prepare` on the chain of the
//! image so far gives a fresh upperdir (and the lowerdirs to mount under
//! it), the step fills it (debootstrap, busybox, files, or a script in an
//! overlay chroot), and `commit` diffs it into a layer blob and keeps the
//! directory as the committed snapshot, so the next step and every
//! container start find it unpacked already.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest as _, Sha256};
use store::{Compression, DiffOptions, ErrorKind, Layer, Lease, Reference, Store};

use crate::cache::{self, Cache, StepRecord};
use crate::chroot::{self, Overlay};
use crate::config::{History, ImageConfig};
use crate::error::{Error, RecipeError, Result, StepError};
use crate::hub::hub;
use crate::progress::{BuiltImage, Progress, StepStatus};
use crate::recipes::{FileSource, Recipe, Step};
use crate::rootfs;

/// mtimes in layers are clamped to this (bookworm's release day,
/// 2023-06-10), as `SOURCE_DATE_EPOCH` does: files a build touches do not
/// carry the build's clock into the layer.
const SOURCE_DATE_EPOCH: u64 = 1_686_355_200;

/// How much of a step's history line an error message quotes.
const WHAT_LEN: usize = 72;

/// An image as far as its recipe has been applied.
#[derive(Debug, Clone)]
struct ImageState {
    config: ImageConfig,
    layers: Vec<Layer>,
    /// Hash chain over the parent image and every step so far (see `cache`).
    state: String,
}

impl ImageState {
    fn config_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.config)
    }
}

fn diff_options() -> DiffOptions {
    DiffOptions {
        compression: Compression::Gzip,
        clamp_mtime: Some(SOURCE_DATE_EPOCH),
        ..DiffOptions::default()
    }
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

pub(crate) fn build(
    store: &Store,
    cache_dir: &Path,
    recipes: &[Recipe],
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<BuiltImage>> {
    let cache = Cache::lock(cache_dir)?;
    let hub = hub();
    // Holds every layer of this build until its image is tagged, so a GC
    // running meanwhile cannot take a layer that no name references yet.
    let mut lease = store.lease()?;
    // Images built in this run, by their recipe name (first tag).
    let mut built: HashMap<&str, ImageState> = HashMap::new();
    let mut out = Vec::new();

    for recipe in recipes {
        let name = recipe.name();
        if name.is_empty() {
            return Err(RecipeError::NoTags.into());
        }
        let references = recipe
            .tags
            .iter()
            .map(|tag| {
                Reference::parse(tag).map_err(|e| RecipeError::BadTag {
                    recipe: name.to_owned(),
                    tag: tag.clone(),
                    source: e.into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut image = match &recipe.parent {
            None => ImageState {
                config: ImageConfig::scratch(),
                layers: Vec::new(),
                state: "scratch".to_owned(),
            },
            Some(parent) => match built.get(parent.as_str()) {
                Some(state) => state.clone(),
                None => parent_from_hub(store, name, parent)?,
            },
        };

        progress(Progress::Image {
            name: name.to_owned(),
            steps: recipe.steps.len(),
        });
        let mut rebuilt = false;
        for (i, step) in recipe.steps.iter().enumerate() {
            let created_by = step.created_by();
            let step_err = |source: StepError| Error::Step {
                image: name.to_owned(),
                step: i + 1,
                what: created_by.chars().take(WHAT_LEN).collect(),
                source: Box::new(source),
            };
            let report = |status| Progress::Step {
                image: name.to_owned(),
                step: i + 1,
                steps: recipe.steps.len(),
                created_by: created_by.clone(),
                status,
            };
            let step_json = serde_json::to_vec(step).map_err(Error::Encode)?;

            if let Step::Config(change) = step {
                progress(report(StepStatus::Config));
                image.config.apply(change);
                let created = image.config.last_created();
                image.config.history.push(History {
                    created,
                    created_by: created_by.clone(),
                    empty_layer: true,
                });
                image.state = cache::chain(&image.state, &step_json);
                continue;
            }

            let extra = host_file_hashes(step).map_err(step_err)?;
            let key = cache::step_key(&image.state, &step_json, &extra);
            let record = match cache.get(&key).filter(|r| in_store(store, &mut lease, r)) {
                Some(record) => {
                    progress(report(StepStatus::Cached));
                    record
                }
                None => {
                    progress(report(StepStatus::Building));
                    let started = Instant::now();
                    let mut on_line = |line: &str| {
                        progress(Progress::Output {
                            image: name.to_owned(),
                            line: line.to_owned(),
                        })
                    };
                    let layer = build_layer(store, &cache, &image, step, &key, &mut on_line)
                        .map_err(step_err)?;
                    lease.add_blob(layer.digest.clone())?;
                    let record = StepRecord {
                        digest: layer.digest.clone(),
                        diff_id: layer.diff_id.clone(),
                        size: layer.size,
                        media_type: layer.media_type.clone(),
                        created: now_rfc3339(),
                    };
                    cache.put(&key, &record)?;
                    progress(Progress::Layer {
                        image: name.to_owned(),
                        step: i + 1,
                        layer,
                        elapsed: started.elapsed(),
                    });
                    rebuilt = true;
                    record
                }
            };
            image.config.rootfs.diff_ids.push(record.diff_id.clone());
            image.config.history.push(History {
                created: record.created.clone(),
                created_by: created_by.clone(),
                empty_layer: false,
            });
            image.state = cache::chain(&image.state, record.digest.to_string().as_bytes());
            image.layers.push(Layer {
                digest: record.digest,
                diff_id: record.diff_id,
                size: record.size,
                media_type: record.media_type,
            });
        }

        image.config.created = Some(image.config.last_created());
        let config = image.config_bytes().map_err(Error::Encode)?;
        let stored = store.write_image(&config, &image.layers)?;
        for reference in &references {
            store.tag(&hub, reference, &stored.manifest_digest)?;
        }
        let result = BuiltImage {
            name: name.to_owned(),
            tags: recipe.tags.clone(),
            manifest_digest: stored.manifest_digest.clone(),
            config_digest: stored.config_digest,
            layers: image.layers.clone(),
            rebuilt,
        };
        progress(Progress::Done(result.clone()));
        out.push(result);
        // Children start from this image's manifest digest: a rebuilt
        // parent changes every key below it.
        image.state = stored.manifest_digest.to_string();
        built.insert(name, image);
    }
    Ok(out)
}

/// The starting state of a recipe whose parent was built in an earlier run.
fn parent_from_hub(store: &Store, recipe: &str, parent: &str) -> Result<ImageState> {
    let unknown = || RecipeError::UnknownParent {
        recipe: recipe.to_owned(),
        parent: parent.to_owned(),
    };
    let reference = Reference::parse(parent).map_err(|_| unknown())?;
    let digest = match store.resolve(&hub(), &reference) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(unknown().into()),
        Err(e) => return Err(e.into()),
    };
    let image = store.image(&digest)?;
    let config = serde_json::from_slice(&image.config_bytes).map_err(|source| {
        RecipeError::ParentConfig {
            recipe: recipe.to_owned(),
            parent: parent.to_owned(),
            source,
        }
    })?;
    Ok(ImageState {
        config,
        layers: image.layers,
        state: digest.to_string(),
    })
}

/// A cache record is only used if the store still has its blob, whole.
/// The blob joins the build's lease first, so it cannot go after the check.
fn in_store(store: &Store, lease: &mut Lease, record: &StepRecord) -> bool {
    if let Err(e) = lease.add_blob(record.digest.clone()) {
        tracing::warn!(digest = %record.digest, error = %e, "cannot lease a cached layer, rebuilding it");
        return false;
    }
    let present = store
        .blob_info(&record.digest)
        .is_ok_and(|info| info.size == record.size);
    if !present {
        tracing::info!(digest = %record.digest, "cached layer is gone from the store, rebuilding");
    }
    present
}

/// The sha256 of every host file a step adds: their contents are part of
/// the step even though its JSON only names their paths.
fn host_file_hashes(step: &Step) -> Result<Vec<u8>, StepError> {
    let mut out = Vec::new();
    if let Step::Add { files } = step {
        for file in files {
            if let FileSource::Host(path) | FileSource::HostStripped(path) = &file.source {
                let bytes = fs::read(path).map_err(|source| StepError::Io {
                    what: "read",
                    path: path.clone(),
                    source,
                })?;
                out.extend_from_slice(&Sha256::digest(&bytes));
            }
        }
    }
    Ok(out)
}

/// Builds one layer step in a store snapshot on top of `image`.
fn build_layer(
    store: &Store,
    cache: &Cache,
    image: &ImageState,
    step: &Step,
    key: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<Layer, StepError> {
    let snapshot = format!("images-build-{}", &key[..32]);
    // A build killed half-way leaves its snapshot behind; start afresh.
    match store.snapshots().remove(&snapshot) {
        Ok(()) => tracing::info!(snapshot, "removed a snapshot left by an interrupted build"),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // The lease of the unpacked stack keeps its snapshots until the new
    // layer is committed on top.
    let unpacked = if image.layers.is_empty() {
        None
    } else {
        Some(store.unpack_layers(&image.layers)?)
    };
    let parent = unpacked.as_ref().and_then(|u| u.chain_id.clone());
    let mounts = store.snapshots().prepare(&snapshot, parent.as_ref())?;

    let filled = fill(cache, image, step, &mounts, on_line);
    let result = filled.and_then(|()| Ok(store.snapshots().commit(&snapshot, &diff_options())?));
    match result {
        Ok((layer, _chain_id)) => Ok(layer),
        Err(e) => {
            if let Err(cleanup) = store.snapshots().remove(&snapshot) {
                tracing::warn!(snapshot, error = %cleanup, "could not remove the snapshot of a failed step");
            }
            Err(e)
        }
    }
}

/// Puts the step's changes into the snapshot's upperdir.
fn fill(
    cache: &Cache,
    image: &ImageState,
    step: &Step,
    mounts: &store::Mounts,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), StepError> {
    let upper = mounts
        .upperdir
        .as_deref()
        .ok_or_else(|| StepError::NoUpperdir(mounts.key.clone()))?;
    match step {
        Step::Debootstrap {
            suite,
            variant,
            mirror,
        } => {
            if mounts.parent.is_some() {
                return Err(StepError::DebootstrapOnTop);
            }
            rootfs::debootstrap(upper, suite, variant, mirror, &cache.debs(), on_line)?;
        }
        Step::Busybox => rootfs::busybox(upper)?,
        Step::Add { files } => {
            let scratch = cache.scratch()?;
            rootfs::add_files(upper, files, scratch.path(), on_line)?;
        }
        Step::Run { script, inputs } => {
            let work = mounts
                .workdir
                .as_deref()
                .ok_or_else(|| StepError::NoUpperdir(mounts.key.clone()))?;
            let scratch = cache.scratch()?;
            let merged = scratch.path().join("merged");
            let tmp = scratch.path().join("tmp");
            for dir in [&merged, &tmp] {
                fs::create_dir(dir).map_err(|source| StepError::Io {
                    what: "create",
                    path: dir.clone(),
                    source,
                })?;
            }
            for input in inputs {
                rootfs::write_input(&tmp, &input.name, &input.contents)?;
            }
            let mut env = image.config.env_pairs();
            for (k, v) in [("DEBIAN_FRONTEND", "noninteractive"), ("HOME", "/root")] {
                if !env.iter().any(|(key, _)| key == k) {
                    env.push((k.to_owned(), v.to_owned()));
                }
            }
            let overlay = Overlay {
                lowers: &mounts.lowerdirs,
                upper,
                work,
                merged: &merged,
                tmp: &tmp,
                apt_archives: &cache.debs(),
            };
            chroot::run_script(&overlay, &env, script, on_line)?;
        }
        // Configuration changes add no files; `build` handles them.
        Step::Config(_) => {}
    }
    Ok(())
}
