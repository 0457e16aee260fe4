//! A lab's containers: records on disk, each run a sandbox beside the
//! lab's node (the runtime's `sibling_of`: the lab's user namespace, uid
//! range and cgroup limits, its own other namespaces), its output in a
//! bounded log.
//!
//! A container's state and its waiters share one lock: the record and the
//! `changed` counter move together, so a `wait` registered before `start`
//! cannot miss a fast exit.

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store::{Lease, Store};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::api::types::{ContainerConfig, HostConfig, PortBinding, ZERO_TIME};
use crate::error::{Error, Result};
use crate::images::LabImage;
use crate::stamps::{now, random_id, valid_object_name};
use crate::streams::{self, Output, Stream};

/// How much output a container keeps for `docker logs`.
pub const LOG_LIMIT: usize = 1 << 20;
/// How long a stopped init has to be reaped before its status is unknown.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// Where a container is in its life, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
    Removing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }

    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }
}

/// What survives a restart of the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// With Docker's leading `/`.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// The image ID (`sha256:` of its config).
    pub image: String,
    /// The manifest digest it was created from, to unpack it again.
    pub manifest: String,
    pub status: Status,
    pub pid: i32,
    pub exit_code: i32,
    pub started_at: String,
    pub finished_at: String,
    pub restart_count: u32,
    /// Address on the lab's bridge while running (empty otherwise).
    #[serde(default)]
    pub ip: String,
    /// Ports published on the node while running: `80/tcp` → bindings.
    #[serde(default)]
    pub ports: BTreeMap<String, Vec<PortBinding>>,
    /// The network it is on while running (`bridge` or a user-defined one).
    #[serde(default)]
    pub network: String,
}

impl Record {
    /// The runtime sandbox of this container; ids are random, so unique
    /// on the host.
    pub fn sandbox_id(&self) -> String {
        sandbox_id_of(&self.id)
    }
}

pub struct Container {
    pub id: String,
    state: Mutex<Record>,
    /// Bumped on every change of `state`; waiters watch it.
    changed: watch::Sender<u64>,
    pub output: Output,
    /// Write end of the container's stdin while it runs with `OpenStdin`.
    stdin: Mutex<Option<OwnedFd>>,
    /// The terminal of a `Tty` container, for resizing.
    pty: Mutex<Option<Arc<runtime::Pty>>>,
    /// Keeps the image's layers while the container exists.
    _lease: Mutex<Option<Lease>>,
    /// The accept loops of its published ports, ended when it exits.
    publishers: Mutex<Vec<tokio::task::AbortHandle>>,
    /// A build step's container, out of the lab's sight (and reach) until
    /// [`Containers::reveal`]: what it makes may stand for another lab's
    /// step, so nobody may touch it midway.
    hidden: std::sync::atomic::AtomicBool,
}

impl Container {
    pub fn record(&self) -> Record {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The record now and a receiver that sees every later change.
    pub fn watch(&self) -> (Record, watch::Receiver<u64>) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.clone(), self.changed.subscribe())
    }

    fn update(&self, dir: &std::path::Path, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut state);
        save(dir, &state)?;
        self.changed.send_modify(|n| *n += 1);
        Ok(state.clone())
    }

    pub fn take_stdin(&self) -> Option<OwnedFd> {
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn stdin_writer(&self) -> Option<OwnedFd> {
        self.stdin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|fd| fd.try_clone().ok())
    }

    pub fn pty(&self) -> Option<Arc<runtime::Pty>> {
        self.pty.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn save(dir: &std::path::Path, record: &Record) -> Result<()> {
    let path = dir.join(format!("{}.json", record.id));
    let tmp = dir.join(format!(".{}.tmp", record.id));
    let bytes = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::state(&path)(std::io::Error::other(e)))?;
    fs::write(&tmp, bytes).map_err(Error::state(&tmp))?;
    fs::rename(&tmp, &path).map_err(Error::state(&path))
}

/// What `docker create` asks for, already merged with the image.
pub struct CreateRequest {
    pub name: Option<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub image: LabImage,
    /// A build step's container, hidden from the lab.
    pub hidden: bool,
}

pub struct Containers {
    lab: String,
    networks: Arc<crate::networks::Networks>,
    runtime: Arc<runtime::Runtime>,
    store: Store,
    dir: PathBuf,
    table: Mutex<BTreeMap<String, Arc<Container>>>,
    max: usize,
    /// The DNS server of each user-defined network that has running
    /// containers, by network name.
    dns: Mutex<BTreeMap<String, tokio::task::AbortHandle>>,
}

