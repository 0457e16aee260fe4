//! Building images from directories and stored layers, and unpacking them.

use std::path::{Path, PathBuf};

use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType, SCHEMA_VERSION};

use crate::Store;
use crate::archive::{self, DiffOptions};
use crate::content::Expected;
use crate::digest::Digest;
use crate::durable::FileLock;
use crate::error::Result;
use crate::layers;
use crate::leases::{Lease, LeaseRecord};
use crate::manifests::{self, Image, Layer, ManifestError, config_diff_ids};
use crate::media_types;

/// What [`Store::write_image`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub manifest_media_type: String,
    /// The image ID.
    pub config_digest: Digest,
}

/// An image (or layer stack) unpacked for running; GC keeps its snapshots
/// while the lease lives.
#[derive(Debug)]
pub struct Unpacked {
    /// Overlay lowerdirs, top-most layer first (the order of `lowerdir=`).
    /// Empty for an image without layers.
    pub lowerdirs: Vec<PathBuf>,
    /// Chain id of the top layer: the parent for [`crate::Snapshots::prepare`].
    pub chain_id: Option<Digest>,
    pub lease: Lease,
}

impl Unpacked {
    /// `a:b:c`, ready for `lowerdir=`.
    pub fn lowerdir_option(&self) -> String {
        self.lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn map_json(e: impl std::fmt::Display, what: &str) -> crate::Error {
    ManifestError::Invalid {
        digest: what.to_owned(),
        reason: e.to_string(),
    }
    .into()
}

impl Store {
    /// Diffs `dir` (an upperdir, or a whole rootfs for a base layer) into a
    /// layer blob. Same tree and options, same digest.
    pub fn create_layer_from_dir(&self, dir: &Path, options: &DiffOptions) -> Result<Layer> {
        layers::write_layer(self.content(), dir, options)
    }

    /// [`Store::create_layer_from_dir`] of a directory already open (a
    /// container's writable layer, whose tree may change while read),
    /// unpacked in the same pass as a snapshot over `below` (the layers
    /// under it, bottom first): an image it tops is ready to run without
    /// reading the layer again. The layer is made even if that unpack
    /// fails (it is then unpacked from the blob when needed).
    pub fn create_layer_at(
        &self,
        root: &std::fs::File,
        shown: &Path,
        options: &DiffOptions,
        below: &[Layer],
    ) -> Result<Layer> {
        let diff_ids: Vec<Digest> = below.iter().map(|l| l.diff_id.clone()).collect();
        let parent = manifests::chain_ids(&diff_ids).pop();
        let snapshots = self.snapshots();
        let unpack = |tar: archive::TarChunks| {
            let chain = |diff_id: &Digest| {
                Ok(match &parent {
                    Some(p) => manifests::chain_ids(&[p.clone(), diff_id.clone()]).remove(1),
                    None => diff_id.clone(),
                })
            };
            if let Err(e) = snapshots.unpack_stream(tar, parent.clone(), chain) {
                tracing::debug!(error = %e, "a new layer is unpacked later, from its blob");
            }
        };
        let _gc = FileLock::shared(&self.layout().lock())?;
        layers::write_layer_at(self.content(), root, shown, options, Some(&unpack))
    }

    /// Stores `config` (exact bytes; its digest becomes the image ID) and
    /// an OCI manifest over `layers`, which must already be stored and match
    /// the config's `rootfs.diff_ids` in order.
    pub fn write_image(&self, config: &[u8], layers: &[Layer]) -> Result<ImageRef> {
        let config_digest = Digest::of(config);
        let diff_ids = config_diff_ids(&config_digest, config)?;
        let listed: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        if diff_ids.iter().collect::<Vec<_>>() != listed {
            return Err(ManifestError::InvalidConfig {
                digest: config_digest,
                reason: "rootfs.diff_ids do not match the layers given".into(),
            }
            .into());
        }
        for l in layers {
            let info = self.blob_info(&l.digest)?;
            if info.size != l.size {
                return Err(crate::content::ContentError::SizeMismatch {
                    digest: l.digest.to_string(),
                    expected: l.size,
                    actual: info.size,
                }
                .into());
            }
        }
        let config_info = self
            .content()
            .write(config, Expected::digest(config_digest.clone()))?;
        let descriptor = |mt: &str, d: &Digest, size: u64| {
            DescriptorBuilder::default()
                .media_type(MediaType::from(mt))
                .digest(oci_spec::image::Digest::from(d))
                .size(size)
                .build()
        };
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(
                descriptor(media_types::OCI_CONFIG, &config_digest, config_info.size)
                    .map_err(|e| map_json(e, "new manifest"))?,
            )
            .layers(
                layers
                    .iter()
                    .map(|l| descriptor(&l.media_type, &l.digest, l.size))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| map_json(e, "new manifest"))?,
            )
            .build()
            .map_err(|e| map_json(e, "new manifest"))?;
        let bytes = serde_json::to_vec(&manifest).map_err(|e| map_json(e, "new manifest"))?;
        let info = self.write_blob_bytes(&bytes)?;
        Ok(ImageRef {
            manifest_digest: info.digest,
            manifest_size: info.size,
            manifest_media_type: media_types::OCI_MANIFEST.to_owned(),
            config_digest,
        })
    }

    /// Reads the image a manifest (or index, resolved for this host's
    /// platform) describes.
    pub fn image(&self, manifest_digest: &Digest) -> Result<Image> {
        manifests::load_image(self.content(), manifest_digest)
    }

    /// Unpacks every layer of the image (each at most once, store-wide) and
    /// returns its overlay lowerdirs with a lease that keeps them, and the
    /// image's blobs, from GC until dropped.
    pub fn unpack(&self, manifest_digest: &Digest) -> Result<Unpacked> {
        let image = self.image(manifest_digest)?;
        let mut record = LeaseRecord::default();
        record.blobs.extend([
            manifest_digest.clone(),
            image.manifest_digest.clone(),
            image.config_digest.clone(),
        ]);
        self.unpack_leased(&image.layers, record)
    }

    /// Unpacks a stack of stored layers (bottom first) that no image names
    /// yet, e.g. the layers of a build in progress; same result as
    /// [`Store::unpack`]. Each layer's diff id is checked while unpacking.
    pub fn unpack_layers(&self, layers: &[Layer]) -> Result<Unpacked> {
        self.unpack_leased(layers, LeaseRecord::default())
    }

    fn unpack_leased(&self, layers: &[Layer], mut record: LeaseRecord) -> Result<Unpacked> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = manifests::chain_ids(&diff_ids);
        record.snapshots.extend(chains.iter().cloned());
        record.blobs.extend(layers.iter().map(|l| l.digest.clone()));
        // The lease exists before the unpack starts, so GC cannot take a
        // layer between its unpack and the return.
        let lease = Lease::create(self.layout(), record)?;
        {
            let _gc = FileLock::shared(&self.layout().lock())?;
            self.snapshots().unpack_layers(layers)?;
        }
        let chain_id = chains.last().cloned();
        let lowerdirs = match &chain_id {
            Some(c) => self.snapshots().lowerdirs(c)?,
            None => Vec::new(),
        };
        Ok(Unpacked {
            lowerdirs,
            chain_id,
            lease,
        })
    }
}
