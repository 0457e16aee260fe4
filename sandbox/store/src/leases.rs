//! Leases: what a running lab holds so GC leaves it alone.
//!
//! A lease is a file `leases/<id>.json` listing committed snapshots and
//! blobs. GC treats everything listed as referenced. The [`Lease`] handle
//! deletes its file when dropped, unless [`Lease::keep`] made it outlive the
//! handle (a runtime that wants its container's layers to survive a restart
//! keeps the lease and releases it by id later).

use std::collections::BTreeSet;
use std::fs;
use std::io;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::durable::{FileLock, unique_name, write_atomic};
pub use crate::error::LeaseError;
use crate::error::{IoContext, Result};
use crate::layout::{Layout, is_safe_id};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub snapshots: BTreeSet<Digest>,
    pub blobs: BTreeSet<Digest>,
}

/// A held lease. Dropping it releases what it holds.
#[derive(Debug)]
pub struct Lease {
    id: String,
    layout: Layout,
    record: LeaseRecord,
    kept: bool,
    /// For a named lease: its lock, so one handle at a time owns the record
    /// (and its children's).
    owner: Option<FileLock>,
}

impl Lease {
    pub(crate) fn create(layout: &Layout, record: LeaseRecord) -> Result<Lease> {
        let id = unique_name("lease");
        let lease = Lease {
            id,
            layout: layout.clone(),
            record,
            kept: false,
            owner: None,
        };
        lease.save()?;
        Ok(lease)
    }

    /// The lease named `id`, created empty if it does not exist yet. A
    /// named lease is kept: it outlives its handle, and a later handle (in
    /// this process or another, after a restart) picks up its record, until
    /// it is released by id. One handle owns it at a time: a handle holds
    /// the whole record and rewrites it whole, so two at once would lose
    /// each other's changes, and the second is refused instead.
    pub(crate) fn named(layout: &Layout, id: &str) -> Result<Lease> {
        if !is_safe_id(id) {
            return Err(LeaseError::InvalidId(id.to_owned()).into());
        }
        let Some(owner) = FileLock::try_exclusive(&layout.lease_lock(id))? else {
            return Err(LeaseError::InUse(id.to_owned()).into());
        };
        let record = read(layout, id)?.unwrap_or_default();
        let lease = Lease {
            id: id.to_owned(),
            layout: layout.clone(),
            record,
            kept: true,
            owner: Some(owner),
        };
        lease.save()?;
        Ok(lease)
    }

    /// The named lease `<this id>.<suffix>`, created empty if missing: a
    /// family of leases with one owner. Whoever owns this named lease owns
    /// its children, so a child takes no lock of its own (a registry with
    /// thousands of repositories must not hold thousands of descriptors).
    /// Only a named lease has children.
    pub fn child(&self, suffix: &str) -> Result<Lease> {
        let id = format!("{}.{suffix}", self.id);
        if self.owner.is_none() || suffix.contains('.') || !is_safe_id(&id) {
            return Err(LeaseError::InvalidId(id).into());
        }
        let (record, fresh) = match read(&self.layout, &id)? {
            Some(record) => (record, false),
            None => (LeaseRecord::default(), true),
        };
        let lease = Lease {
            id,
            layout: self.layout.clone(),
            record,
            kept: true,
            owner: None,
        };
        if fresh {
            lease.save()?;
        }
        Ok(lease)
    }

    /// The children of this named lease that exist on disk.
    pub fn children(&self) -> Result<Vec<Lease>> {
        if self.owner.is_none() {
            return Ok(Vec::new());
        }
        let prefix = format!("{}.", self.id);
        list(&self.layout)?
            .into_iter()
            .filter_map(|id| {
                let suffix = id.strip_prefix(&prefix)?;
                (!suffix.contains('.')).then(|| suffix.to_owned())
            })
            .map(|suffix| self.child(&suffix))
            .collect()
    }

    /// Takes over a kept lease by id (after a restart).
    pub(crate) fn adopt(layout: &Layout, id: &str) -> Result<Lease> {
        let record = read(layout, id)?.ok_or_else(|| LeaseError::NotFound(id.to_owned()))?;
        Ok(Lease {
            id: id.to_owned(),
            layout: layout.clone(),
            record,
            kept: false,
            owner: None,
        })
    }

    fn save(&self) -> Result<()> {
        // Taken shared so a GC in progress finishes its sweep before a new
        // reference appears.
        let _gc = FileLock::shared(&self.layout.lock())?;
        let bytes = serde_json::to_vec(&self.record)
            .map_err(io::Error::other)
            .ctx("encoding lease", &self.id)?;
        write_atomic(&self.layout.tmp(), &self.layout.lease(&self.id), &bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// Adds a committed snapshot (by chain id) to the lease.
    pub fn add_snapshot(&mut self, chain_id: Digest) -> Result<()> {
        if self.record.snapshots.insert(chain_id) {
            self.save()
        } else {
            Ok(())
        }
    }

    /// Adds a blob to the lease.
    pub fn add_blob(&mut self, digest: Digest) -> Result<()> {
        if self.record.blobs.insert(digest) {
            self.save()
        } else {
            Ok(())
        }
    }

    /// Drops a blob from the lease; returns whether it was held.
    pub fn remove_blob(&mut self, digest: &Digest) -> Result<bool> {
        if self.record.blobs.remove(digest) {
            self.save()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Drops every blob `release` picks and saves the lease once; returns
    /// the blobs dropped. An error from `release` leaves the lease as it was.
    pub fn release_blobs(
        &mut self,
        mut release: impl FnMut(&Digest) -> Result<bool>,
    ) -> Result<Vec<Digest>> {
        let mut dropped = Vec::new();
        for digest in &self.record.blobs {
            if release(digest)? {
                dropped.push(digest.clone());
            }
        }
        if !dropped.is_empty() {
            for digest in &dropped {
                self.record.blobs.remove(digest);
            }
            self.save()?;
        }
        Ok(dropped)
    }

    /// Lets the lease outlive this handle; returns its id for
    /// [`crate::Store::adopt_lease`] or [`crate::Store::release_lease`].
    pub fn keep(mut self) -> String {
        self.kept = true;
        self.id.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.kept
            && let Err(e) = fs::remove_file(self.layout.lease(&self.id))
        {
            tracing::warn!(lease = %self.id, error = %e, "could not release lease");
        }
    }
}

pub(crate) fn read(layout: &Layout, id: &str) -> Result<Option<LeaseRecord>> {
    if !is_safe_id(id) {
        return Ok(None);
    }
    let path = layout.lease(id);
    match fs::read(&path) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b)
                .map_err(io::Error::other)
                .ctx("decoding lease", &path)?,
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("reading lease", path),
    }
}

pub(crate) fn list(layout: &Layout) -> Result<Vec<String>> {
    let dir = layout.leases();
    let mut out = Vec::new();
    for e in fs::read_dir(&dir).ctx("listing leases", &dir)? {
        let e = e.ctx("listing leases", &dir)?;
        if let Some(id) = e
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| is_safe_id(n))
        {
            out.push(id.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn release(layout: &Layout, id: &str) -> Result<()> {
    if read(layout, id)?.is_none() {
        return Err(LeaseError::NotFound(id.to_owned()).into());
    }
    fs::remove_file(layout.lease(id)).ctx("releasing lease", layout.lease(id))
}