impl Containers {
    /// The containers of lab `lab`, with their records in `dir` (those a
    /// previous engine left are loaded; any that were running lost their
    /// streams with it and are stopped).
    pub fn open(
        lab: &str,
        networks: Arc<crate::networks::Networks>,
        runtime: Arc<runtime::Runtime>,
        store: Store,
        dir: PathBuf,
        max: usize,
    ) -> Result<Containers> {
        fs::create_dir_all(&dir).map_err(Error::state(&dir))?;
        let containers = Containers {
            lab: lab.to_owned(),
            networks,
            runtime,
            store,
            dir,
            table: Mutex::new(BTreeMap::new()),
            max,
            dns: Mutex::new(BTreeMap::new()),
        };
        for entry in fs::read_dir(&containers.dir)
            .map_err(Error::state(&containers.dir))?
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(record) = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
            else {
                tracing::warn!(path = %path.display(), "skipping an unreadable container record");
                continue;
            };
            let container = containers.wrap(record, None);
            containers.lock().insert(container.id.clone(), container);
        }
        Ok(containers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Container>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wrap(&self, record: Record, lease: Option<Lease>) -> Arc<Container> {
        let output = Output::persistent(
            LOG_LIMIT,
            &self.log_path(&record.id),
            record.status == Status::Exited,
        );
        Arc::new(Container {
            id: record.id.clone(),
            state: Mutex::new(record),
            changed: watch::channel(0).0,
            output,
            stdin: Mutex::new(None),
            pty: Mutex::new(None),
            _lease: Mutex::new(lease),
            publishers: Mutex::new(Vec::new()),
            hidden: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn visible(container: &Arc<Container>) -> bool {
        !container.hidden.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Shows a hidden build step's container to the lab (a failed step's,
    /// kept for a look as dockerd keeps it).
    pub fn reveal(&self, container: &Container) {
        container
            .hidden
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The containers the lab sees.
    pub fn list(&self) -> Vec<Arc<Container>> {
        let mut all: Vec<Arc<Container>> = self
            .lock()
            .values()
            .filter(|c| Containers::visible(c))
            .cloned()
            .collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.record().created));
        all
    }

    /// By full ID, unique ID prefix or name (with or without `/`).
    pub fn find(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let no_such = || Error::NoSuchContainer(name_or_id.to_owned());
        if name_or_id.is_empty() {
            return Err(no_such());
        }
        let table = self.lock();
        let mut seen = table.values().filter(|c| Containers::visible(c));
        if let Some(c) = table.get(name_or_id).filter(|c| Containers::visible(c)) {
            return Ok(c.clone());
        }
        let wanted = format!("/{}", name_or_id.trim_start_matches('/'));
        if let Some(c) = seen.find(|c| c.record().name == wanted) {
            return Ok(c.clone());
        }
        let mut by_prefix = table
            .values()
            .filter(|c| Containers::visible(c))
            .filter(|c| c.id.starts_with(name_or_id));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(c), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!(
                "multiple containers found with provided prefix: {name_or_id}"
            ))),
            _ => Err(no_such()),
        }
    }

    pub fn create(&self, request: CreateRequest) -> Result<Arc<Container>> {
        let mut table = self.lock();
        if table.len() >= self.max {
            return Err(Error::Conflict(format!(
                "this lab has {} containers, its limit: remove some with `docker rm` (or `docker container prune`) first",
                self.max
            )));
        }
        let id = random_id();
        let name = match request.name {
            Some(n) => {
                check_name(&n)?;
                format!("/{}", n.trim_start_matches('/'))
            }
            None => generated_name(&table),
        };
        if let Some(holder) = table.values().find(|c| c.record().name == name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                holder.id
            )));
        }
        let argv: Vec<String> = request
            .config
            .entrypoint
            .iter()
            .flatten()
            .chain(request.config.cmd.iter().flatten())
            .cloned()
            .collect();
        let Some((path, args)) = argv.split_first() else {
            return Err(Error::InvalidArgument("No command specified".into()));
        };
        let record = Record {
            id: id.clone(),
            name,
            created: now(),
            path: path.clone(),
            args: args.to_vec(),
            config: request.config,
            host_config: request.host_config,
            image: request.image.id(),
            manifest: request.image.image.manifest_digest.to_string(),
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            restart_count: 0,
            ip: String::new(),
            ports: BTreeMap::new(),
            network: String::new(),
        };
        save(&self.dir, &record)?;
        let container = self.wrap(record, None);
        container
            .hidden
            .store(request.hidden, std::sync::atomic::Ordering::SeqCst);
        table.insert(id, container.clone());
        Ok(container)
    }

    /// The layers of the image `record` was created from, unpacked and
    /// leased.
    fn unpack(&self, record: &Record) -> Result<store::Unpacked> {
        let manifest: store::Digest = record
            .manifest
            .parse()
            .map_err(|_| Error::NoSuchImage(record.image.clone()))?;
        Ok(self.store.unpack(&manifest)?)
    }

    /// Starts the container's process.
    pub fn start(self: &Arc<Self>, container: &Arc<Container>) -> Result<()> {
        let record = container.record();
        if record.status == Status::Running {
            return Err(Error::NotModified);
        }
        if !record.status.can_start() {
            return Err(Error::Conflict(format!(
                "cannot start container {}: it is {}",
                record.id,
                record.status.as_str()
            )));
        }
        let unpacked = self.unpack(&record)?;
        let mut spec = runtime::SandboxSpec::new(record.sandbox_id(), unpacked.lowerdirs.clone());
        spec.sibling_of = Some(self.lab.clone());
        spec.keep_writable_layer = true;
        spec.limits = container_limits();
        spec.hostname = hostname(&record);
        spec.network.bridge = None;
        spec.env = record
            .config
            .env
            .iter()
            .flatten()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        spec.env
            .entry("HOSTNAME".into())
            .or_insert_with(|| spec.hostname.clone());
        if let Some(user) = self.user_of(container, &record.config.user)? {
            spec.env.entry("HOME".into()).or_insert(user.home);
            spec.user = Some(runtime::User {
                uid: user.uid,
                gid: user.gid,
                groups: user.groups,
            });
        }
        spec.init = Some(
            std::iter::once(record.path.clone())
                .chain(record.args.iter().cloned())
                .collect(),
        );
        spec.cwd = if record.config.working_dir.is_empty() {
            "/".into()
        } else {
            record.config.working_dir.clone()
        };
        let network = match record.host_config.network_mode.as_str() {
            "none" => None,
            "host" => {
                spec.network.share_node = true;
                None
            }
            "" | "default" | "bridge" => Some(crate::networks::default_bridge()),
            name => Some(self.networks.find(name)?),
        };
        let ip = match &network {
            Some(net) => {
                let ip = self.free_address(net, &record.id)?;
                spec.network.veth = Some(runtime::Veth {
                    bridge: net.bridge(),
                    address: ip.octets(),
                    prefix_len: BRIDGE_PREFIX,
                    gateway: net.gateway().octets(),
                });
                spec.hosts = vec![
                    (ip.to_string(), spec.hostname.clone()),
                    crate::packages::hosts_line(net.gateway()),
                ];
                if net.user_defined() {
                    spec.hosts.extend(self.neighbours(net, &record.id));
                    // Its own file, bound over /etc/hosts, so containers
                    // that join later are added to it while it runs; and
                    // the network's DNS server as its nameserver.
                    let hosts = self.hosts_path(&record.id);
                    write_in_place(&hosts, &runtime::hosts_file(&spec.hostname, &spec.hosts))?;
                    let resolv = self.resolv_path(&record.id);
                    write_in_place(
                        &resolv,
                        &format!("nameserver {}\noptions ndots:0\n", net.gateway()),
                    )?;
                    for (source, target) in [(hosts, "/etc/hosts"), (resolv, "/etc/resolv.conf")] {
                        spec.mounts.push(runtime::BindMount {
                            source,
                            target: target.into(),
                            readonly: true,
                            in_node: false,
                        });
                    }
                }
                Some(ip)
            }
            None => {
                spec.hosts = vec![("127.0.1.1".into(), spec.hostname.clone())];
                if spec.network.share_node {
                    // The node's own network: the repository's listener
                    // answers on its loopback too.
                    spec.hosts
                        .push(crate::packages::hosts_line(std::net::Ipv4Addr::LOCALHOST));
                }
                None
            }
        };
        for mount in mounts(&record.host_config)? {
            self.ensure_in_node(&mount.source)?;
            spec.mounts.push(runtime::BindMount {
                source: mount.source.into(),
                target: mount.target,
                readonly: mount.readonly,
                in_node: true,
            });
        }
        let bindings = crate::ports::requested(&record.host_config)?;
        // With the node's network the ports are the node's already; dockerd
        // likewise ignores -p with --network host.
        let bindings = if spec.network.share_node {
            Vec::new()
        } else {
            bindings
        };
        if ip.is_none() && !bindings.is_empty() {
            return Err(Error::InvalidArgument(
                "a container without a network cannot publish ports".into(),
            ));
        }
        let bound = bindings
            .iter()
            .map(|b| crate::ports::bind(&self.runtime, &self.lab, b))
            .collect::<Result<Vec<_>>>()?;
        container.output.reopen();
        // Subscribed before the process exists, so no early output or
        // exit is missed by what follows.
        let (sandbox, readers) = self.launch(container, &record, spec)?;
        *container._lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(unpacked.lease);
        let mut published: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
        if let Some(ip) = ip {
            for (socket, request) in bound.into_iter().zip(&bindings) {
                published
                    .entry(request.key.clone())
                    .or_default()
                    .push(socket.binding());
                self.publish(container, socket, (ip, request.container_port).into())?;
            }
        }
        container.update(&self.dir, |r| {
            r.status = Status::Running;
            r.pid = sandbox.init_pid;
            r.exit_code = 0;
            r.started_at = now();
            r.finished_at = ZERO_TIME.into();
            r.ip = ip.map(|a| a.to_string()).unwrap_or_default();
            r.ports = published;
            r.network = network.map(|n| n.name).unwrap_or_default();
        })?;
        self.refresh_hosts(&container.record().network);
        self.follow(container, readers);
        Ok(())
    }

    /// Relays a running container's output until it ends, then records its
    /// exit and, for `--rm`, removes it.
    fn follow(self: &Arc<Self>, container: &Arc<Container>, readers: Readers) {
        let containers = self.clone();
        let container = container.clone();
        tokio::spawn(async move {
            relay(&container, readers).await;
            let _ = tokio::task::spawn_blocking(move || {
                containers.finish(&container);
                let record = container.record();
                if record.host_config.auto_remove
                    && let Err(e) = containers
                        .remove(&container)
                        .and_then(|()| containers.remove_anonymous_volumes(&record))
                {
                    tracing::warn!(container = %container.id, error = %e, "cannot auto-remove a container");
                }
            })
            .await;
        });
    }

    /// Takes up the containers a previous engine left running: their
    /// streams back from their inits, their published ports again, and
    /// their output from where it was. One that cannot be taken up is
    /// stopped and recorded as killed (exit 137).
    pub fn adopt(self: &Arc<Self>) {
        let running: Vec<Arc<Container>> = self
            .lock()
            .values()
            .filter(|c| c.record().status == Status::Running)
            .cloned()
            .collect();
        for container in running {
            if let Err(e) = self.resume(&container) {
                let record = container.record();
                tracing::info!(container = %record.id, error = %e, "a container that was running is not any more");
                let _ = self
                    .runtime
                    .stop(&record.sandbox_id(), Duration::from_secs(1));
                if let Err(e) = container.update(&self.dir, |r| {
                    r.status = Status::Exited;
                    r.pid = 0;
                    r.exit_code = 137;
                    r.ip.clear();
                    r.ports.clear();
                    r.network.clear();
                    r.finished_at = now();
                }) {
                    tracing::warn!(container = %record.id, error = %e, "cannot record a container's exit");
                }
                container.output.end();
            }
        }
    }

    fn resume(self: &Arc<Self>, container: &Arc<Container>) -> Result<()> {
        let record = container.record();
        let mut held = self.runtime.take_back(&record.sandbox_id())?.into_iter();
        let lease = self.unpack(&record)?.lease;
        let lost = || Error::Conflict(format!("the streams of container {} are gone", record.id));
        let readers = if record.config.tty {
            let pty = runtime::Pty::new(held.next().ok_or_else(lost)?);
            let reader = pty.try_clone()?;
            if record.config.open_stdin {
                *container.stdin.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(OwnedFd::from(pty.try_clone()?));
            }
            *container.pty.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(pty));
            Readers::Tty(reader.into())
        } else {
            let out = held.next().ok_or_else(lost)?;
            let err = held.next().ok_or_else(lost)?;
            Readers::Pipes(out, err)
        };
        *container._lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
        let ip: std::net::Ipv4Addr = record.ip.parse().map_err(|_| lost())?;
        for (key, bindings) in &record.ports {
            for binding in bindings {
                let request = crate::ports::recorded(key, binding).ok_or_else(lost)?;
                let socket = crate::ports::bind(&self.runtime, &self.lab, &request)?;
                self.publish(container, socket, (ip, request.container_port).into())?;
            }
        }
        container.output.reopen();
        self.follow(container, readers);
        self.refresh_hosts(&record.network);
        tracing::info!(container = %record.id, "took up a running container");
        Ok(())
    }

    /// Deletes the anonymous volumes (named by a random ID) of a removed
    /// container: `docker rm -v`, and `--rm`.
    pub fn remove_anonymous_volumes(&self, record: &Record) -> Result<()> {
        for m in mounts(&record.host_config)? {
            if let Some(name) = m
                .volume
                .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                let dir = format!("{VOLUMES}/{name}");
                self.node_command(&["rm", "-rf", "--", &dir])?;
            }
        }
        Ok(())
    }

    /// Creates directory `path` in the node if missing, as dockerd creates
    /// a missing bind source (and a volume's directory).
    pub fn ensure_in_node(&self, path: &str) -> Result<()> {
        self.node_command(&["mkdir", "-p", "--", path]).map(drop)
    }

    /// Runs a command as root in the lab's node and returns its stdout;
    /// a failure says what the node printed.
    pub fn node_command(&self, argv: &[&str]) -> Result<String> {
        let mut spec = runtime::ExecSpec::new(argv.iter().copied());
        spec.timeout = Some(Duration::from_secs(10));
        let out = self.runtime.exec(&self.lab, &spec)?;
        if !out.status.success() {
            return Err(Error::InvalidArgument(format!(
                "{}: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The lowest address of `net` no running container of the lab holds.
    fn free_address(
        &self,
        net: &crate::networks::Network,
        for_id: &str,
    ) -> Result<std::net::Ipv4Addr> {
        let taken: Vec<String> = self
            .lock()
            .values()
            .map(|c| c.record())
            .filter(|r| r.status == Status::Running && r.id != for_id)
            .map(|r| r.ip)
            .collect();
        let base = u32::from(net.gateway());
        (2..(1u32 << (32 - BRIDGE_PREFIX)) - 1)
            .map(|n| std::net::Ipv4Addr::from(base - 1 + n))
            .find(|a| !taken.contains(&a.to_string()))
            .ok_or_else(|| Error::Conflict(format!("network {} has no free address", net.name)))
    }

    /// `/etc/hosts` lines for the running containers of a user-defined
    /// network: its name and short ID, as Docker's DNS answers them.
    fn neighbours(&self, net: &crate::networks::Network, for_id: &str) -> Vec<(String, String)> {
        self.lock()
            .values()
            .map(|c| c.record())
            .filter(|r| r.status == Status::Running && r.id != for_id && r.network == net.name)
            .flat_map(|r| {
                let name = r.name.trim_start_matches('/').to_owned();
                [(r.ip.clone(), name), (r.ip.clone(), r.id[..12].to_owned())]
            })
            .collect()
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    fn resolv_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.resolv.conf"))
    }

    fn hosts_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.hosts"))
    }

    /// Rewrites the `/etc/hosts` of every running container on user-defined
    /// network `name` after a container joined or left it.
    fn refresh_hosts(self: &Arc<Self>, name: &str) {
        let Ok(net) = self.networks.find(name) else {
            return;
        };
        if !net.user_defined() {
            return;
        }
        let members: Vec<Record> = self
            .lock()
            .values()
            .map(|c| c.record())
            .filter(|r| r.status == Status::Running && r.network == net.name)
            .collect();
        self.serve_dns(&net, !members.is_empty());
        for r in members {
            let name = hostname(&r);
            let mut lines = vec![
                (r.ip.clone(), name.clone()),
                crate::packages::hosts_line(net.gateway()),
            ];
            lines.extend(self.neighbours(&net, &r.id));
            if let Err(e) =
                write_in_place(&self.hosts_path(&r.id), &runtime::hosts_file(&name, &lines))
            {
                tracing::warn!(container = %r.id, error = %e, "cannot update a container's /etc/hosts");
            }
        }
    }

    /// Starts (`wanted`) or stops the DNS server of user-defined network
    /// `net`. A port 53 the node took first leaves the network without one:
    /// its names still resolve through `/etc/hosts`.
    fn serve_dns(self: &Arc<Self>, net: &crate::networks::Network, wanted: bool) {
        let mut servers = self.dns.lock().unwrap_or_else(|p| p.into_inner());
        if !wanted {
            if let Some(task) = servers.remove(&net.name) {
                task.abort();
            }
            return;
        }
        if servers.contains_key(&net.name) {
            return;
        }
        let addr = std::net::SocketAddr::from((net.gateway(), 53));
        let socket = self
            .runtime
            .bind_udp(&self.lab, addr)
            .map_err(Error::from)
            .and_then(|s| {
                s.set_nonblocking(true).map_err(Error::state(&self.dir))?;
                tokio::net::UdpSocket::from_std(s).map_err(Error::state(&self.dir))
            });
        let socket = match socket {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(network = %net.name, error = %e, "no DNS server for a network");
                return;
            }
        };
        let containers = Arc::downgrade(self);
        let network = net.name.clone();
        let task = tokio::spawn(crate::dns::serve(socket, move |name| {
            containers.upgrade()?.address_on(&network, name)
        }));
        servers.insert(net.name.clone(), task.abort_handle());
    }

    /// The address of the running container called `name` (or whose ID
    /// starts with it, 12 digits at least) on network `network`.
    fn address_on(&self, network: &str, name: &str) -> Option<std::net::Ipv4Addr> {
        let name = name.to_ascii_lowercase();
        self.lock()
            .values()
            .map(|c| c.record())
            .filter(|r| r.status == Status::Running && r.network == network)
            .find(|r| {
                r.name.trim_start_matches('/').eq_ignore_ascii_case(&name)
                    || (name.len() >= 12 && r.id.starts_with(&name))
            })
            .and_then(|r| r.ip.parse().ok())
    }

    /// Whether a running container is on network `name`.
    pub fn network_in_use(&self, name: &str) -> bool {
        self.lock()
            .values()
            .any(|c| c.record().status == Status::Running && c.record().network == name)
    }

    /// Forwards what reaches `socket` on the node to `target` on the
    /// bridge, for as long as `container` runs.
    fn publish(
        &self,
        container: &Container,
        socket: crate::ports::Bound,
        target: std::net::SocketAddr,
    ) -> Result<()> {
        let task = crate::ports::forward(self.runtime.clone(), self.lab.clone(), socket, target)
            .map_err(Error::state(&self.dir))?;
        container
            .publishers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        Ok(())
    }

    /// Starts the container's sandbox with its stdio on pipes, or on a
    /// terminal of its own devpts; returns the ends we read.
    fn launch(
        &self,
        container: &Container,
        record: &Record,
        spec: runtime::SandboxSpec,
    ) -> Result<(runtime::Sandbox, Readers)> {
        let io = |e| Error::state(&self.dir)(e);
        let open_stdin = record.config.open_stdin;
        if record.config.tty {
            let (sandbox, pty) = self
                .runtime
                .create_on_terminal(spec, streams::INITIAL_TTY)?;
            let ends = pty.try_clone().and_then(|reader| {
                let stdin = open_stdin.then(|| pty.try_clone()).transpose()?;
                Ok((reader, stdin))
            });
            let (reader, stdin) = match ends {
                Ok(ends) => ends,
                Err(e) => {
                    let _ = self.runtime.stop(&sandbox.id, Duration::ZERO);
                    return Err(e.into());
                }
            };
            *container.stdin.lock().unwrap_or_else(|p| p.into_inner()) = stdin.map(OwnedFd::from);
            *container.pty.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(pty));
            return Ok((sandbox, Readers::Tty(reader.into())));
        }
        let stdin = if open_stdin {
            let (r, w) = streams::pipe().map_err(io)?;
            *container.stdin.lock().unwrap_or_else(|p| p.into_inner()) = Some(w);
            r
        } else {
            fs::File::open("/dev/null").map_err(io)?.into()
        };
        let (out_r, out_w) = streams::pipe().map_err(io)?;
        let (err_r, err_w) = streams::pipe().map_err(io)?;
        // The init keeps the ends we read, so the container's output pipes
        // stay open while this engine restarts (and are taken back then).
        let stdio = runtime::Stdio3 {
            stdin,
            stdout: out_w,
            stderr: err_w,
            held: vec![
                out_r.try_clone().map_err(io)?,
                err_r.try_clone().map_err(io)?,
            ],
        };
        let sandbox = self.runtime.create_attached(spec, stdio)?;
        Ok((sandbox, Readers::Pipes(out_r, err_r)))
    }

    /// After the output ended: the exit status, then the sandbox goes.
    fn finish(self: &Arc<Self>, container: &Container) {
        let record = container.record();
        let sandbox = record.sandbox_id();
        let status = self.runtime.wait_exit(&sandbox, REAP_WAIT);
        if let Err(e) = self.runtime.stop(&sandbox, Duration::ZERO) {
            tracing::warn!(container = %record.id, error = %e, "cannot remove a container's sandbox");
        }
        drop(container.take_stdin());
        *container.pty.lock().unwrap_or_else(|p| p.into_inner()) = None;
        for task in container
            .publishers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        let code = status.map_or(137, |s| s.shell_code());
        if let Err(e) = container.update(&self.dir, |r| {
            r.status = Status::Exited;
            r.pid = 0;
            r.ip.clear();
            r.ports.clear();
            r.network.clear();
            r.exit_code = code;
            r.finished_at = now();
        }) {
            tracing::warn!(container = %record.id, error = %e, "cannot record a container's exit");
        }
        self.refresh_hosts(&record.network);
        container.output.end();
    }

    /// Sends `signal` to the container's main process; `asked` is how the
    /// client named it, for the message.
    pub fn kill(&self, container: &Container, signal: i32, asked: &str) -> Result<()> {
        let record = container.record();
        if record.status != Status::Running {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {asked}: Container {} is not running",
                record.id
            )));
        }
        Ok(self.runtime.signal(&record.sandbox_id(), signal)?)
    }

    /// `docker stop`: the stop signal, then SIGKILL after `grace`.
    pub async fn stop(&self, container: &Container, grace: Duration) -> Result<()> {
        let (record, mut changes) = container.watch();
        if record.status != Status::Running {
            return Err(Error::NotModified);
        }
        let signal = signal_number(&record.config.stop_signal).unwrap_or(libc::SIGTERM);
        let _ = self.runtime.signal(&record.sandbox_id(), signal);
        let exited = async {
            while container.record().status == Status::Running {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        };
        if tokio::time::timeout(grace, exited).await.is_err() {
            let _ = self.runtime.signal(&record.sandbox_id(), libc::SIGKILL);
            let (_, mut changes) = container.watch();
            while container.record().status == Status::Running {
                if changes.changed().await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Forgets a container that is not running.
    pub fn remove(&self, container: &Container) -> Result<()> {
        let record = container.record();
        if record.status == Status::Running {
            return Err(Error::Conflict(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                record.id
            )));
        }
        container.update(&self.dir, |r| r.status = Status::Removing)?;
        self.runtime.remove_kept_layer(&record.sandbox_id())?;
        let _ = fs::remove_file(self.hosts_path(&record.id));
        let _ = fs::remove_file(self.resolv_path(&record.id));
        let _ = fs::remove_file(self.log_path(&record.id));
        self.lock().remove(&record.id);
        let path = self.dir.join(format!("{}.json", record.id));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::state(&path)(e)),
            _ => Ok(()),
        }
    }

    pub fn rename(&self, container: &Container, name: &str) -> Result<()> {
        check_name(name)?;
        let name = format!("/{}", name.trim_start_matches('/'));
        let table = self.lock();
        if let Some(holder) = table.values().find(|c| c.record().name == name) {
            return Err(Error::Conflict(format!(
                "Conflict. The container name \"{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                holder.id
            )));
        }
        container.update(&self.dir, |r| r.name = name)?;
        Ok(())
    }

    /// `--user` of a container (or its exec) resolved in its own files;
    /// `None` for root.
    pub fn user_of(&self, container: &Container, spec: &str) -> Result<Option<crate::users::User>> {
        if crate::users::is_root(spec) {
            return Ok(None);
        }
        let files = self.files(container)?;
        let passwd = files.read_text("/etc/passwd")?;
        let group = files.read_text("/etc/group")?;
        crate::users::resolve(spec, &passwd, &group).map(Some)
    }

    /// The files of a container, running or not (empty if it never ran).
    pub fn files(&self, container: &Container) -> Result<crate::files::Files> {
        let record = container.record();
        let unpacked = self.unpack(&record)?;
        let views = self.runtime.open_layer(
            &record.sandbox_id(),
            &self.lab,
            &unpacked.lowerdirs,
            &container_limits(),
        )?;
        let id_base = self.runtime.get(&self.lab)?.uid_base;
        Ok(crate::files::Files::new(views, id_base, unpacked.lease))
    }

    /// `docker cp` into a container that is not running: `archive` unpacked
    /// into its directory `dir`, in the files its next start finds.
    pub fn copy_into(
        &self,
        container: &Container,
        dir: &str,
        archive: impl std::io::Read + Send,
    ) -> Result<()> {
        self.writable_files(container)?.copy_into(dir, archive)
    }

    /// The files of a container that is not running, its root open for
    /// writing.
    pub fn writable_files(&self, container: &Container) -> Result<crate::files::Files> {
        let record = container.record();
        let unpacked = self.unpack(&record)?;
        let views = self.runtime.open_layer_writable(
            &record.sandbox_id(),
            &self.lab,
            &unpacked.lowerdirs,
            &container_limits(),
        )?;
        Ok(crate::files::Files::writable(
            views,
            self.id_base()?,
            unpacked.lease,
        ))
    }

    /// The first host id of the lab's user namespace, which owns every
    /// file its containers write.
    pub fn id_base(&self) -> Result<u32> {
        Ok(self.runtime.get(&self.lab)?.uid_base)
    }

    /// The sandbox of a running container, for `exec`.
    pub fn running_sandbox(&self, container: &Container) -> Result<String> {
        let record = container.record();
        if record.status != Status::Running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                record.id
            )));
        }
        Ok(record.sandbox_id())
    }

    pub fn runtime(&self) -> &Arc<runtime::Runtime> {
        &self.runtime
    }

    pub fn lab(&self) -> &str {
        &self.lab
    }

    /// Every container's process ends and its record goes (the lab is
    /// being removed).
    pub fn remove_all(&self) {
        let all: Vec<Arc<Container>> = self.lock().values().cloned().collect();
        for c in all {
            let sandbox = c.record().sandbox_id();
            let _ = self.runtime.stop(&sandbox, Duration::ZERO);
            if let Err(e) = self.runtime.remove_kept_layer(&sandbox) {
                tracing::warn!(container = %c.id, error = %e, "cannot remove a container's files");
            }
        }
        self.lock().clear();
    }
}

