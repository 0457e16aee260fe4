//! A lab's images: its own names over the shared store.
//!
//! A lab holds an image while one of its names points at it; names live in
//! the store namespace `engine-<lab>`, so GC keeps what they reach and no
//! other lab sees them. An image without a name of the student's (made by
//! `docker commit` or `import` without one, or left when its tag moved to
//! another image) is held by a name of the engine's own, in the
//! [`UNNAMED`] repository, and shows as `<none>`: a dangling image. Docker Hub names (`busybox`, `library/busybox`,
//! `docker.io/library/busybox:latest`) are pulled from the hub namespace,
//! which holds the catalog; blobs and unpacked layers are never copied.

use std::collections::{BTreeMap, HashSet};

use store::manifests::chain_ids;
use store::{Digest, Image, Namespace, Reference, Store};

use crate::error::{Error, Result};

/// The repository of the names that hold unnamed images; the tag is the
/// image ID's hex. Reserved: no client may name an image in it.
pub const UNNAMED: &str = "layerlab-unnamed";

fn unnamed_ref(config: &Digest) -> Reference {
    Reference::parse(&format!("{UNNAMED}:{}", config.hex()))
        .expect("a repository and 64 hex digits make a valid reference")
}

pub fn is_unnamed(reference: &Reference) -> bool {
    reference.familiar_name() == UNNAMED
}

/// Refuses a name in the reserved repository.
pub fn check_name(reference: &Reference) -> Result<()> {
    if is_unnamed(reference) {
        return Err(Error::InvalidArgument(format!(
            "the repository name {UNNAMED} is reserved by this engine: choose another"
        )));
    }
    Ok(())
}

/// One image the lab holds, with every name it has there.
#[derive(Debug, Clone)]
pub struct LabImage {
    pub image: Image,
    /// The lab's names for it, sorted.
    pub references: Vec<Reference>,
}

impl LabImage {
    /// The Docker image ID: `sha256:` of the config.
    pub fn id(&self) -> String {
        self.image.config_digest.to_string()
    }

    /// Held by no name of the student's (`<none>` in `docker images`).
    pub fn dangling(&self) -> bool {
        self.references.iter().all(is_unnamed)
    }

    /// The image a Dockerfile step built this one on (its `config.Image`,
    /// when that is an image ID).
    pub fn parent(&self) -> Option<String> {
        let config: serde_json::Value = serde_json::from_slice(&self.image.config_bytes).ok()?;
        config["config"]["Image"]
            .as_str()
            .filter(|p| p.starts_with("sha256:"))
            .map(str::to_owned)
    }

    /// An unnamed step of a build that later steps were built on: Docker
    /// hides these from `docker images` (not from `-a`) and keeps them
    /// from `image prune`, as the build cache.
    pub fn intermediate(&self, parents: &HashSet<String>) -> bool {
        self.dangling() && parents.contains(&self.id())
    }

    /// `repo:tag` for every tagged name.
    pub fn repo_tags(&self) -> Vec<String> {
        self.references
            .iter()
            .filter(|r| r.tag().is_some() && !is_unnamed(r))
            .map(Reference::familiar)
            .collect()
    }

    /// `repo@sha256:…` of the manifest, once per repository, as Docker
    /// records it for pulled images.
    pub fn repo_digests(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .references
            .iter()
            .filter(|r| !is_unnamed(r))
            .map(|r| format!("{}@{}", r.familiar_name(), self.image.manifest_digest))
            .collect();
        names.dedup();
        names
    }

    /// Bytes of each layer's files once unpacked, bottom first: what
    /// dockerd reports (its graph driver's diff size), not the blob size.
    pub fn layer_sizes(&self, store: &Store) -> Vec<u64> {
        self.chain_ids()
            .iter()
            .map(|chain| unpacked_size(store, chain))
            .collect()
    }

    /// The image's size as `docker images` shows it.
    pub fn size(&self, store: &Store) -> u64 {
        self.layer_sizes(store).iter().sum()
    }

    /// Diff IDs of the layers, bottom first, as `RootFS.Layers` lists them.
    pub fn diff_ids(&self) -> Vec<String> {
        self.image
            .layers
            .iter()
            .map(|l| l.diff_id.to_string())
            .collect()
    }

    /// Chain IDs of the layers, bottom first: what `RootFS.Layers` lists
    /// are the diff IDs, these identify unpacked snapshots.
    pub fn chain_ids(&self) -> Vec<Digest> {
        let diff_ids: Vec<Digest> = self
            .image
            .layers
            .iter()
            .map(|l| l.diff_id.clone())
            .collect();
        chain_ids(&diff_ids)
    }
}

