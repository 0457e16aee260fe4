//! The OCI image layout: `oci-layout`, `index.json`, `blobs/<algorithm>/<hex>`,
//! as a directory or as a tar of one (`oci-archive`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageIndex, ImageIndexBuilder, MediaType, SCHEMA_VERSION,
};
use serde::Deserialize;

use super::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, BlobSource, Imported, TransferError, check_size,
    import_tree, ingest_named, name_of, open_blob, reachable, read_small,
};
use crate::Store;
use crate::archive::beneath::{Beneath, RelPath};
use crate::content::Expected;
use crate::digest::Digest;
use crate::durable::FileLock;
use crate::error::{IoContext, Result};
use crate::manifests::{descriptor_digest, parse_document};
use crate::names::Namespace;
use crate::reference::Reference;

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LAYOUT_JSON: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Deserialize)]
struct LayoutVersion {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

fn check_layout(bytes: &[u8]) -> Result<()> {
    let v: LayoutVersion = serde_json::from_slice(bytes)
        .map_err(|e| TransferError::Invalid(format!("oci-layout: {e}")))?;
    if v.version != "1.0.0" {
        return Err(TransferError::Invalid(format!(
            "unsupported OCI layout version {:?}",
            v.version
        ))
        .into());
    }
    Ok(())
}

fn blob_rel(digest: &Digest) -> RelPath {
    RelPath::from_parts(vec![
        "blobs".into(),
        digest.algorithm().name().into(),
        digest.hex().to_owned(),
    ])
}

/// Reads blobs from a layout directory without following symlinks.
struct DirSource {
    root: Beneath,
}

impl BlobSource for DirSource {
    fn fetch(&mut self, store: &Store, digest: &Digest, size: u64) -> Result<()> {
        if store.blob_exists(digest) {
            return check_size(store, digest, size);
        }
        let file = self
            .root
            .open_file(&blob_rel(digest))?
            .ok_or_else(|| TransferError::Missing(digest.to_string()))?;
        store
            .content()
            .write(file, Expected::exact(digest.clone(), size))
            .map(|_| ())
    }

    fn has(&self, store: &Store, digest: &Digest) -> bool {
        store.blob_exists(digest) || matches!(self.root.open_file(&blob_rel(digest)), Ok(Some(_)))
    }
}

/// Blobs already ingested while streaming an archive.
struct IngestedSource;

impl BlobSource for IngestedSource {
    fn fetch(&mut self, store: &Store, digest: &Digest, size: u64) -> Result<()> {
        if !store.blob_exists(digest) {
            return Err(TransferError::Missing(digest.to_string()).into());
        }
        check_size(store, digest, size)
    }