/// The hostname a container runs with: its own, or its short ID.
fn hostname(record: &Record) -> String {
    if record.config.hostname.is_empty() {
        record.id[..12].to_owned()
    } else {
        record.config.hostname.clone()
    }
}

/// Replaces a file's contents keeping its inode, so a bind mount of it
/// shows the new contents (a rename would leave the old file mounted).
fn write_in_place(path: &std::path::Path, contents: &str) -> Result<()> {
    use std::io::Write;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(Error::state(path))
}

/// The runtime sandbox of the container with ID `id` (64 hex digits).
pub fn sandbox_id_of(id: &str) -> String {
    format!("ctr-{}", &id[..id.len().min(40)])
}

/// A container's own limits inside its lab's (its writable layer's size
/// above all, which its kept files must keep).
fn container_limits() -> runtime::Limits {
    runtime::Limits::default()
}

/// The ends of a container's output the engine reads.
enum Readers {
    Pipes(OwnedFd, OwnedFd),
    Tty(OwnedFd),
}

/// Copies output into the log until every writer is gone (the container
/// and all its processes ended).
async fn relay(container: &Container, readers: Readers) {
    async fn pump(fd: OwnedFd, stream: Stream, output: &Output) {
        let Ok(mut reader) = streams::reader(fd) else {
            return;
        };
        let mut buf = vec![0u8; 32 * 1024];
        // A PTY master reads EIO once the last slave holder is gone.
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            output.push(stream, Bytes::copy_from_slice(&buf[..n]));
        }
    }
    match readers {
        Readers::Pipes(out, err) => {
            tokio::join!(
                pump(out, Stream::Stdout, &container.output),
                pump(err, Stream::Stderr, &container.output)
            );
        }
        Readers::Tty(master) => pump(master, Stream::Stdout, &container.output).await,
    }
}

