//! Garbage collection of what the registry no longer references.
//!
//! Roots are the store's: every name (the registry's tags and manifest
//! memberships among them) and every lease. The registry's blob leases
//! (one per repository) hold each pushed blob; [`Registry::gc`] first
//! drops from them the blobs no manifest of the namespace references and
//! that are older than the grace period (so an image being pushed, whose
//! manifest comes last, is never broken), then runs the store's mark and
//! sweep.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use store::{Digest, GcOptions};

use crate::error::Result;
use crate::{MAX_MANIFEST_SIZE, Registry, documents, lock};

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
                Err(e) if e.kind() == store::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let doc = documents::parse(&digest, &bytes, None)?;
            referenced.extend(doc.blobs()?);
            pending.extend(doc.children()?);
        }
        let mut released = Vec::new();
        if let Some(links) = &self.inner.blobs {
            let mut links = lock(links);
            for lease in links.leases_mut() {
                let held: Vec<Digest> = lease.record().blobs.iter().cloned().collect();
                for digest in held {
                    if referenced.contains(&digest) {
                        continue;
                    }
                    let old = match self.store().blob_info(&digest) {
                        Ok(info) => SystemTime::now()
                            .duration_since(info.committed_at)
                            .is_ok_and(|age| age >= grace),
                        Err(e) if e.kind() == store::ErrorKind::NotFound => true,
                        Err(e) => return Err(e.into()),
                    };
                    if old {
                        lease.remove_blob(&digest)?;
                        released.push(digest);
                    }
                }
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