    fn has(&self, store: &Store, digest: &Digest) -> bool {
        store.blob_exists(digest)
    }
}

fn import_index(
    store: &Store,
    namespace: &Namespace,
    index_bytes: &[u8],
    src: &mut dyn BlobSource,
    default_name: Option<&Reference>,
) -> Result<Vec<Imported>> {
    let index: ImageIndex = serde_json::from_slice(index_bytes)
        .map_err(|e| TransferError::Invalid(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        import_tree(store, src, desc, 0)?;
        let digest = descriptor_digest(desc)?;
        let reference = name_of(desc, default_name)?;
        if let Some(r) = &reference {
            store.tag(namespace, r, &digest)?;
        }
        out.push(Imported {
            reference,
            manifest_digest: digest,
            media_type: desc.media_type().to_string(),
        });
    }
    Ok(out)
}

impl Store {
    /// Imports every image of an OCI layout directory and names them in
    /// `namespace`. Entries named only by a tag get `default_name`'s
    /// repository.
    pub fn import_oci_layout(
        &self,
        namespace: &Namespace,
        dir: &Path,
        default_name: Option<&Reference>,
    ) -> Result<Vec<Imported>> {
        let root = Beneath::open(dir)?;
        let read = |name: &str| -> Result<Vec<u8>> {
            let f = root
                .open_file(&RelPath::from_parts(vec![name.to_owned()]))?
                .ok_or_else(|| TransferError::Missing(name.to_owned()))?;
            read_small(name, f)
        };
        check_layout(&read(LAYOUT_FILE)?)?;
        let index = read(INDEX_FILE)?;
        import_index(
            self,
            namespace,
            &index,
            &mut DirSource { root },
            default_name,
        )
    }

    /// Imports an OCI layout from a tar stream (an `oci-archive`).
    pub fn import_oci_archive(
        &self,
        namespace: &Namespace,
        archive: impl Read,
        default_name: Option<&Reference>,
    ) -> Result<Vec<Imported>> {
        let mut layout = None;
        let mut index = None;
        let mut tar = tar::Archive::new(archive);
        for entry in tar
            .entries()
            .map_err(|e| TransferError::Invalid(e.to_string()))?
        {
            let entry = entry.map_err(|e| TransferError::Invalid(e.to_string()))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let Ok(path) = RelPath::parse(&entry.path_bytes()) else {
                continue;
            };
            match path.display().as_str() {
                LAYOUT_FILE => layout = Some(read_small(LAYOUT_FILE, entry)?),
                INDEX_FILE => index = Some(read_small(INDEX_FILE, entry)?),
                p => {
                    if let Some((algorithm, hex)) = p
                        .strip_prefix("blobs/")
                        .and_then(|name| name.split_once('/'))
                    {
                        let digest = format!("{algorithm}:{hex}").parse().map_err(
                            |e: crate::digest::DigestError| {
                                TransferError::Invalid(format!("blob name {p:?}: {e}"))
                            },
                        )?;
                        ingest_named(self, digest, entry)?;
                    }
                }
            }
        }
        check_layout(&layout.ok_or_else(|| TransferError::Missing(LAYOUT_FILE.into()))?)?;
        let index = index.ok_or_else(|| TransferError::Missing(INDEX_FILE.into()))?;
        // The blobs ingested above are unreferenced until the names below
        // exist; GC's grace period spares them meanwhile.
        import_index(self, namespace, &index, &mut IngestedSource, default_name)
    }

    fn export_index(
        &self,
        namespace: &Namespace,
        references: &[Reference],
    ) -> Result<(Vec<u8>, BTreeMap<Digest, u64>)> {
        let mut blobs = BTreeMap::new();
        let mut manifests: Vec<Descriptor> = Vec::new();
        for r in references {
            let digest = self.resolve(namespace, r)?;
            let bytes = self.read_blob(&digest, crate::manifests::MAX_DOCUMENT_SIZE)?;
            let (_, media_type) = parse_document(&digest.to_string(), &bytes, None)?;
            blobs.extend(reachable(self, &digest)?);
            let mut ann = HashMap::new();
            ann.insert(ANNOTATION_IMAGE_NAME.to_owned(), r.to_string());
            if let Some(tag) = r.tag() {
                ann.insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
            }
            let desc = DescriptorBuilder::default()
                .media_type(MediaType::from(media_type.as_str()))
                .digest(oci_spec::image::Digest::from(&digest))
                .size(bytes.len() as u64)
                .annotations(ann)
                .build()
                .map_err(|e| TransferError::Invalid(e.to_string()))?;
            manifests.push(desc);
        }
        let index = ImageIndexBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| TransferError::Invalid(e.to_string()))?;
        let bytes =
            serde_json::to_vec(&index).map_err(|e| TransferError::Invalid(e.to_string()))?;
        Ok((bytes, blobs))
    }

    /// Writes the named images as an OCI layout into `dir` (created; must
    /// not exist or be empty).
    pub fn export_oci_layout(
        &self,
        namespace: &Namespace,
        references: &[Reference],
        dir: &Path,
    ) -> Result<()> {
        let _gc = FileLock::shared(&self.layout().lock())?;
        let (index, blobs) = self.export_index(namespace, references)?;
        for digest in blobs.keys() {
            let blob_dir = dir.join("blobs").join(digest.algorithm().name());
            fs::create_dir_all(&blob_dir).ctx("creating layout", &blob_dir)?;
            let dest = blob_dir.join(digest.hex());
            let mut src = open_blob(self, digest)?;
            let mut f = fs::File::create(&dest).ctx("writing layout blob", &dest)?;
            std::io::copy(&mut src, &mut f).ctx("writing layout blob", &dest)?;
        }
        fs::write(dir.join(LAYOUT_FILE), LAYOUT_JSON).ctx("writing layout", dir)?;
        fs::write(dir.join(INDEX_FILE), index).ctx("writing layout", dir)?;
        Ok(())
    }

    /// Writes the named images as an OCI layout tar (`oci-archive`).
    pub fn export_oci_archive(
        &self,
        namespace: &Namespace,
        references: &[Reference],
        out: impl Write,
    ) -> Result<()> {
        let _gc = FileLock::shared(&self.layout().lock())?;
        let (index, blobs) = self.export_index(namespace, references)?;
        let mut tar = tar::Builder::new(out);
        let io = |e: std::io::Error| TransferError::Invalid(format!("writing archive: {e}"));
        append_bytes(&mut tar, LAYOUT_FILE, LAYOUT_JSON).map_err(io)?;
        let algorithms: std::collections::BTreeSet<&str> =
            blobs.keys().map(|d| d.algorithm().name()).collect();
        let dirs = std::iter::once("blobs/".to_owned())
            .chain(algorithms.iter().map(|a| format!("blobs/{a}/")));
        for dir in dirs {
            let mut h = tar_header(tar::EntryType::Directory, 0, 0o755);
            tar.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
        }
        for (digest, size) in &blobs {
            let mut h = tar_header(tar::EntryType::Regular, *size, 0o644);
            tar.append_data(
                &mut h,
                format!("blobs/{}/{}", digest.algorithm(), digest.hex()),
                open_blob(self, digest)?,
            )
            .map_err(io)?;
        }
        append_bytes(&mut tar, INDEX_FILE, &index).map_err(io)?;
        tar.into_inner().map_err(io)?.flush().map_err(io)?;
        Ok(())
    }
}

pub(super) fn tar_header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h
}

pub(super) fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut h = tar_header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
    tar.append_data(&mut h, name, bytes)
}
