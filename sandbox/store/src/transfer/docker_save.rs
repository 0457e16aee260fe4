//! The `docker save` / `docker load` tar format: `manifest.json` (a list of
//! `{Config, RepoTags, Layers}` with paths into the archive), `repositories`,
//! `<id>.json` configs and uncompressed `<id>/layer.tar` layers (Docker 25+
//! adds an OCI layout beside them, whose `blobs/sha256/…` paths the
//! manifest then uses; both shapes import the same way).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, Write};

use serde::{Deserialize, Serialize};

use super::oci_layout::{append_bytes, tar_header};
use super::{Imported, TransferError, open_blob, read_small};
use crate::Store;
use crate::archive::beneath::RelPath;
use crate::archive::{ArchiveError, Compression};
use crate::content::{Expected, Provider};
use crate::digest::{Digest, Hashing};
use crate::durable::FileLock;
use crate::error::Result;
use crate::manifests::{MAX_DOCUMENT_SIZE, config_diff_ids};
use crate::media_types;
use crate::names::Namespace;
use crate::reference::Reference;

const MANIFEST_FILE: &str = "manifest.json";
const REPOSITORIES_FILE: &str = "repositories";

#[derive(Debug, Serialize, Deserialize)]
struct SaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// What the archive holds, by path: a stored blob or a symlink.
enum Member {
    Blob(Digest, u64),
    Link(RelPath),
}

/// Resolves `target` of a symlink at `at` lexically inside the archive.
fn link_target(at: &RelPath, target: &[u8]) -> Option<RelPath> {
    let target = std::str::from_utf8(target).ok()?;
    let mut parts: Vec<String> = if target.starts_with('/') {
        Vec::new()
    } else {
        at.parent()
            .as_path()
            .iter()
            .filter_map(|c| c.to_str())
            .filter(|c| *c != ".")
            .map(str::to_owned)
            .collect()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c.to_owned()),
        }
    }
    Some(RelPath::from_parts(parts))
}

fn lookup(members: &HashMap<RelPath, Member>, name: &str) -> Result<(Digest, u64)> {
    let missing = || TransferError::Missing(name.to_owned());
    let mut path = RelPath::parse(name.as_bytes()).map_err(|_| missing())?;
    for _ in 0..8 {
        match members.get(&path).ok_or_else(missing)? {
            Member::Blob(d, s) => return Ok((d.clone(), *s)),
            Member::Link(next) => path = next.clone(),
        }
    }
    Err(TransferError::Invalid(format!("symlink loop at {name}")).into())
}

/// The diff id of a stored layer blob, computed (never taken from the archive).
fn diff_id_of(store: &Store, digest: &Digest) -> Result<(Digest, Compression)> {
    let mut f = store.content().open(digest)?;
    let mut head = [0u8; 4];
    let n = f
        .read(&mut head)
        .map_err(|e| TransferError::Invalid(format!("reading layer {digest}: {e}")))?;
    let compression = Compression::detect(&head[..n]);
    if compression == Compression::None {
        return Ok((digest.clone(), compression));
    }
    f.rewind()
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
    let mut hashing = Hashing::new(io::sink());
    decompress_to(store, f, &mut hashing)?;
    Ok((hashing.into_inner().1, compression))
}

fn decompress_to(store: &Store, raw: impl Read + Send, out: &mut impl Write) -> Result<()> {
    let (mut reader, _) = crate::archive::compression_reader(raw, store.options().limits)?;
    io::copy(&mut reader, out)
        .map_err(|e| ArchiveError::Corrupt(format!("decompressing layer: {e}")))?;
    Ok(())
}

