//! Moving images in and out: the OCI image layout (a directory, or a tar of
//! one) and the `docker save` tar format, both directions.
//!
//! Archives are hostile input. Nothing from an archive ever names a path
//! the store writes to: blobs are ingested by content and checked against
//! the digests and sizes the archive claims; documents are size-bounded;
//! a layout directory is read with the same no-symlink resolution as layer
//! unpacking, so a planted symlink cannot make the import read host files.

mod docker_save;
mod oci_layout;

use std::collections::BTreeMap;
use std::io::Read;

use oci_spec::image::Descriptor;

use crate::Store;
use crate::content::{Expected, Provider};
use crate::digest::Digest;
pub use crate::error::TransferError;
use crate::error::{ErrorKind, Result};
use crate::manifests::{Document, MAX_DOCUMENT_SIZE, descriptor_digest, parse_document};
use crate::reference::Reference;

/// OCI annotation holding an image's name (a tag, or a full reference).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd (and Docker 25+) use for the full name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// One image an import stored (and named, when the archive named it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The name it got in the namespace, if any.
    pub reference: Option<Reference>,
    pub manifest_digest: Digest,
    pub media_type: String,
}

/// Where an import finds the blobs a document refers to.
trait BlobSource {
    /// Makes sure blob `digest` of `size` bytes is in the store.
    fn fetch(&mut self, store: &Store, digest: &Digest, size: u64) -> Result<()>;
    /// Whether the archive has the blob (missing index children are skipped).
    fn has(&self, store: &Store, digest: &Digest) -> bool;
}

/// Fetches the tree under `desc` (index → manifests → config and layers),
/// checking every size and digest. Children of an index that the archive
/// lacks are tolerated (a single-platform copy of a multi-platform image);
/// anything a manifest lists must be there.
fn import_tree(
    store: &Store,
    src: &mut dyn BlobSource,
    desc: &Descriptor,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        return Err(TransferError::Invalid("indexes nested too deeply".into()).into());
    }
    let digest = descriptor_digest(desc)?;
    if desc.size() > MAX_DOCUMENT_SIZE {
        return Err(TransferError::TooLarge {
            name: digest.to_string(),
            limit: MAX_DOCUMENT_SIZE,
        }
        .into());
    }
    src.fetch(store, &digest, desc.size())?;
    let bytes = store.content().read_all(&digest, MAX_DOCUMENT_SIZE)?;
    let (doc, _) = parse_document(
        &digest.to_string(),
        &bytes,
        Some(desc.media_type().as_ref()),
    )?;
    match doc {
        Document::Index(index) => {
            let mut found = 0;
            for child in index.manifests() {
                if src.has(store, &descriptor_digest(child)?) {
                    import_tree(store, src, child, depth + 1)?;
                    found += 1;
                } else {
                    tracing::debug!(digest = %child.digest(), "platform manifest missing from archive");
                }
            }
            if found == 0 && !index.manifests().is_empty() {
                return Err(
                    TransferError::Missing(format!("every manifest of index {digest}")).into(),
                );
            }
        }
        Document::Manifest(m) => {
            let config = m.config();
            if config.size() > MAX_DOCUMENT_SIZE {
                return Err(TransferError::TooLarge {
                    name: config.digest().to_string(),
                    limit: MAX_DOCUMENT_SIZE,
                }
                .into());
            }
            src.fetch(store, &descriptor_digest(config)?, config.size())?;
            for layer in m.layers() {
                src.fetch(store, &descriptor_digest(layer)?, layer.size())?;
            }
        }
    }
    Ok(())
}

/// Checks a blob the store already has against the size an archive claims.
fn check_size(store: &Store, digest: &Digest, size: u64) -> Result<()> {
    let info = store.blob_info(digest)?;
    if info.size != size {
        return Err(crate::content::ContentError::SizeMismatch {
            digest: digest.to_string(),
            expected: size,
            actual: info.size,
        }
        .into());
    }
    Ok(())
}

/// The name an index entry carries: a full reference in the containerd
/// annotation, else `ref.name`, which is a tag (applied to `default_name`)
/// or a full reference.
fn name_of(desc: &Descriptor, default_name: Option<&Reference>) -> Result<Option<Reference>> {
    let ann = desc.annotations().as_ref();
    let get = |k: &str| ann.and_then(|a| a.get(k)).map(String::as_str);
    if let Some(full) = get(ANNOTATION_IMAGE_NAME) {
        return Ok(Some(Reference::parse(full)?));
    }
    match get(ANNOTATION_REF_NAME) {
        Some(r) if r.contains(['/', ':', '@']) => Ok(Some(Reference::parse(r)?)),
        Some(tag) => match default_name {
            Some(base) => Ok(Some(base.with_tag(tag)?)),
            None => Ok(Some(Reference::parse(tag)?)),
        },
        None => Ok(default_name.cloned()),
    }
}

/// Reads a small archive member (a JSON document) with a size bound.
fn read_small(name: &str, r: impl Read) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(MAX_DOCUMENT_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| TransferError::Invalid(format!("reading {name}: {e}")))?;
    if buf.len() as u64 > MAX_DOCUMENT_SIZE {
        return Err(TransferError::TooLarge {
            name: name.to_owned(),
            limit: MAX_DOCUMENT_SIZE,
        }
        .into());
    }
    Ok(buf)
}

/// Every stored blob reachable from `digest` (itself, index children that
/// are present, configs, layers), in a stable order, with sizes.
fn reachable(store: &Store, digest: &Digest) -> Result<BTreeMap<Digest, u64>> {
    fn walk(
        store: &Store,
        digest: &Digest,
        out: &mut BTreeMap<Digest, u64>,
        depth: usize,
    ) -> Result<()> {
        if depth > 4 || out.contains_key(digest) {
            return Ok(());
        }
        let info = match store.blob_info(digest) {
            Ok(i) => i,
            Err(e) if e.kind() == ErrorKind::NotFound && depth > 0 => return Ok(()),
            Err(e) => return Err(e),
        };
        out.insert(digest.clone(), info.size);
        let bytes = store.content().read_all(digest, MAX_DOCUMENT_SIZE)?;
        match parse_document(&digest.to_string(), &bytes, None)?.0 {
            Document::Index(i) => {
                for m in i.manifests() {
                    walk(store, &descriptor_digest(m)?, out, depth + 1)?;
                }
            }
            Document::Manifest(m) => {
                for d in std::iter::once(m.config()).chain(m.layers()) {
                    let d = descriptor_digest(d)?;
                    let info = store.blob_info(&d)?;
                    out.insert(d, info.size);
                }
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(store, digest, &mut out, 0)?;
    Ok(out)
}

/// Ingests an archive member whose digest the archive names (`blobs/<algorithm>/<hex>`).
fn ingest_named(store: &Store, digest: Digest, r: impl Read) -> Result<()> {
    store
        .content()
        .write(r, Expected::digest(digest))
        .map(|_| ())
}

/// Opens a stored blob for copying into an archive.
fn open_blob(store: &Store, digest: &Digest) -> Result<std::fs::File> {
    store.content().open(digest)
}
