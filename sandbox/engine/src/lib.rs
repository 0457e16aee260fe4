//! The Docker engine of a lab: the real `docker` CLI in a node talks to it
//! over `/var/run/docker.sock`, and it keeps that lab's images in the
//! shared store under the lab's own names.
//!
//! # Principal types
//! - [`Engines`]: every lab's engine on this host. It owns a small tokio
//!   runtime of its own, so engine traffic never competes with the web
//!   tier's threads, and a directory per lab under its root (drawn below).
//! - [`Engine`]: one lab's engine: its [`images::LabImages`], its
//!   [`containers::Containers`] (each a sibling sandbox of the node, with
//!   `-v` from the node's own directories and volumes under
//!   `/var/lib/docker/volumes` in the node), its [`networks::Networks`]
//!   (`docker0` and user-defined bridges in the node's network), exec
//!   instances, and the facts `docker info` reports.
//! - [`distribution::Registry`]: push, pull and login against registries
//!   inside the lab, over connections made in the lab's network.
//! - [`facts`]: a lab's images and containers as plain facts, what
//!   grading reads ([`Engines::image_facts`], [`Engines::container_facts`]).
//! - [`api`]: the Docker Engine API 1.41 as an axum service on the lab's
//!   socket; only it speaks HTTP, and `api::error` alone picks statuses.
//!
//! # On disk
//! ```text
//! <root>/                       Engines::new(root), beside the runtime's state
//!   <lab>/containers/<id>.json  a container's record
//! <runtime disk dir>/ctr-<id>.kept.ext4  its files, kept between runs
//!                               until `docker rm` (the runtime's)
//! /run/layerlab/engines/<hash of root>/
//!   <lab>/docker.sock           the API; the node sees <lab>/ at /run/layerlab
//! ```
//! The node reaches the socket through a bind mount of its *directory*, so
//! a restarted server that binds a fresh socket is seen at once by nodes
//! that outlived it.
//!
//! # Invariants
//! - A lab sees only its own names (store namespace `engine-<lab>`); blobs
//!   and unpacked layers are shared and never copied, so pulling a catalog
//!   image costs a name, not its bytes.
//! - The engine trusts nothing it is sent: names are checked before they
//!   reach the store, bodies are size-capped, every failure is an answer in
//!   Docker's shape and never a panic.
//! - No engine call touches another lab's directory or namespace.

#![recursion_limit = "256"]

pub mod api;
pub mod build;
pub mod containers;
pub mod distribution;
mod dns;
mod engine;
mod error;
pub mod facts;
pub mod files;
pub mod images;
pub mod networks;
pub mod packages;
mod ports;
mod stamps;
mod streams;
pub mod users;

use std::collections::HashMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use store::{Namespace, Store};
use tokio::sync::oneshot;

pub use engine::{Engine, LabResources, MAX_CONTAINERS};
pub use error::{Error, ErrorKind, Result};

/// Where the node sees its engine's socket directory.
pub const NODE_SOCKET_DIR: &str = "/run/layerlab";
/// The socket's name in that directory.
pub const SOCKET_NAME: &str = "docker.sock";

/// A running engine's listener, stopped by sending on (or dropping) `stop`.
struct Serving {
    stop: oneshot::Sender<()>,
    engine: Arc<Engine>,
    /// The lab's package repository server, if the host has a repository.
    packages: Option<tokio::task::AbortHandle>,
}

impl Serving {
    /// Stops the listener and the lab's package repository server.
    fn end(self) -> Arc<Engine> {
        let _ = self.stop.send(());
        if let Some(packages) = self.packages {
            packages.abort();
        }
        self.engine
    }
}

