//! Garbage collection of what the registry no longer references.
//!
//! Roots are the store's: every name (the registry's tags and manifest
//! memberships among them) and every lease. The registry's blob leases
//! (one per repository) hold each pushed blob; [`Registry::gc`] first
//! drops from them the blobs no manifest of the namespace references and
//! that are older than the grace period (so an image being pushed, whose
//! manifest comes last, is never broken), then runs the store's mark and
//! sweep.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use errdefs::ErrorKind;
use store::{Digest, GcOptions};

use crate::context::lock;
use crate::documents::{self, MAX_MANIFEST_SIZE};
use crate::error::Result;
use crate::state::Registry;

/// What a registry GC freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs the namespace stopped holding (unreferenced and old enough).
    pub released: Vec<Digest>,
    /// What the store then deleted (every namespace's garbage).
    pub store: store::GcReport,
}

impl Registry {
    /// Releases unreferenced blobs older than `grace`, then collects the
    /// store. Blocks on disk I/O: async callers use `spawn_blocking`.
    pub fn gc(&self, grace: Duration) -> Result<GcReport> {
        let mut referenced: HashSet<Digest> = HashSet::new();
        let mut pending: Vec<Digest> = self
            .store()
            .list(self.namespace())?
            .into_iter()
            .map(|t| t.digest)
            .collect();
        while let Some(digest) = pending.pop() {
            if !referenced.insert(digest.clone()) {
                continue;
            }
            let bytes = match self.store().read_blob(&digest, MAX_MANIFEST_SIZE) {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let doc = documents::parse(&digest, &bytes, None)?;
            referenced.extend(doc.blobs()?);
            pending.extend(doc.children()?);
        }
        let mut released = Vec::new();
        if let Some(links) = &self.inner.blobs {
            // Asked once per blob, however many repositories hold it.
            let mut old: HashMap<Digest, bool> = HashMap::new();
            let mut unreferenced_and_old = |digest: &Digest| -> store::Result<bool> {
                if referenced.contains(digest) {
                    return Ok(false);
                }
                if let Some(known) = old.get(digest) {
                    return Ok(*known);
                }
                let is_old = match self.store().blob_info(digest) {
                    Ok(info) => SystemTime::now()
                        .duration_since(info.committed_at)
                        .is_ok_and(|age| age >= grace),
                    Err(e) if e.kind() == ErrorKind::NotFound => true,
                    Err(e) => return Err(e),
                };
                old.insert(digest.clone(), is_old);
                Ok(is_old)
            };
            let mut links = lock(links);
            for lease in links.leases_mut() {
                released.extend(lease.release_blobs(&mut unreferenced_and_old)?);
            }
        }
        // A blob two repositories held is released once per repository.
        released.sort();
        released.dedup();
        let store = self.store().gc(&GcOptions { grace })?;
        tracing::info!(
            released = released.len(),
            blobs = store.blobs.len(),
            bytes = store.blob_bytes,
            "registry gc finished"
        );
        Ok(GcReport { released, store })
    }
}
