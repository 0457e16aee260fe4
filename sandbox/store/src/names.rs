//! Image names, one namespace per owner: each lab engine (`engine-<id>`), the
//! hub (`hub`), each registry (`registry-<id>`). A namespace maps normalized
//! references to manifest digests; namespaces never see each other's names,
//! while blobs and snapshots underneath are shared.
//!
//! Each namespace is one JSON file replaced by atomic rename under an flock,
//! so a crash leaves the old or the new map, never a torn one.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::durable::{FileLock, write_atomic};
pub use crate::error::NameError;
use crate::error::{IoContext, Result};
use crate::layout::{Layout, is_safe_id};
use crate::reference::Reference;

/// A validated namespace id such as `hub`, `engine-4f2a`, `registry-1`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    pub fn new(id: &str) -> Result<Namespace, NameError> {
        if is_safe_id(id) {
            Ok(Namespace(id.to_owned()))
        } else {
            Err(NameError::InvalidNamespace(id.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Namespace {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Namespace, NameError> {
        Namespace::new(s)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({})", self.0)
    }
}

/// One name in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub reference: Reference,
    /// Digest of the manifest (or index) the name points to.
    pub digest: Digest,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NamespaceFile {
    /// Fully qualified reference string -> manifest digest.
    names: BTreeMap<String, Digest>,
}

#[derive(Debug, Clone)]
pub(crate) struct Names {
    layout: Layout,
}

impl Names {
    pub(crate) fn new(layout: Layout) -> Names {
        Names { layout }
    }

    fn load(&self, ns: &Namespace) -> Result<NamespaceFile> {
        let path = self.layout.namespace_file(ns.as_str());
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| {
                NameError::Corrupt {
                    namespace: ns.to_string(),
                    source,
                }
                .into()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(NamespaceFile::default()),
            Err(e) => Err(e).ctx("reading names", path),
        }
    }

    fn update<T>(
        &self,
        ns: &Namespace,
        f: impl FnOnce(&mut NamespaceFile) -> Result<T>,
    ) -> Result<T> {
        let _lock = FileLock::exclusive(&self.layout.namespace_lock(ns.as_str()))?;
        let mut file = self.load(ns)?;
        let out = f(&mut file)?;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|source| NameError::Corrupt {
            namespace: ns.to_string(),
            source,
        })?;
        write_atomic(
            &self.layout.tmp(),
            &self.layout.namespace_file(ns.as_str()),
            &bytes,
        )?;
        Ok(out)
    }

    pub(crate) fn tag(
        &self,
        ns: &Namespace,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Option<Digest>> {
        if let Some(pinned) = reference.digest()
            && pinned != digest
        {
            return Err(NameError::DigestConflict {
                reference: reference.to_string(),
                pinned: pinned.clone(),
                digest: digest.clone(),
            }
            .into());
        }
        self.update(ns, |f| {
            Ok(f.names.insert(reference.to_string(), digest.clone()))
        })
    }

    pub(crate) fn untag(&self, ns: &Namespace, reference: &Reference) -> Result<Digest> {
        self.update(ns, |f| {
            f.names.remove(&reference.to_string()).ok_or_else(|| {
                NameError::NotFound {
                    namespace: ns.to_string(),
                    reference: reference.familiar(),
                }
                .into()
            })
        })
    }

    /// A tagged reference resolves through its name. A digest reference
    /// resolves only if this namespace names that digest in the same
    /// repository: content is shared, visibility is not.
    pub(crate) fn resolve(&self, ns: &Namespace, reference: &Reference) -> Result<Digest> {
        let file = self.load(ns)?;
        let not_found = || NameError::NotFound {
            namespace: ns.to_string(),
            reference: reference.familiar(),
        };
        if let Some(pinned) = reference.digest() {
            let name = reference.name();
            let known = file.names.iter().any(|(r, d)| {
                d == pinned
                    && Reference::parse(r)
                        .map(|r| r.name() == name)
                        .unwrap_or(false)
            });
            return if known {
                Ok(pinned.clone())
            } else {
                Err(not_found().into())
            };
        }
        file.names
            .get(&reference.to_string())
            .cloned()
            .ok_or_else(|| not_found().into())
    }

    pub(crate) fn list(&self, ns: &Namespace) -> Result<Vec<Tag>> {
        let file = self.load(ns)?;
        Ok(file
            .names
            .into_iter()
            .filter_map(|(r, digest)| {
                Reference::parse(&r)
                    .ok()
                    .map(|reference| Tag { reference, digest })
            })
            .collect())
    }

    /// Removes every name of `ns` at once (a lab's engine going away).
    pub(crate) fn remove_namespace(&self, ns: &Namespace) -> Result<()> {
        let _lock = FileLock::exclusive(&self.layout.namespace_lock(ns.as_str()))?;
        let path = self.layout.namespace_file(ns.as_str());
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).ctx("removing names", path),
            _ => Ok(()),
        }
    }

    pub(crate) fn namespaces(&self) -> Result<Vec<Namespace>> {
        let dir = self.layout.names();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx("listing namespaces", &dir)? {
            let entry = entry.ctx("listing namespaces", &dir)?;
            let name = entry.file_name();
            if let Some(ns) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| Namespace::new(n).ok())
            {
                out.push(ns);
            }
        }
        out.sort();
        Ok(out)
    }
}
