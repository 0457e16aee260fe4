//! `docker build` in a lab: the builder's [`Backend`] over this engine.
//! Steps run in containers of the lab (its isolation, limits and bridge
//! network), their changes become layers in the shared store, and every
//! step's image is kept in the lab unnamed, a child of the image before
//! it; `docker images` hides such intermediate images, as Docker does.
//!
//! The cache has two levels. First the lab's own images: a probe looks
//! among the children of the parent (its `config.Image`) for one made by
//! an equal step (`container_config`), newest first. Then the machine's:
//! every step a lab builds is also named in the store namespace
//! [`SHARED_CACHE`] by its key (the parent's ID and the compared config,
//! [`Config::step_key`]), so a class building the same lesson builds each
//! step once and every lab names the result in its own namespace.
//!
//! Steps in flight are shared too: when labs of a class build the same
//! Dockerfile at once, the first to miss a step builds it while the others
//! wait for it ([`InFlight`]) and then take it from the cache, so each
//! step is built once on the machine, not once per lab.
//!
//! A shared step must be what its key says. Its key covers everything a
//! Dockerfile and context put into it (COPY sources by content), and while
//! a build holds a step's container the lab cannot see or touch it (no
//! `exec`, `cp` or `start` into it midway); a failed step's container is
//! shown afterwards, as dockerd keeps it, and never shared. What the key
//! cannot cover is what a RUN fetches over the lab's network: apt's
//! downloads are signed, but a RUN that fetches unsigned data from an
//! address in the lab gets whatever answers there, and that answer could
//! reach another lab building the identical step on the identical parent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

use builder::backend::{Backend, BackendError, BackendResult, StepContainer};
use builder::config::{Config, Image};
use builder::progress::Event;
use serde_json::Value;
use store::Reference;

use crate::Engine;
use crate::containers::{Container, CreateRequest, Status};
use crate::error::{Error, Result};
use crate::images::LabImage;

/// The store namespace naming every lab's build steps by their key.
pub const SHARED_CACHE: &str = "build-cache";

/// Steps the shared cache names before it forgets some (the store's
/// collector then frees what no lab holds).
const MAX_SHARED_STEPS: usize = 4096;

fn shared_cache() -> store::Namespace {
    store::Namespace::new(SHARED_CACHE)
        .unwrap_or_else(|_| unreachable!("\"build-cache\" is a valid namespace"))
}

/// The longest a lab waits for another lab's build of a step before it
/// builds the step itself.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The step keys some build on this machine is building now, each with
/// the condition its waiters sleep on.
#[derive(Default)]
struct InFlight {
    keys: std::sync::Mutex<HashMap<String, Arc<std::sync::Condvar>>>,
}

