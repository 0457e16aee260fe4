//! Manifests and indexes as the registry reads them: what they reference
//! (for validation, reachability and GC) and what the referrers API reports
//! (`subject`, `artifactType`, annotations).
//!
//! Structure is validated by the store's parser (the `oci-spec` types);
//! this view only picks the fields the protocol needs, from the same exact
//! bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use store::Digest;
use store::media_types;

use crate::error::{Code, Error, Result};

/// Largest manifest or index accepted (distribution's limit too).
pub const MAX_MANIFEST_SIZE: u64 = store::manifests::MAX_DOCUMENT_SIZE;

/// A descriptor as it appears in a document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing)]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest> {
        self.digest
            .parse()
            .map_err(|e: store::digest::DigestError| {
                Error::protocol(Code::ManifestInvalid, e.to_string())
            })
    }
}

/// The fields of a manifest or index the registry uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Document {
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The document's media type: its own `mediaType`, else what the
    /// client said, else its shape.
    #[serde(skip)]
    pub media_type: String,
}

/// Whether `media_type` names an index (OCI index, Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == media_types::OCI_INDEX || media_type == media_types::DOCKER_MANIFEST_LIST
}

/// Parses and validates a manifest or index. `content_type` is what the
/// client sent; a document whose own `mediaType` disagrees is refused.
pub fn parse(digest: &Digest, bytes: &[u8], content_type: Option<&str>) -> Result<Document> {
    let invalid = |detail: String| Error::protocol(Code::ManifestInvalid, detail);
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim())
        .filter(|c| !c.is_empty());
    let (_, media_type) =
        store::manifests::parse_document(&digest.to_string(), bytes, content_type)
            .map_err(|e| invalid(e.to_string()))?;
    if let Some(ct) = content_type
        && ct != media_type
    {
        return Err(invalid(format!(
            "Content-Type {ct:?} does not match the document's mediaType {media_type:?}"
        )));
    }
    let mut doc: Document = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if !is_index(&media_type) && doc.config.is_none() {
        return Err(invalid("a manifest needs a config descriptor".into()));
    }
    doc.media_type = media_type;
    Ok(doc)
}

impl Document {
    /// Blobs the document references: config and layers (foreign layers,
    /// which live at their `urls`, excepted).
    pub fn blobs(&self) -> Result<Vec<Digest>> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| l.urls.is_none()))
            .map(Descriptor::digest)
            .collect()
    }

    /// Manifests an index references.
    pub fn children(&self) -> Result<Vec<Digest>> {
        self.manifests.iter().map(Descriptor::digest).collect()
    }

    /// What the referrers API reports as this document's artifact type.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type
            .clone()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }
}
