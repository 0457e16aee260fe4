//! Layers made from directory trees: the archive's compressed tar written
//! into the content store as one blob.
//!
//! `archive` only produces and consumes tar streams; this module is where
//! such a stream becomes a stored, committed blob, for an image
//! ([`crate::Store::create_layer_from_dir`]) and for a snapshot's commit
//! alike.

use std::fs::File;
use std::path::Path;

use crate::archive::{self, DiffOptions, DiffSummary, TarReader};
use crate::content::{ContentStore, Expected, IngestManager, Ingester, Writer};
use crate::durable::unique_name;
use crate::error::Result;
use crate::manifests::Layer;

/// Diffs `dir` into a compressed layer blob in `content`.
pub(crate) fn write_layer(
    content: &ContentStore,
    dir: &Path,
    options: &DiffOptions,
) -> Result<Layer> {
    ingest(content, options, |writer| {
        archive::tar_compressed_dir(dir, options, writer)
    })
}

/// [`write_layer`] of the directory open as `root` (`shown` in messages),
/// its tar also given to `also` as it is written.
pub(crate) fn write_layer_at(
    content: &ContentStore,
    root: &File,
    shown: &Path,
    options: &DiffOptions,
    also: Option<TarReader<'_>>,
) -> Result<Layer> {
    ingest(content, options, |writer| {
        archive::tar_compressed(root, shown, options, writer, also)
    })
}

/// Runs `tar` into a new ingestion and commits it as a layer; an
/// ingestion that failed is aborted rather than left for GC.
fn ingest(
    content: &ContentStore,
    options: &DiffOptions,
    tar: impl FnOnce(Writer) -> Result<(DiffSummary, Writer)>,
) -> Result<Layer> {
    let ingest_ref = unique_name("layer");
    let writer = content.writer(&ingest_ref, Expected::default())?;
    let result = (|| {
        let (summary, writer) = tar(writer)?;
        let info = writer.commit()?;
        Ok(Layer {
            digest: info.digest,
            diff_id: summary.diff_id,
            size: info.size,
            media_type: options.compression.oci_media_type().to_owned(),
        })
    })();
    if result.is_err() {
        let _ = IngestManager::abort(content, &ingest_ref);
    }
    result
}