/// Every lab's engine on this host.
pub struct Engines {
    /// `Some` until drop, which must not block inside another runtime.
    runtime: Option<tokio::runtime::Runtime>,
    /// The sandbox runtime the labs' nodes run on; containers run beside them.
    sandboxes: Arc<runtime::Runtime>,
    store: Store,
    hub: Namespace,
    root: PathBuf,
    /// Where the labs' socket directories live: a neutral path, since a
    /// node sees a bind mount's source in its `/proc/self/mountinfo`.
    sockets: PathBuf,
    serving: Mutex<HashMap<String, Serving>>,
    /// The Debian package repository served in every lab ([`packages`]).
    packages: Option<PathBuf>,
}

/// The host-wide directory holding engines' socket directories, one
/// folder per state directory (named by a hash, never by its path).
pub const SOCKETS_ROOT: &str = "/run/layerlab/engines";

impl Engines {
    /// Engines over `store` whose Docker Hub names come from `hub`, with
    /// their state under `root` and their sockets under [`SOCKETS_ROOT`].
    pub fn new(
        store: Store,
        hub: Namespace,
        sandboxes: Arc<runtime::Runtime>,
        root: &Path,
    ) -> Result<Engines> {
        fs::create_dir_all(root).map_err(Error::state(root))?;
        let root_hash = store::Digest::of(root.as_os_str().as_encoded_bytes());
        let sockets = Path::new(SOCKETS_ROOT).join(&root_hash.hex()[..16]);
        fs::create_dir_all(&sockets).map_err(Error::state(&sockets))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(16)
            .thread_name("engine")
            .enable_all()
            .build()
            .map_err(Error::state(root))?;
        let engines = Engines {
            runtime: Some(runtime),
            sandboxes,
            store,
            hub,
            root: root.to_owned(),
            sockets,
            serving: Mutex::new(HashMap::new()),
            packages: None,
        };
        engines.sweep_kept_layers();
        Ok(engines)
    }

    /// Serves the Debian package repository in `dir` in every lab started
    /// from now on (see [`packages`]); a missing directory answers 404s.
    pub fn with_packages(mut self, dir: PathBuf) -> Engines {
        self.packages = Some(dir);
        self
    }

