//! One lab's engine: what a request to the lab's API reaches (its images,
//! containers, networks and exec instances) and the lab's limits. Shared
//! by the API handlers and the builder's backend, it imports neither: the
//! exec table it holds lives apart from the exec handlers, in `api::execs`.

use std::path::Path;
use std::sync::Arc;

use store::{Namespace, Store};

use crate::api::Execs;
use crate::containers;
use crate::error::{Error, Result};
use crate::images::LabImages;
use crate::networks;

/// Containers one lab may have at once, running or not.
pub const MAX_CONTAINERS: usize = 32;

/// What `docker info` says of the lab's machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabResources {
    pub memory_bytes: u64,
    /// CPUs the lab may use (its cap, or the host's count).
    pub cpus: usize,
}

/// One lab's engine.
pub struct Engine {
    lab: String,
    /// The lab's directory: records, and build contexts while they last.
    dir: std::path::PathBuf,
    pub(crate) images: LabImages,
    pub(crate) containers: Arc<containers::Containers>,
    pub(crate) networks: Arc<networks::Networks>,
    pub(crate) execs: Execs,
    store: Store,
    hub: Namespace,
    resources: LabResources,
}

impl Engine {
    /// The store namespace holding lab `lab`'s names.
    pub fn namespace_of(lab: &str) -> Result<Namespace> {
        Namespace::new(&format!("engine-{lab}")).map_err(|e| {
            Error::InvalidArgument(format!("lab id {lab:?} cannot name an engine: {e}"))
        })
    }

    pub fn new(
        store: Store,
        hub: Namespace,
        runtime: Arc<runtime::Runtime>,
        lab: &str,
        dir: &Path,
        resources: LabResources,
    ) -> Result<Engine> {
        let ns = Engine::namespace_of(lab)?;
        let networks = Arc::new(networks::Networks::open(dir.join("networks.json"))?);
        let containers = Arc::new(containers::Containers::open(
            lab,
            networks.clone(),
            runtime,
            store.clone(),
            dir.join("containers"),
            MAX_CONTAINERS,
        )?);
        containers.adopt();
        Ok(Engine {
            lab: lab.to_owned(),
            dir: dir.to_owned(),
            images: LabImages::new(store.clone(), ns, hub.clone()),
            containers,
            networks,
            execs: Execs::default(),
            store,
            hub,
            resources,
        })
    }

    pub fn images(&self) -> &LabImages {
        &self.images
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Where a build unpacks its context.
    pub(crate) fn builds_dir(&self) -> std::path::PathBuf {
        self.dir.join("builds")
    }

    pub(crate) fn resources(&self) -> &LabResources {
        &self.resources
    }

    /// The lab's id.
    pub(crate) fn lab(&self) -> &str {
        &self.lab
    }

    /// Runs store work on a blocking thread.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Engine) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || work(&engine)).await?
    }

    /// Repository names the hub offers (`docker search`), familiar form.
    pub(crate) fn hub_repositories(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .store
            .list(&self.hub)?
            .into_iter()
            .map(|t| t.reference.familiar_name())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}
