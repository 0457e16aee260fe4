//! Garbage collection: mark from roots, sweep the rest.
//!
//! Roots are every name in every namespace, every lease, and the parents of
//! active snapshots. From a manifest digest the mark follows index entries,
//! the config, the layer blobs, and the chain ids of the config's diff ids
//! (with their parents). The sweep deletes unmarked blobs and committed
//! snapshots, plus stale unpack directories and abandoned ingests.
//!
//! GC runs while labs are live: it holds the store lock exclusively, and
//! every operation that adds a reference (tagging, leasing, preparing a
//! snapshot) takes it shared, so no reference appears between mark and
//! sweep. Objects younger than [`GcOptions::grace`] are spared, which gives
//! a writer time to tag what it just wrote (a layer from
//! [`crate::Store::create_layer_from_dir`], an image from
//! [`crate::Store::write_image`]) or to put it in a lease.
//!
//! If a named manifest or index cannot be parsed, GC stops with an error
//! rather than guess what it references.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, SystemTime};

use crate::content::{IngestManager, Manager, Provider};
use crate::digest::Digest;
use crate::durable::{FileLock, unique_name};
use crate::error::{ErrorKind, IoContext, Result};
use crate::manifests::{
    Document, MAX_DOCUMENT_SIZE, chain_ids, config_diff_ids, descriptor_digest, parse_document,
};
use crate::{Store, layout, leases};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Objects modified more recently than this are never collected.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            grace: Duration::from_secs(600),
        }
    }
}

/// What a GC run freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<Digest>,
    /// Bytes of the deleted blobs.
    pub blob_bytes: u64,
    /// Stale unpack directories and abandoned ingests removed.
    pub stale: usize,
}

fn old_enough(modified: SystemTime, grace: Duration) -> bool {
    SystemTime::now()
        .duration_since(modified)
        .map(|age| age >= grace)
        .unwrap_or(false)
}

struct Marks {
    blobs: HashSet<Digest>,
    snapshots: HashSet<Digest>,
}

impl Store {
    fn mark_document(&self, digest: &Digest, marks: &mut Marks, depth: usize) -> Result<()> {
        if !marks.blobs.insert(digest.clone()) || depth > 4 {
            return Ok(());
        }
        let bytes = match self.content().read_all(digest, MAX_DOCUMENT_SIZE) {
            Ok(b) => b,
            // A partially pulled index lists manifests that are not here.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let (doc, _) = parse_document(&digest.to_string(), &bytes, None)?;
        match doc {
            Document::Index(index) => {
                for m in index.manifests() {
                    self.mark_document(&descriptor_digest(m)?, marks, depth + 1)?;
                }
            }
            Document::Manifest(m) => {
                let config = descriptor_digest(m.config())?;
                marks.blobs.insert(config.clone());
                for l in m.layers() {
                    marks.blobs.insert(descriptor_digest(l)?);
                }
                match self.content().read_all(&config, MAX_DOCUMENT_SIZE) {
                    Ok(bytes) => {
                        // A config that is not an image config (artifacts) has no snapshots.
                        if let Ok(diff_ids) = config_diff_ids(&config, &bytes) {
                            marks.snapshots.extend(chain_ids(&diff_ids));
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Collects what nothing references. Never deletes an object reachable
    /// from a name in any namespace, a lease or an active snapshot.
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        let layout = self.layout();
        let _lock = FileLock::exclusive(&layout.lock())?;
        let mut marks = Marks {
            blobs: HashSet::new(),
            snapshots: HashSet::new(),
        };
        for ns in self.names_db().namespaces()? {
            for tag in self.names_db().list(&ns)? {
                self.mark_document(&tag.digest, &mut marks, 0)?;
            }
        }
        for id in leases::list(layout)? {
            if let Some(record) = leases::read(layout, &id)? {
                marks.blobs.extend(record.blobs);
                marks.snapshots.extend(record.snapshots);
            }
        }
        marks.snapshots.extend(self.snapshots().active_parents()?);
        // Parents of marked snapshots are part of their lowerdir stacks.
        let mut pending: Vec<Digest> = marks.snapshots.iter().cloned().collect();
        while let Some(c) = pending.pop() {
            if let Some(info) = self.snapshots().committed_info(&c)?
                && let Some(p) = info.parent
                && marks.snapshots.insert(p.clone())
            {
                pending.push(p);
            }
        }

        let mut report = GcReport::default();
        let mut doomed = Vec::new();
        self.content().walk(&mut |info| {
            if !marks.blobs.contains(&info.digest) && old_enough(info.committed_at, options.grace) {
                doomed.push(info);
            }
            Ok(())
        })?;
        for info in doomed {
            self.content().delete(&info.digest)?;
            report.blob_bytes += info.size;
            report.blobs.push(info.digest);
        }

        let dir = layout.committed_snapshots();
        for e in fs::read_dir(&dir).ctx("listing snapshots", &dir)? {
            let e = e.ctx("listing snapshots", &dir)?;
            let Some(chain) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            else {
                continue;
            };
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .ctx("inspecting snapshot", e.path())?;
            if marks.snapshots.contains(&chain) || !old_enough(modified, options.grace) {
                continue;
            }
            // Out of committed/ first, so a crash mid-delete leaves no half snapshot.
            let tmp = layout.snapshot_tmp().join(unique_name("gc"));
            fs::rename(e.path(), &tmp).ctx("removing snapshot", e.path())?;
            fs::remove_dir_all(&tmp).ctx("removing snapshot", &tmp)?;
            report.snapshots.push(chain);
        }

        let tmp_dir = layout.snapshot_tmp();
        for e in fs::read_dir(&tmp_dir).ctx("listing", &tmp_dir)? {
            let e = e.ctx("listing", &tmp_dir)?;
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .ctx("inspecting", e.path())?;
            if old_enough(modified, options.grace) {
                fs::remove_dir_all(e.path()).ctx("removing stale unpack", e.path())?;
                report.stale += 1;
            }
        }
        for ingest in self.content().ingests()? {
            let dir = layout.ingest(&ingest.ingest_ref);
            let modified = fs::metadata(layout::ingest_data(&dir))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            // A live writer holds the ref's lock, so abort refuses it.
            if old_enough(modified, options.grace)
                && self.content().abort(&ingest.ingest_ref).is_ok()
            {
                report.stale += 1;
            }
        }
        report.blobs.sort();
        report.snapshots.sort();
        tracing::info!(
            blobs = report.blobs.len(),
            snapshots = report.snapshots.len(),
            bytes = report.blob_bytes,
            "gc finished"
        );
        Ok(report)
    }
}