    /// Deletes the kept files of containers that no lab knows any more (a
    /// removal stopped halfway by a crash); run before any engine starts.
    fn sweep_kept_layers(&self) {
        let known: std::collections::HashSet<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|lab| container_ids(&lab.path()))
            .map(|id| containers::sandbox_id_of(&id))
            .collect();
        for id in self.sandboxes.kept_layers() {
            if id.starts_with("ctr-") && !known.contains(&id) {
                match self.sandboxes.remove_kept_layer(&id) {
                    Ok(()) => {
                        tracing::info!(sandbox = %id, "removed the files of a container no lab knows")
                    }
                    Err(e) => {
                        tracing::warn!(sandbox = %id, error = %e, "cannot remove a container's files")
                    }
                }
            }
        }
    }

    fn lab_dir(&self, lab: &str) -> Result<PathBuf> {
        // The namespace check is the id check: one rule for both.
        Engine::namespace_of(lab)?;
        Ok(self.root.join(lab))
    }

    /// Creates the host directory that will hold lab `lab`'s socket; bind
    /// it into the node at [`NODE_SOCKET_DIR`] before calling
    /// [`Engines::start`].
    pub fn prepare(&self, lab: &str) -> Result<PathBuf> {
        Engine::namespace_of(lab)?;
        let dir = self.sockets.join(lab);
        fs::create_dir_all(&dir).map_err(Error::state(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(Error::state(&dir))?;
        Ok(dir)
    }

    /// Starts (or restarts) lab `lab`'s engine on a fresh socket.
    pub fn start(&self, lab: &str, resources: LabResources) -> Result<()> {
        let dir = self.prepare(lab)?;
        let path = dir.join(SOCKET_NAME);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::state(&path)(e));
            }
            _ => {}
        }
        // A socket path must fit in 108 bytes, which a data directory deep
        // in the file system would not; through the directory's descriptor
        // it always does.
        let handle = fs::File::open(&dir).map_err(Error::state(&dir))?;
        let short = format!("/proc/self/fd/{}/{SOCKET_NAME}", handle.as_raw_fd());
        let listener =
            std::os::unix::net::UnixListener::bind(&short).map_err(Error::state(&path))?;
        drop(handle);
        // Root in the node is an unprivileged host uid that owns nothing
        // here; the socket is reachable only through this lab's bind mount.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))
            .map_err(Error::state(&path))?;
        listener
            .set_nonblocking(true)
            .map_err(Error::state(&path))?;
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(Error::InvalidArgument(
                "the engines are shutting down".into(),
            ));
        };
        let engine = {
            // Records of containers load inside the engines' runtime.
            let _guard = runtime.enter();
            Arc::new(Engine::new(
                self.store.clone(),
                self.hub.clone(),
                self.sandboxes.clone(),
                lab,
                &self.lab_dir(lab)?,
                resources,
            )?)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let packages = self.packages.clone().map(|dir| {
            runtime
                .spawn(packages::serve(self.sandboxes.clone(), lab.to_owned(), dir))
                .abort_handle()
        });
        let serving = Serving {
            stop,
            engine: engine.clone(),
            packages,
        };
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(Error::InvalidArgument(
                "the engines are shutting down".into(),
            ));
        };
        let lab_id = lab.to_owned();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::UnixListener::from_std(listener).map_err(Error::state(&path))?
        };
        runtime.spawn(async move {
            let service = api::router(engine);
            let served = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(lab = %lab_id, error = %e, "engine stopped serving");
            }
        });
        if let Some(old) = self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(lab.to_owned(), serving)
        {
            old.end();
        }
        tracing::debug!(lab, "engine started");
        Ok(())
    }

    fn serving_engine(&self, lab: &str) -> Result<Arc<Engine>> {
        self.serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(lab)
            .map(|s| s.engine.clone())
            .ok_or_else(|| Error::NoEngine(lab.to_owned()))
    }

    /// The image `name_or_id` of lab `lab` (as `docker image inspect` finds
    /// it), `None` when the lab has none by that name.
    pub fn image_facts(&self, lab: &str, name_or_id: &str) -> Result<Option<facts::ImageFacts>> {
        let engine = self.serving_engine(lab)?;
        match engine.images.find(name_or_id) {
            Ok(found) => Ok(Some(facts::image(&found))),
            Err(Error::NoSuchImage(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every container lab `lab` sees (`docker ps -a`), newest first.
    pub fn container_facts(&self, lab: &str) -> Result<Vec<facts::ContainerFacts>> {
        let engine = self.serving_engine(lab)?;
        Ok(engine
            .containers
            .list()
            .iter()
            .map(|c| facts::container(&c.record()))
            .collect())
    }

    /// Stops serving lab `lab` (its names stay, for a later `start`).
    pub fn stop(&self, lab: &str) -> Option<Arc<Engine>> {
        let serving = self
            .serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(lab)?;
        Some(serving.end())
    }

    /// Stops lab `lab`'s engine and removes everything it had: its names
    /// and its directory.
    pub fn remove(&self, lab: &str) -> Result<()> {
        if let Some(engine) = self.stop(lab) {
            engine.containers.remove_all();
        }
        self.store.remove_namespace(&Engine::namespace_of(lab)?)?;
        // Its containers' files, also when no engine ran for it.
        for id in container_ids(&self.lab_dir(lab)?) {
            if let Err(e) = self
                .sandboxes
                .remove_kept_layer(&containers::sandbox_id_of(&id))
            {
                tracing::warn!(container = %id, error = %e, "cannot remove a container's files");
            }
        }
        for dir in [self.lab_dir(lab)?, self.sockets.join(lab)] {
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::state(&dir)(e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// IDs of the containers recorded in a lab's directory.
fn container_ids(lab_dir: &Path) -> Vec<String> {
    fs::read_dir(lab_dir.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|r| {
            let name = r.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect()
}

impl Drop for Engines {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