impl Store {
    /// Imports a `docker save` archive, naming its images (`RepoTags`) in
    /// `namespace`. Layers are stored as the archive has them; every layer
    /// must hash to the diff id its config lists.
    pub fn import_docker_save(
        &self,
        namespace: &Namespace,
        archive: impl Read,
    ) -> Result<Vec<Imported>> {
        let mut members: HashMap<RelPath, Member> = HashMap::new();
        let mut manifest = None;
        let mut tar = tar::Archive::new(archive);
        for entry in tar
            .entries()
            .map_err(|e| TransferError::Invalid(e.to_string()))?
        {
            let entry = entry.map_err(|e| TransferError::Invalid(e.to_string()))?;
            let Ok(path) = RelPath::parse(&entry.path_bytes()) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Symlink => {
                    if let Some(t) = entry.link_name_bytes().and_then(|t| link_target(&path, &t)) {
                        members.insert(path, Member::Link(t));
                    }
                    continue;
                }
                _ => continue,
            }
            if path.display() == MANIFEST_FILE {
                manifest = Some(read_small(MANIFEST_FILE, entry)?);
                continue;
            }
            if path.display() == REPOSITORIES_FILE {
                continue;
            }
            let info = self.content().write(entry, Expected::default())?;
            members.insert(path, Member::Blob(info.digest, info.size));
        }
        let manifest = manifest.ok_or_else(|| TransferError::Missing(MANIFEST_FILE.into()))?;
        let entries: Vec<SaveEntry> = serde_json::from_slice(&manifest)
            .map_err(|e| TransferError::Invalid(format!("{MANIFEST_FILE}: {e}")))?;
        let mut out = Vec::new();
        for entry in entries {
            let (config_digest, config_size) = lookup(&members, &entry.config)?;
            let config = self.read_blob(&config_digest, MAX_DOCUMENT_SIZE)?;
            let diff_ids = config_diff_ids(&config_digest, &config)?;
            if diff_ids.len() != entry.layers.len() {
                return Err(TransferError::Invalid(format!(
                    "image {config_digest} lists {} layers but its config {} diff ids",
                    entry.layers.len(),
                    diff_ids.len()
                ))
                .into());
            }
            let mut layers = Vec::new();
            for (path, expected) in entry.layers.iter().zip(&diff_ids) {
                let (digest, size) = lookup(&members, path)?;
                let (diff_id, compression) = diff_id_of(self, &digest)?;
                if &diff_id != expected {
                    return Err(ArchiveError::DiffIdMismatch {
                        expected: expected.clone(),
                        actual: diff_id,
                    }
                    .into());
                }
                let media_type = match compression {
                    Compression::None => media_types::DOCKER_LAYER,
                    Compression::Gzip => media_types::DOCKER_LAYER_GZIP,
                    Compression::Zstd => media_types::OCI_LAYER_ZSTD,
                };
                layers.push(serde_json::json!({"mediaType": media_type, "size": size, "digest": digest.to_string()}));
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_types::DOCKER_MANIFEST,
                "config": {"mediaType": media_types::DOCKER_CONFIG, "size": config_size, "digest": config_digest.to_string()},
                "layers": layers,
            });
            let bytes =
                serde_json::to_vec(&manifest).map_err(|e| TransferError::Invalid(e.to_string()))?;
            let manifest_digest = self.write_blob_bytes(&bytes)?.digest;
            let tags = entry.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                out.push(Imported {
                    reference: None,
                    manifest_digest: manifest_digest.clone(),
                    media_type: media_types::DOCKER_MANIFEST.to_owned(),
                });
            }
            for tag in tags {
                let reference = Reference::parse(&tag)?;
                self.tag(namespace, &reference, &manifest_digest)?;
                out.push(Imported {
                    reference: Some(reference),
                    manifest_digest: manifest_digest.clone(),
                    media_type: media_types::DOCKER_MANIFEST.to_owned(),
                });
            }
        }
        Ok(out)
    }

    /// Writes the named images as a `docker save` archive (uncompressed
    /// layers, as `docker load` and skopeo's `docker-archive:` expect).
    pub fn export_docker_save(
        &self,
        namespace: &Namespace,
        references: &[Reference],
        out: impl Write,
    ) -> Result<()> {
        let _gc = FileLock::shared(&self.layout().lock())?;
        let io = |e: io::Error| TransferError::Invalid(format!("writing archive: {e}"));
        let mut tar = tar::Builder::new(out);
        // Config digest -> entry, so two names of one image share an entry.
        let mut entries: BTreeMap<Digest, SaveEntry> = BTreeMap::new();
        let mut order = Vec::new();
        let mut written_layers = std::collections::HashSet::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for r in references {
            let image = self.image(&self.resolve(namespace, r)?)?;
            let config_name = format!("{}.json", image.config_digest.hex());
            if !entries.contains_key(&image.config_digest) {
                append_bytes(&mut tar, &config_name, &image.config_bytes).map_err(io)?;
                let mut layer_names = Vec::new();
                for layer in &image.layers {
                    let name = format!("{}/layer.tar", layer.diff_id.hex());
                    if written_layers.insert(layer.diff_id.clone()) {
                        self.append_plain_layer(&mut tar, &name, layer)?;
                    }
                    layer_names.push(name);
                }
                entries.insert(
                    image.config_digest.clone(),
                    SaveEntry {
                        config: config_name,
                        repo_tags: Some(Vec::new()),
                        layers: layer_names,
                    },
                );
                order.push(image.config_digest.clone());
            }
            if let (Some(tag), Some(entry)) = (r.tag(), entries.get_mut(&image.config_digest)) {
                entry
                    .repo_tags
                    .get_or_insert_with(Vec::new)
                    .push(r.familiar());
                if let Some(top) = image.layers.last() {
                    repositories
                        .entry(r.familiar_name())
                        .or_default()
                        .insert(tag.to_owned(), top.diff_id.hex().to_owned());
                }
            }
        }
        let list: Vec<&SaveEntry> = order.iter().filter_map(|d| entries.get(d)).collect();
        let manifest =
            serde_json::to_vec(&list).map_err(|e| TransferError::Invalid(e.to_string()))?;
        append_bytes(&mut tar, MANIFEST_FILE, &manifest).map_err(io)?;
        let repos =
            serde_json::to_vec(&repositories).map_err(|e| TransferError::Invalid(e.to_string()))?;
        append_bytes(&mut tar, REPOSITORIES_FILE, &repos).map_err(io)?;
        tar.into_inner().map_err(io)?.flush().map_err(io)?;
        Ok(())
    }

    fn append_plain_layer<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        name: &str,
        layer: &crate::Layer,
    ) -> Result<()> {
        let io = |e: io::Error| TransferError::Invalid(format!("writing archive: {e}"));
        let mut blob = open_blob(self, &layer.digest)?;
        let mut head = [0u8; 4];
        let n = blob.read(&mut head).map_err(io)?;
        blob.rewind().map_err(io)?;
        if Compression::detect(&head[..n]) == Compression::None {
            let mut h = tar_header(tar::EntryType::Regular, layer.size, 0o644);
            return tar
                .append_data(&mut h, name, blob)
                .map_err(|e| io(e).into());
        }
        // The tar header needs the size first: decompress to a temp file.
        let mut tmp = tempfile::tempfile_in(self.layout().tmp()).map_err(io)?;
        let mut hashing = Hashing::new(&mut tmp);
        decompress_to(self, blob, &mut hashing)?;
        let (_, diff_id, size) = hashing.into_inner();
        if diff_id != layer.diff_id {
            return Err(ArchiveError::DiffIdMismatch {
                expected: layer.diff_id.clone(),
                actual: diff_id,
            }
            .into());
        }
        tmp.rewind().map_err(io)?;
        let mut h = tar_header(tar::EntryType::Regular, size, 0o644);
        tar.append_data(&mut h, name, tmp).map_err(|e| io(e).into())
    }
}