/// The default bridge's facts are the networks'; named here too because
/// the host sets that bridge up in each node.
pub use crate::networks::{BRIDGE, BRIDGE_PREFIX, GATEWAY};

/// Where named volumes live in the node, as on a Docker host.
pub const VOLUMES: &str = "/var/lib/docker/volumes";

/// One `-v` of a container: a directory of the node mounted at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path in the node (a volume's is under [`VOLUMES`]).
    pub source: String,
    pub target: String,
    pub readonly: bool,
    /// The volume's name, for a named volume.
    pub volume: Option<String>,
}

/// The container's `-v` list: `/node/path:/target[:ro]` or
/// `name:/target[:ro]` (a named volume).
pub fn mounts(host: &HostConfig) -> Result<Vec<Mount>> {
    host.binds
        .iter()
        .flatten()
        .map(|spec| parse_bind(spec))
        .collect()
}

fn parse_bind(spec: &str) -> Result<Mount> {
    let invalid = || Error::InvalidArgument(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [source, target] => (*source, *target, ""),
        [source, target, mode] => (*source, *target, *mode),
        _ => return Err(invalid()),
    };
    let readonly = match mode {
        "" | "rw" | "z" | "Z" => false,
        "ro" => true,
        _ => return Err(invalid()),
    };
    let clean = |p: &str| {
        p.starts_with('/')
            && !p.split('/').any(|c| c == "..")
            && !p.contains('\0')
            && p.len() < 4096
    };
    if !clean(target) || target == "/" {
        return Err(invalid());
    }
    if source.starts_with('/') {
        if !clean(source) {
            return Err(invalid());
        }
        return Ok(Mount {
            source: source.to_owned(),
            target: target.to_owned(),
            readonly,
            volume: None,
        });
    }
    check_volume_name(source)?;
    Ok(Mount {
        source: volume_path(source),
        target: target.to_owned(),
        readonly,
        volume: Some(source.to_owned()),
    })
}

