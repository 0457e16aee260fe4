//! Manifests, indexes and configs, OCI and Docker schema2 alike.
//!
//! The store keeps the exact bytes it was given or wrote: a manifest's digest
//! is the sha256 of its raw bytes and an image ID the sha256 of its raw
//! config bytes, so nothing here ever re-serializes a stored document. The
//! `oci-spec` types are views parsed from those bytes.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::content::{ContentStore, Provider};
use crate::digest::Digest;
pub use crate::error::ManifestError;
use crate::error::Result;
use crate::media_types;

/// Manifests, indexes and configs larger than this are refused (the same
/// bound containerd and distribution apply), so a hostile document cannot
/// exhaust memory.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// A parsed manifest or index, next to its exact bytes.
#[derive(Debug, Clone)]
pub enum Document {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Just enough of a document to tell which kind it is.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
}

/// Parses manifest or index bytes. `media_type` is what the transport said
/// (a descriptor or a Content-Type); the document's own `mediaType` wins
/// when present. Returns the document and its media type.
pub fn parse_document(
    digest: &str,
    bytes: &[u8],
    media_type: Option<&str>,
) -> Result<(Document, String)> {
    use media_types::*;
    let invalid = |reason: String| ManifestError::Invalid {
        digest: digest.to_owned(),
        reason,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let mt = match (probe.media_type.as_deref(), media_type) {
        (Some(m), _) => m.to_owned(),
        (None, Some(m)) => m.to_owned(),
        // OCI allows documents without mediaType; fall back on their shape.
        (None, None) if probe.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, None) if probe.layers.is_some() => OCI_MANIFEST.to_owned(),
        (None, None) => {
            return Err(invalid("no mediaType and neither layers nor manifests".into()).into());
        }
    };
    let doc = match mt.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => Document::Manifest(Box::new(
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?,
        )),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Document::Index(Box::new(
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?,
        )),
        other => return Err(ManifestError::UnsupportedMediaType(other.to_owned()).into()),
    };
    Ok((doc, mt))
}

/// The part of an image config the store itself needs.
#[derive(Deserialize)]
struct ConfigRootfs {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

/// The diff ids (digests of the uncompressed layer tars) a config lists, in order.
pub fn config_diff_ids(config_digest: &Digest, bytes: &[u8]) -> Result<Vec<Digest>> {
    let invalid = |reason: String| ManifestError::InvalidConfig {
        digest: config_digest.clone(),
        reason,
    };
    let c: ConfigRootfs = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if c.rootfs.kind != "layers" {
        return Err(invalid(format!(
            "rootfs type {:?}, expected \"layers\"",
            c.rootfs.kind
        ))
        .into());
    }
    c.rootfs
        .diff_ids
        .iter()
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| invalid(e.to_string()).into())
        })
        .collect()
}

/// One layer of an image: its blob and what it unpacks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the blob as stored (compressed or not).
    pub digest: Digest,
    /// Digest of the uncompressed tar; what the config lists.
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    pub media_type: String,
}

/// A single-platform image resolved from a manifest digest.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest (not the index) this image was read from.
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub manifest_bytes: Vec<u8>,
    pub manifest: ImageManifest,
    /// The image ID.
    pub config_digest: Digest,
    pub config_media_type: String,
    pub config_bytes: Vec<u8>,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
}

impl Image {
    /// The config parsed with `oci-spec` (env, cmd, entrypoint, history, …).
    pub fn config(&self) -> Result<ImageConfiguration> {
        serde_json::from_slice(&self.config_bytes).map_err(|e| {
            ManifestError::InvalidConfig {
                digest: self.config_digest.clone(),
                reason: e.to_string(),
            }
            .into()
        })
    }
}

pub(crate) fn descriptor_digest(d: &Descriptor) -> Result<Digest> {
    Ok(Digest::try_from(d.digest())?)
}

/// The architecture name OCI uses for this host.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Reads `digest` and, through at most a few levels of index, the manifest
/// for linux on this host's architecture, then its config.
/// The entry of an index that this host runs: linux on its architecture,
/// or the only entry when it names no platform.
pub fn for_this_host(index: &ImageIndex) -> Option<&Descriptor> {
    let arch = host_architecture();
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .or_else(|| match index.manifests().as_slice() {
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        })
}

pub(crate) fn load_image(content: &ContentStore, digest: &Digest) -> Result<Image> {
    let mut current = digest.clone();
    let mut hint: Option<String> = None;
    for _ in 0..4 {
        let bytes = content.read_all(&current, MAX_DOCUMENT_SIZE)?;
        let (doc, mt) = parse_document(&current.to_string(), &bytes, hint.as_deref())?;
        match doc {
            Document::Index(index) => {
                let chosen = for_this_host(&index).ok_or(ManifestError::NoMatchingPlatform(
                    current.clone(),
                    host_architecture(),
                ))?;
                hint = Some(chosen.media_type().to_string());
                current = descriptor_digest(chosen)?;
            }
            Document::Manifest(manifest) => {
                return image_from_manifest(content, current, mt, bytes, *manifest);
            }
        }
    }
    Err(ManifestError::Invalid {
        digest: digest.to_string(),
        reason: "indexes nested too deeply".into(),
    }
    .into())
}

fn image_from_manifest(
    content: &ContentStore,
    manifest_digest: Digest,
    manifest_media_type: String,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
) -> Result<Image> {
    let config_digest = descriptor_digest(manifest.config())?;
    let config_bytes = content.read_all(&config_digest, MAX_DOCUMENT_SIZE)?;
    let diff_ids = config_diff_ids(&config_digest, &config_bytes)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(ManifestError::LayerCountMismatch {
            digest: manifest_digest,
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        }
        .into());
    }
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(d, diff_id)| {
            Ok(Layer {
                digest: descriptor_digest(d)?,
                diff_id,
                size: d.size(),
                media_type: d.media_type().to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Image {
        manifest_digest,
        manifest_media_type,
        manifest_bytes,
        config_media_type: manifest.config().media_type().to_string(),
        manifest,
        config_digest,
        config_bytes,
        layers,
    })
}

/// The chain id of each layer: the first is its diff id, each next one
/// `sha256(parent_chain + " " + diff_id)` (OCI image spec, config.md).
/// Whether a layer with this diff ID changes nothing: the tar of no
/// entries, which Docker leaves out of an image it commits.
pub fn is_empty_layer(diff_id: &Digest) -> bool {
    diff_id.to_string() == EMPTY_LAYER_DIFF_ID
}

/// The diff ID of a tar with no entries (two zero blocks).
const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}