/// IDs of the images in `images` that another of them was built on.
pub fn parents<'a>(images: impl IntoIterator<Item = &'a LabImage>) -> HashSet<String> {
    images.into_iter().filter_map(LabImage::parent).collect()
}

/// What a pull did, for the progress stream.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub reference: Reference,
    pub image: Image,
    /// The lab already had this name pointing at this image.
    pub up_to_date: bool,
}

/// What `docker rmi` did, in Docker's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(String),
}

#[derive(Debug, Clone)]
pub struct LabImages {
    store: Store,
    ns: Namespace,
    hub: Namespace,
}

impl LabImages {
    pub fn new(store: Store, ns: Namespace, hub: Namespace) -> LabImages {
        LabImages { store, ns, hub }
    }

    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// Every image the lab holds, newest name first within an image.
    pub fn list(&self) -> Result<Vec<LabImage>> {
        let mut by_manifest: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
        for tag in self.store.list(&self.ns)? {
            by_manifest
                .entry(tag.digest)
                .or_default()
                .push(tag.reference);
        }
        let mut images: BTreeMap<Digest, LabImage> = BTreeMap::new();
        for (manifest, references) in by_manifest {
            let image = match self.store.image(&manifest) {
                Ok(image) => image,
                Err(e) => {
                    tracing::warn!(namespace = %self.ns, %manifest, error = %e, "a lab name points at an unreadable image; skipping it");
                    continue;
                }
            };
            images
                .entry(image.config_digest.clone())
                .and_modify(|held| held.references.extend(references.iter().cloned()))
                .or_insert(LabImage { image, references });
        }
        Ok(images
            .into_values()
            .map(|mut held| {
                held.references.sort();
                held
            })
            .collect())
    }