impl InFlight {
    fn get() -> &'static InFlight {
        static IN_FLIGHT: std::sync::OnceLock<InFlight> = std::sync::OnceLock::new();
        IN_FLIGHT.get_or_init(InFlight::default)
    }

    /// What `look` finds of `key` in the shared cache, or `None` when the
    /// caller is to build it: then it holds the key until
    /// [`InFlight::release`] unless `claimed` says it waited for another
    /// build too long and builds it alongside. `look` runs under the lock,
    /// so a step published and released between a look and a claim
    /// cannot be built twice.
    fn claim<T>(&self, key: &str, look: impl Fn() -> Option<T>) -> (Option<T>, bool) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let start = std::time::Instant::now();
        loop {
            if let Some(found) = look() {
                return (Some(found), false);
            }
            let Some(done) = keys.get(key).cloned() else {
                keys.insert(key.to_owned(), Arc::new(std::sync::Condvar::new()));
                return (None, true);
            };
            let Some(left) = MAX_WAIT.checked_sub(start.elapsed()) else {
                return (None, false);
            };
            keys = done
                .wait_timeout(keys, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn release(&self, key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = keys.remove(key) {
            done.notify_all();
        }
    }
}

fn step_reference(key: &str) -> Reference {
    Reference::parse(&format!("step:{key}"))
        .unwrap_or_else(|_| unreachable!("64 hex digits make a valid tag"))
}

/// The engine as the builder sees it, for one build.
pub struct LabBackend {
    engine: Arc<Engine>,
    tokio: tokio::runtime::Handle,
    /// The lab's images by parent ID, read on the first probe.
    children: Option<HashMap<String, Vec<Image>>>,
    /// The network RUN steps join (`--network`).
    network: String,
    /// Step containers not yet removed.
    containers: HashMap<String, Arc<Container>>,
    /// Views of a step container's files, opened once per step (each
    /// opening is a helper process).
    views: HashMap<String, crate::files::Files>,
    /// Step keys this build took to build (see [`InFlight`]).
    building: Vec<String>,
    /// Whether the client went away: the build stops, as dockerd's does.
    cancelled: Box<dyn Fn() -> bool + Send>,
    /// The thread naming finished steps in the machine's cache.
    sharer: Option<std::sync::mpsc::Sender<Share>>,
}

/// A finished step for the machine's cache; `claimed` if this build took
/// its key, which is then released once it is named.
struct Share {
    manifest: store::Digest,
    key: String,
    claimed: bool,
}

/// Names finished steps in the machine's cache on a thread of its own, in
/// the order they come, so that no step waits for the store's names.
/// Failing to is no failure of the build: the step is only not shared.
fn spawn_sharer(store: store::Store) -> std::sync::mpsc::Sender<Share> {
    let (to, shares) = std::sync::mpsc::channel::<Share>();
    let sharing = move || {
        let ns = shared_cache();
        let mut size_checked = false;
        for share in shares {
            let shared = (|| -> store::Result<()> {
                // Once a build is enough: a build adds a few steps at most.
                if !std::mem::replace(&mut size_checked, true) {
                    let names = store.list(&ns)?;
                    if names.len() >= MAX_SHARED_STEPS {
                        for old in names.iter().take(MAX_SHARED_STEPS / 4) {
                            store.untag(&ns, &old.reference)?;
                        }
                    }
                }
                store.tag(&ns, &step_reference(&share.key), &share.manifest)?;
                Ok(())
            })();
            if let Err(e) = shared {
                tracing::warn!(error = %e, "a build step is not shared with other labs");
            }
            if share.claimed {
                InFlight::get().release(&share.key);
            }
        }
    };
    // Without the thread, sends fail and their keys are released at once.
    if let Err(e) = std::thread::Builder::new()
        .name("build-share".into())
        .spawn(sharing)
    {
        tracing::warn!(error = %e, "build steps are not shared with other labs");
    }
    to
}

/// Bytes `ADD http://…` fetches at most: a lab's disk.
const MAX_FETCH: u64 = 1 << 30;

/// How often a running step looks whether its build's client is gone.
const CANCEL_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

fn cancelled() -> BackendError {
    BackendError("the build was cancelled: its client went away".into())
}

/// The builder's view of an image, from the config the store read with it.
fn builder_image(image: &store::Image) -> Result<Image> {
    let json: Value = serde_json::from_slice(&image.config_bytes)
        .map_err(|e| Error::InvalidArgument(format!("an image config is not JSON: {e}")))?;
    Ok(Image {
        id: image.config_digest.to_string(),
        json,
    })
}

fn failed(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

impl LabBackend {
    /// Must be made where the engine's runtime is entered.
    pub fn new(
        engine: Arc<Engine>,
        network: String,
        cancelled: Box<dyn Fn() -> bool + Send>,
    ) -> LabBackend {
        LabBackend {
            engine,
            tokio: tokio::runtime::Handle::current(),
            children: None,
            network,
            containers: HashMap::new(),
            views: HashMap::new(),
            building: Vec::new(),
            cancelled,
            sharer: None,
        }
    }

    fn lab_image(&self, image: &Image) -> BackendResult<Option<LabImage>> {
        if image.is_scratch() {
            return Ok(None);
        }
        self.engine.images.find(&image.id).map(Some).map_err(failed)
    }

    fn index(&mut self) -> BackendResult<&mut HashMap<String, Vec<Image>>> {
        if self.children.is_none() {
            let mut children: HashMap<String, Vec<Image>> = HashMap::new();
            for found in self.engine.images.list().map_err(failed)? {
                let Ok(image) = builder_image(&found.image) else {
                    continue;
                };
                if let Some(parent) = image.parent() {
                    children.entry(parent.to_owned()).or_default().push(image);
                }
            }
            self.children = Some(children);
        }
        Ok(self.children.get_or_insert_with(HashMap::new))
    }

    fn container(&self, step: &StepContainer) -> BackendResult<Arc<Container>> {
        self.containers
            .get(&step.id)
            .cloned()
            .ok_or_else(|| BackendError(format!("no step container {}", step.id)))
    }

    /// The views of a step container's files: those its run opened, or
    /// for a step that never runs (COPY, WORKDIR), its root open for
    /// writing, whose one mount also serves the commit.
    fn files(&mut self, step: &StepContainer) -> BackendResult<&crate::files::Files> {
        if !self.views.contains_key(&step.id) {
            let container = self.container(step)?;
            let files = self
                .engine
                .containers
                .writable_files(&container)
                .map_err(failed)?;
            self.views.insert(step.id.clone(), files);
        }
        Ok(&self.views[&step.id])
    }
}

impl LabBackend {
    /// Names a step's image in the machine's cache (see [`spawn_sharer`]).
    fn share(&mut self, manifest: &store::Digest, parent: &Image, json: &Value) {
        let Ok(step) = serde_json::from_value::<Config>(json["container_config"].clone()) else {
            return;
        };
        let key = step.step_key(&parent.id);
        let claimed = match self.building.iter().position(|k| *k == key) {
            Some(at) => {
                self.building.swap_remove(at);
                true
            }
            None => false,
        };
        let store = self.engine.store();
        let sharer = self
            .sharer
            .get_or_insert_with(|| spawn_sharer(store.clone()));
        let share = Share {
            manifest: manifest.clone(),
            key,
            claimed,
        };
        if let Err(unsent) = sharer.send(share)
            && unsent.0.claimed
        {
            InFlight::get().release(&unsent.0.key);
        }
    }

    /// Whether `dir` is a directory in the image `step` was made from,
    /// read from its layers on the host; `false` when that cannot be told
    /// there (a symlink on the way: only the step's own view resolves it).
    fn is_dir_in_image(&self, step: &StepContainer, dir: &str) -> bool {
        let layers = self.container(step).ok().and_then(|container| {
            let image = self.engine.images.find(&container.record().image).ok()?;
            let diff_ids: Vec<store::Digest> = image
                .image
                .layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect();
            let top = store::manifests::chain_ids(&diff_ids).pop()?;
            self.engine.store().snapshots().lowerdirs(&top).ok()
        });
        layers.is_some_and(|layers| {
            matches!(store::archive::kind_in_layers(&layers, dir), Ok(Some(true)))
        })
    }
}

/// A build that ends leaves only failed steps' containers: they are shown
/// to the lab, as dockerd keeps them for a look.
impl Drop for LabBackend {
    fn drop(&mut self) {
        for container in self.containers.values() {
            self.engine.containers.reveal(container);
        }
        // Steps this build took and never finished: others may go on.
        for key in &self.building {
            InFlight::get().release(key);
        }
    }
}

impl Backend for LabBackend {
    fn image(
        &mut self,
        name: &str,
        pull: bool,
        progress: &mut dyn FnMut(Event),
    ) -> BackendResult<Image> {
        if !pull && let Ok(found) = self.engine.images.find(name) {
            return builder_image(&found.image).map_err(failed);
        }
        let reference =
            Reference::parse(name).map_err(|_| failed(Error::InvalidReference(name.to_owned())))?;
        let reference = if reference.tag().is_none() && reference.digest().is_none() {
            Reference::parse(&format!("{name}:latest")).map_err(failed)?
        } else {
            reference
        };
        progress(Event::Status(format!(
            "{}: Pulling from {}",
            reference.tag().unwrap_or("latest"),
            reference.repository()
        )));
        let manifest = if reference.registry() == store::reference::DEFAULT_REGISTRY {
            self.engine
                .images
                .pull(&reference)
                .map_err(failed)?
                .image
                .manifest_digest
        } else {
            let registry = crate::distribution::Registry::new(
                self.engine.containers.runtime().clone(),
                self.engine.containers.lab(),
                reference.registry(),
                None,
            )
            .map_err(failed)?;
            let store = self.engine.store().clone();
            let silent = SilentReport;
            let manifest = self
                .tokio
                .block_on(registry.pull(&store, &reference, &silent))
                .map_err(failed)?;
            self.engine
                .images
                .adopt(&reference, &manifest)
                .map_err(failed)?;
            manifest
        };
        progress(Event::Status(format!("Digest: {manifest}")));
        progress(Event::Status(format!(
            "Status: Downloaded newer image for {}",
            reference.familiar()
        )));
        let found = self
            .engine
            .images
            .find(&reference.familiar())
            .map_err(failed)?;
        builder_image(&found.image).map_err(failed)
    }

    fn probe(&mut self, parent: &Image, step: &Config) -> BackendResult<Option<Image>> {
        let index = self.index()?;
        let own = index
            .get(&parent.id)
            .into_iter()
            .flatten()
            .filter(|child| child.container_config().same_step(step))
            .max_by(|a, b| a.created().cmp(b.created()))
            .cloned();
        if own.is_some() {
            return Ok(own);
        }
        let key = step.step_key(&parent.id);
        let reference = step_reference(&key);
        let store = self.engine.store();
        let (found, claimed) =
            InFlight::get().claim(&key, || store.resolve(&shared_cache(), &reference).ok());
        let Some(manifest) = found else {
            if claimed {
                self.building.push(key);
            }
            return Ok(None);
        };
        self.engine.images.keep_unnamed(&manifest).map_err(failed)?;
        let image = builder_image(&store.image(&manifest).map_err(failed)?).map_err(failed)?;
        self.index()?
            .entry(parent.id.clone())
            .or_default()
            .push(image.clone());
        Ok(Some(image))
    }

    fn create(&mut self, parent: &Image, config: &Config) -> BackendResult<StepContainer> {
        if (self.cancelled)() {
            return Err(cancelled());
        }
        let image = self.lab_image(parent)?.ok_or_else(|| {
            BackendError("a step needs a base image: FROM scratch has no files to run".into())
        })?;
        let host_config = crate::api::types::HostConfig {
            network_mode: self.network.clone(),
            ..Default::default()
        };
        let container = self
            .engine
            .containers
            .create(CreateRequest {
                name: None,
                config: config.clone(),
                host_config,
                image,
                hidden: true,
            })
            .map_err(failed)?;
        let step = StepContainer {
            id: container.id.clone(),
        };
        self.containers.insert(container.id.clone(), container);
        Ok(step)
    }

    fn run(&mut self, step: &StepContainer, progress: &mut dyn FnMut(Event)) -> BackendResult<i64> {
        let container = self.container(step)?;
        // A writable root keeps the layer from being the running one's.
        self.views.remove(&step.id);
        let mut events = container.output.subscribe();
        self.engine.containers.start(&container).map_err(failed)?;
        // Opened while the step runs rather than after: the commit then
        // reads at once what the step wrote.
        let files = self.engine.containers.files(&container).map_err(failed)?;
        self.views.insert(step.id.clone(), files);
        let mut killed = false;
        loop {
            let next = self
                .tokio
                .block_on(tokio::time::timeout(CANCEL_CHECK, events.recv()));
            let Ok(next) = next else {
                if !killed && (self.cancelled)() {
                    killed = true;
                    let _ = self
                        .engine
                        .containers
                        .kill(&container, libc::SIGKILL, &container.id);
                }
                continue;
            };
            match next {
                Ok(crate::streams::Event::Output(chunk)) => {
                    let text = String::from_utf8_lossy(&chunk.bytes).into_owned();
                    progress(match chunk.stream {
                        crate::streams::Stream::Stdout => Event::Stream(text),
                        crate::streams::Stream::Stderr => Event::Stderr(text),
                    });
                }
                Ok(crate::streams::Event::End) => break,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        let (mut record, mut changes) = container.watch();
        while record.status == Status::Running {
            if self.tokio.block_on(changes.changed()).is_err() {
                break;
            }
            record = container.record();
        }
        if killed {
            self.remove(step)?;
            return Err(cancelled());
        }
        Ok(i64::from(record.exit_code))
    }

    fn is_dir(&mut self, step: &StepContainer, path: &str) -> BackendResult<Option<bool>> {
        Ok(self
            .files(step)?
            .path_stat(path)
            .ok()
            .map(|stat| stat.mode & libc::S_IFMT == libc::S_IFDIR))
    }

    fn read_file(&mut self, step: &StepContainer, path: &str) -> BackendResult<String> {
        self.files(step)?.read_text(path).map_err(failed)
    }

    fn make_dirs(&mut self, step: &StepContainer, dir: &str) -> BackendResult<()> {
        // An untouched step over an image that has `dir` has nothing to
        // make: no view of it is opened, and its commit is an empty layer.
        if !self.views.contains_key(&step.id) && self.is_dir_in_image(step, dir) {
            return Ok(());
        }
        self.files(step)?.make_dirs(dir).map_err(failed)
    }

    fn copy_into(
        &mut self,
        step: &StepContainer,
        dir: &str,
        archive: &mut (dyn Read + Send),
    ) -> BackendResult<()> {
        let files = self.files(step)?;
        files
            .make_dirs(dir)
            .and_then(|()| files.copy_into(dir, archive))
            .map_err(failed)
    }

    fn fetch(&mut self, url: &str, out: &mut dyn Write) -> BackendResult<()> {
        let unreachable = |why: &str| {
            BackendError(format!(
                "cannot fetch {url}: {why} (nothing outside the lab is reachable: put the file in the build context)"
            ))
        };
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            unreachable("only http:// URLs of the lab's own network can be fetched")
        })?;
        let (host, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let addr = crate::distribution::lab_address(host, 80).ok_or_else(|| {
            unreachable(&format!(
                "{host} is not an address in this lab; use a container's IP address or localhost"
            ))
        })?;
        let runtime = self.engine.containers.runtime().clone();
        let lab = self.engine.containers.lab().to_owned();
        self.tokio.block_on(async move {
            use http_body_util::BodyExt as _;
            let get = |e: String| BackendError(format!("GET {url}: {e}"));
            let mut sender = crate::distribution::connect_in_lab(runtime, &lab, addr)
                .await
                .map_err(get)?;
            let request = hyper::Request::get(path)
                .header("host", host)
                .header(
                    "user-agent",
                    concat!("layerlab-engine/", env!("CARGO_PKG_VERSION")),
                )
                .body(
                    http_body_util::Empty::<bytes::Bytes>::new()
                        .map_err(|never| match never {})
                        .boxed(),
                )
                .map_err(|e| get(e.to_string()))?;
            let mut response = sender
                .send_request(request)
                .await
                .map_err(|e| get(e.to_string()))?;
            if !response.status().is_success() {
                return Err(get(response.status().to_string()));
            }
            let mut fetched = 0u64;
            while let Some(frame) = response.body_mut().frame().await {
                let frame = frame.map_err(|e| get(e.to_string()))?;
                if let Some(data) = frame.data_ref() {
                    fetched += data.len() as u64;
                    if fetched > MAX_FETCH {
                        return Err(get(format!(
                            "the file is larger than {} MiB, the most ADD fetches",
                            MAX_FETCH >> 20
                        )));
                    }
                    out.write_all(data).map_err(|e| get(e.to_string()))?;
                }
            }
            Ok(())
        })
    }

    fn copy_out(&mut self, image: &Image, path: &str, out: &mut dyn Write) -> BackendResult<()> {
        let config = Config {
            cmd: Some(vec!["/bin/sh".into()]),
            ..Config::default()
        };
        let step = self.create(image, &config)?;
        let container = self.container(&step)?;
        let copied = self
            .engine
            .containers
            .files(&container)
            .and_then(|files| files.copy_out(path, out))
            .map_err(failed);
        self.remove(&step)?;
        copied
    }

    fn commit(
        &mut self,
        parent: &Image,
        step: Option<&StepContainer>,
        mut json: Value,
    ) -> BackendResult<Image> {
        let mut layers = match self.lab_image(parent)? {
            Some(found) => found.image.layers,
            None => Vec::new(),
        };
        let mut added = false;
        if let Some(step) = step {
            let store = self.engine.store().clone();
            // A step never run nor opened changed nothing.
            let layer = match self.views.get(&step.id) {
                Some(files) => Some(files.commit_layer(&store, &layers).map_err(failed)?),
                None => None,
            };
            if crate::files::add_layer(&mut json, layer.as_ref())
                && let Some(layer) = layer
            {
                layers.push(layer);
                added = true;
            }
        }
        if layers.is_empty() {
            return Err(BackendError(
                "an image needs at least one layer: COPY or RUN something into a scratch image first".into(),
            ));
        }
        let bytes = serde_json::to_vec(&json).map_err(failed)?;
        let made = self
            .engine
            .store()
            .write_image(&bytes, &layers)
            .map_err(failed)?;
        self.engine
            .images
            .keep_unnamed(&made.manifest_digest)
            .map_err(failed)?;
        if added {
            // The next step, or the first run, unpacks it anyway; now its
            // size is known to `docker history` at once.
            drop(
                self.engine
                    .store()
                    .unpack(&made.manifest_digest)
                    .map_err(failed)?,
            );
        }
        self.share(&made.manifest_digest, parent, &json);
        let image = Image {
            id: made.config_digest.to_string(),
            json,
        };
        if let Some(parent) = image.parent().map(str::to_owned) {
            self.index()?.entry(parent).or_default().push(image.clone());
        }
        Ok(image)
    }

    fn remove(&mut self, step: &StepContainer) -> BackendResult<()> {
        // Its views go first: they hold its files open.
        self.views.remove(&step.id);
        let Some(container) = self.containers.remove(&step.id) else {
            return Ok(());
        };
        self.engine.containers.remove(&container).map_err(failed)
    }
}

/// A pull's layer lines are not part of a build's output.
struct SilentReport;

impl crate::distribution::Report for SilentReport {
    fn layer(&self, _: &str, _: &str) {}
    fn status(&self, _: &str) {}
}
