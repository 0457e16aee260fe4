//! Which blobs each repository of a registry holds.
//!
//! As in distribution, a blob belongs to the repositories it was pushed to
//! or mounted into: `GET /v2/b/blobs/<digest>` answers 404 for a blob that
//! only `a` holds, a manifest may reference only blobs of its own
//! repository, and deleting a blob from `a` leaves `b`'s copy alone.
//!
//! Each repository's blobs are a child of the namespace's named store
//! lease, `<namespace>.<40 hex of the sha256 of the repository name>`, so
//! the store's GC keeps every linked blob, a restart finds them again, and
//! owning the namespace's lease owns them all. The namespace's lease itself
//! holds blobs pushed before blobs were kept per repository; those stay
//! visible in every repository.

use std::collections::HashMap;

use store::{Digest, Lease, Namespace, Store};

use crate::error::{Error, Result};

/// Hex digits of the repository name's sha256 in a lease id: plenty
/// against collisions among one registry's repositories.
const NAME_HASH_LEN: usize = 40;

/// The blob leases of one namespace, every repository's open.
#[derive(Debug)]
pub(crate) struct Links {
    namespace: String,
    /// Blobs visible in every repository (pushed before per-repository
    /// links).
    shared: Lease,
    /// By lease id.
    repositories: HashMap<String, Lease>,
}

impl Links {
    /// Opens the namespace's leases, owned by this handle until it is
    /// dropped (the store refuses a second owner).
    pub(crate) fn open(store: &Store, namespace: &Namespace) -> Result<Links> {
        let namespace = namespace.as_str().to_owned();
        // The id must stay a valid lease id: at most 128 characters.
        if namespace.len() + 1 + NAME_HASH_LEN > 128 {
            return Err(Error::Config(format!(
                "namespace {namespace:?} is too long for a registry: use at most {} characters",
                128 - 1 - NAME_HASH_LEN
            )));
        }
        let shared = store.named_lease(&namespace)?;
        let repositories = shared
            .children()?
            .into_iter()
            .map(|lease| (lease.id().to_owned(), lease))
            .collect();
        Ok(Links {
            namespace,
            shared,
            repositories,
        })
    }

    fn suffix(repository: &str) -> String {
        Digest::of(repository.as_bytes()).hex()[..NAME_HASH_LEN].to_owned()
    }

    fn lease_id(&self, repository: &str) -> String {
        format!("{}.{}", self.namespace, Links::suffix(repository))
    }

    /// Whether `repository` serves blob `digest`.
    pub(crate) fn holds(&self, repository: &str, digest: &Digest) -> bool {
        self.shared.record().blobs.contains(digest)
            || self
                .repositories
                .get(&self.lease_id(repository))
                .is_some_and(|lease| lease.record().blobs.contains(digest))
    }

    /// Whether any repository of the namespace holds blob `digest`.
    pub(crate) fn holds_anywhere(&self, digest: &Digest) -> bool {
        self.shared.record().blobs.contains(digest)
            || self
                .repositories
                .values()
                .any(|lease| lease.record().blobs.contains(digest))
    }

    /// Adds blob `digest` to `repository`.
    pub(crate) fn link(&mut self, repository: &str, digest: Digest) -> Result<()> {
        let id = self.lease_id(repository);
        let lease = match self.repositories.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(self.shared.child(&Links::suffix(repository))?)
            }
        };
        Ok(lease.add_blob(digest)?)
    }

    /// Drops blob `digest` from `repository`; returns whether it was there.
    /// A blob from before per-repository links goes from every repository.
    pub(crate) fn unlink(&mut self, repository: &str, digest: &Digest) -> Result<bool> {
        let id = self.lease_id(repository);
        if let Some(lease) = self.repositories.get_mut(&id)
            && lease.remove_blob(digest)?
        {
            return Ok(true);
        }
        Ok(self.shared.remove_blob(digest)?)
    }

    /// Every lease, for GC to release unreferenced blobs from.
    pub(crate) fn leases_mut(&mut self) -> impl Iterator<Item = &mut Lease> {
        std::iter::once(&mut self.shared).chain(self.repositories.values_mut())
    }
}