/// A volume name by [`valid_object_name`], with dockerd's message.
pub fn check_volume_name(name: &str) -> Result<()> {
    if valid_object_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "create {}: \"{}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
            name.chars().take(80).collect::<String>(),
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// The node directory holding volume `name`'s data.
pub fn volume_path(name: &str) -> String {
    format!("{VOLUMES}/{name}/_data")
}

/// A container name by [`valid_object_name`], with dockerd's message.
fn check_name(name: &str) -> Result<()> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    if valid_object_name(bare) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            bare.chars().take(80).collect::<String>()
        )))
    }
}

/// `adjective_scientist`, as Docker names containers, unused in the lab.
fn generated_name(table: &BTreeMap<String, Arc<Container>>) -> String {
    const LEFT: &[&str] = &[
        "brave", "calm", "eager", "fervent", "gallant", "happy", "jolly", "keen", "lucid",
        "modest", "nifty", "quirky", "serene", "trusting", "vibrant", "zealous",
    ];
    const RIGHT: &[&str] = &[
        "babbage", "curie", "darwin", "euler", "franklin", "galileo", "hopper", "kepler",
        "lovelace", "noether", "pasteur", "ritchie", "shannon", "turing", "wozniak", "yalow",
    ];
    loop {
        let r = random_id();
        let pick = |s: &str, n: usize| usize::from_str_radix(s, 16).unwrap_or(0) % n;
        let name = format!(
            "/{}_{}",
            LEFT[pick(&r[..4], LEFT.len())],
            RIGHT[pick(&r[4..8], RIGHT.len())]
        );
        let taken = table.values().any(|c| c.record().name == name);
        if !taken {
            return name;
        }
        if table.len() > LEFT.len() * RIGHT.len() / 2 {
            return format!("{name}_{}", &r[8..12]);
        }
    }
}