    /// Finds an image the way `docker image inspect X` does: X is a name
    /// (`busybox`, `busybox:1`, `localhost:5000/a@sha256:…`), a full image
    /// ID (`sha256:…` or its 64 hex digits) or a unique ID prefix.
    pub fn find(&self, name_or_id: &str) -> Result<LabImage> {
        let no_such = || Error::NoSuchImage(display_name(name_or_id));
        let images = self.list()?;
        if let Ok(reference) = Reference::parse(name_or_id)
            && !is_unnamed(&reference)
            && let Some(found) = images.iter().find(|i| i.references.contains(&reference))
        {
            return Ok(found.clone());
        }
        if let Ok(reference) = Reference::parse(name_or_id)
            && let Some(digest) = reference.digest()
            && let Some(found) = images.iter().find(|i| {
                &i.image.manifest_digest == digest
                    && i.references.iter().any(|r| r.name() == reference.name())
            })
        {
            return Ok(found.clone());
        }
        let hex = name_or_id.strip_prefix("sha256:").unwrap_or(name_or_id);
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() > 64 {
            return Err(no_such());
        }
        let mut matches = images
            .iter()
            .filter(|i| i.image.config_digest.hex().starts_with(hex));
        match (matches.next(), matches.next()) {
            (Some(one), None) => Ok(one.clone()),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!(
                "image ID prefix {hex} is ambiguous: give more of it"
            ))),
            _ => Err(no_such()),
        }
    }

    /// Pulls a Docker Hub name into the lab from the hub (registries in the
    /// lab are [`crate::distribution::Registry`]'s).
    pub fn pull(&self, reference: &Reference) -> Result<Pulled> {
        let manifest = match self.store.resolve(&self.hub, reference) {
            Ok(m) => m,
            Err(e) if e.kind() == store::ErrorKind::NotFound => {
                let repository_known = self
                    .store
                    .list(&self.hub)?
                    .iter()
                    .any(|t| t.reference.name() == reference.name());
                return Err(if repository_known {
                    Error::ManifestUnknown(reference.familiar())
                } else {
                    Error::PullDenied(reference.familiar_name())
                });
            }
            Err(e) => return Err(e.into()),
        };
        let image = self.store.image(&manifest)?;
        // Unpacking now makes the first `docker run` as fast as a later one;
        // the lease is dropped at once, the lab's name keeps the blobs.
        drop(self.store.unpack(&manifest)?);
        let before = self.name(reference, &manifest)?;
        Ok(Pulled {
            reference: reference.clone(),
            image,
            up_to_date: before.as_ref() == Some(&manifest),
        })
    }

    /// Names `manifest` `reference` in the lab; an image the name leaves,
    /// with no other name then, stays as an unnamed one (as Docker keeps
    /// the image a rebuilt tag moved off). Returns what the name held.
    pub fn name(&self, reference: &Reference, manifest: &Digest) -> Result<Option<Digest>> {
        check_name(reference)?;
        // Naming an image what it is already named changes nothing: no
        // write (a rebuild that changed nothing tags its image again).
        if self.store.resolve(&self.ns, reference).ok().as_ref() == Some(manifest) {
            return Ok(Some(manifest.clone()));
        }
        let before = self.store.tag(&self.ns, reference, manifest)?;
        // Named now, so no longer dangling.
        let config = self.store.image(manifest)?.config_digest;
        match self.store.untag(&self.ns, &unnamed_ref(&config)) {
            Err(e) if e.kind() != store::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        if let Some(old) = before.as_ref().filter(|old| *old != manifest) {
            let still_named = self.store.list(&self.ns)?.iter().any(|t| &t.digest == old);
            if !still_named {
                self.keep_unnamed(old)?;
            }
        }
        Ok(before)
    }

    /// Holds `manifest` in the lab without a name of the student's.
    pub fn keep_unnamed(&self, manifest: &Digest) -> Result<()> {
        let image = self.store.image(manifest)?;
        self.store
            .tag(&self.ns, &unnamed_ref(&image.config_digest), manifest)?;
        Ok(())
    }

    /// Names `manifest` (already in the store) `reference` in the lab:
    /// the end of a pull from a registry in the lab.
    pub fn adopt(&self, reference: &Reference, manifest: &Digest) -> Result<Pulled> {
        let image = self.store.image(manifest)?;
        drop(self.store.unpack(manifest)?);
        let before = self.name(reference, manifest)?;
        Ok(Pulled {
            reference: reference.clone(),
            image,
            up_to_date: before.as_ref() == Some(manifest),
        })
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        if target.digest().is_some() {
            return Err(Error::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let found = self.find(source)?;
        self.name(target, &found.image.manifest_digest)?;
        Ok(())
    }

    /// `docker rmi`: removes the name given, or every name when an ID is
    /// given (only with `force` if the image has names in several
    /// repositories, as Docker asks). The image goes from the lab with its
    /// last name.
    pub fn remove(&self, name_or_id: &str, force: bool) -> Result<Vec<Removed>> {
        let found = self.find(name_or_id)?;
        let by_name = Reference::parse(name_or_id)
            .ok()
            .filter(|r| !is_unnamed(r) && found.references.contains(r));
        let doomed: Vec<Reference> = match by_name {
            Some(r) => vec![r],
            None => {
                let mut repos: Vec<String> = found
                    .references
                    .iter()
                    .filter(|r| !is_unnamed(r))
                    .map(Reference::name)
                    .collect();
                repos.dedup();
                if repos.len() > 1 && !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short_id(&found.image.config_digest)
                    )));
                }
                found.references.clone()
            }
        };
        let mut removed = Vec::new();
        for r in &doomed {
            self.store.untag(&self.ns, r)?;
            if is_unnamed(r) {
                continue;
            }
            removed.push(Removed::Untagged(if r.tag().is_some() {
                r.familiar()
            } else {
                format!(
                    "{}@{}",
                    r.familiar_name(),
                    r.digest().map(Digest::to_string).unwrap_or_default()
                )
            }));
        }
        if doomed.len() == found.references.len() {
            removed.push(Removed::Deleted(found.id()));
        }
        Ok(removed)
    }
}

/// The size of the files of one unpacked layer; layers never change, so
/// each is walked once per process.
fn unpacked_size(store: &Store, chain: &Digest) -> u64 {
    static SIZES: std::sync::OnceLock<std::sync::Mutex<BTreeMap<Digest, u64>>> =
        std::sync::OnceLock::new();
    let sizes = SIZES.get_or_init(Default::default);
    if let Some(size) = sizes.lock().ok().and_then(|m| m.get(chain).copied()) {
        return size;
    }
    let Some(dir) = store
        .snapshots()
        .lowerdirs(chain)
        .ok()
        .and_then(|dirs| dirs.into_iter().next())
    else {
        return 0;
    };
    let size = dir_size(&dir);
    if let Ok(mut m) = sizes.lock() {
        m.insert(chain.clone(), size);
    }
    size
}

/// Regular files and symlinks under `dir`, hard links counted once, no
/// link followed.
fn dir_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if seen.insert((meta.dev(), meta.ino())) {
                total += meta.len();
            }
        }
    }
    total
}

/// The 12 hex digits Docker shows for an ID.
pub fn short_id(digest: &Digest) -> String {
    digest.hex().chars().take(12).collect()
}

/// How Docker names an image in "No such image": a name gets its default
/// tag, an ID stays as given.
fn display_name(name_or_id: &str) -> String {
    match Reference::parse(name_or_id) {
        Ok(r) if r.digest().is_none() => r.familiar(),
        _ => name_or_id.to_owned(),
    }
}