/// `SIGTERM`, `TERM`, `15` → 15.
pub fn signal_number(name: &str) -> Option<i32> {
    if name.is_empty() {
        return None;
    }
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let bare = name.trim_start_matches("SIG").to_ascii_uppercase();
    Some(match bare.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        _ => return None,
    })
}

/// Docker's `Status` text for `docker ps`: `Up 3 seconds`,
/// `Exited (0) 2 minutes ago`, `Created`.
pub fn status_text(record: &Record, now: SystemTime) -> String {
    let since = |t: &str| {
        humantime::parse_rfc3339_weak(t)
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .map_or_else(|| "Less than a second".to_owned(), human_duration)
    };
    match record.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(&record.started_at)),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            record.exit_code,
            since(&record.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
    }
}

/// Go's `units.HumanDuration`, which `docker ps` prints.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{s} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", s / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", (s + 1800) / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        for good in ["web", "/web", "a1", "my_app.v2-x"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "-x", "../etc", "a b", "x\ny", &"n".repeat(200)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn binds_and_volumes_parse_like_dockers() {
        let host = |b: &[&str]| HostConfig {
            binds: Some(b.iter().map(|s| (*s).to_owned()).collect()),
            ..HostConfig::default()
        };
        let m = mounts(&host(&["/root/src:/src", "data:/data:ro"])).unwrap();
        assert_eq!(m[0].source, "/root/src");
        assert!(!m[0].readonly && m[0].volume.is_none());
        assert_eq!(m[1].source, "/var/lib/docker/volumes/data/_data");
        assert!(m[1].readonly);
        for bad in [
            "/a",
            "/a:/b:rx",
            "/a:relative",
            "/a:/",
            "/a/../b:/c",
            "/a:/b/../c",
            "a/b:/c",
            "x:/c",
            "a:b:c:d",
        ] {
            assert!(mounts(&host(&[bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_number("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("term"), Some(libc::SIGTERM));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("99"), None);
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_number(""), None);
    }

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(Duration::from_secs(3)), "3 seconds");
        assert_eq!(human_duration(Duration::from_secs(61)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600)), "3 hours");
    }
}
