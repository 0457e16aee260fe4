//! [`EmbeddedHost`]: sandboxes as sandboxes of the in-process runtime, on
//! layers unpacked by the content store.
//!
//! Each sandbox has a record, `<runtime_state_dir>/host-sessions/<id>.json`
//! (image, digest, kept lease id, the environment its commands get). It is
//! written before the sandbox is created and removed after the sandbox is
//! gone and the lease released, so after a crash anywhere in between a new
//! host finds either a live sandbox to adopt or a lease to release.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runtime::{BindMount, ExecSpec, Runtime, RuntimeConfig, Status, UidPool};
use serde::{Deserialize, Serialize};
use store::{Reference, Store};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::http::{self, HttpError, HttpRequest, HttpResponse};
use crate::terminal::{Terminal, TerminalSize};
use crate::{
    ContainerFacts, Expired, Expiry, ImageFacts, SandboxHost, SandboxInfo, SandboxSpec,
    SandboxState, Usage,
};
use crate::{ExecOutput, ExitStatus, pty};

/// Where an [`EmbeddedHost`] keeps its state, and how it stops nodes.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Root of the content store (`<data dir>/store`).
    pub store_root: PathBuf,
    /// The runtime's state directory; put it on a tmpfs (e.g. under /run)
    /// so records survive a server restart but not a reboot.
    pub runtime_state_dir: PathBuf,
    /// An executable that calls `runtime::helper::main_if_requested()`
    /// first thing (the server passes `std::env::current_exe()`).
    pub helper_exe: PathBuf,
    /// Host uid ranges the nodes' user namespaces map to.
    pub uid_pool: UidPool,
    /// Name of the cgroup directory that holds every node.
    pub cgroup_parent: String,
    /// Where nodes' writable layers live while they run: a directory on
    /// disk, never a tmpfs (`<runtime_state_dir>/disk` by default).
    pub disk_dir: PathBuf,
    /// How long a node may take to end after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
    /// The Debian package repository labs install from
    /// (`images::packages::Mirror::repository`); `None` serves none.
    pub packages_dir: Option<PathBuf>,
}

impl EmbeddedConfig {
    pub fn new(
        store_root: impl Into<PathBuf>,
        runtime_state_dir: impl Into<PathBuf>,
        helper_exe: impl Into<PathBuf>,
    ) -> Self {
        let rt = RuntimeConfig::new(runtime_state_dir, helper_exe);
        Self {
            store_root: store_root.into(),
            runtime_state_dir: rt.state_dir,
            helper_exe: rt.helper_exe,
            uid_pool: rt.uid_pool,
            cgroup_parent: rt.cgroup_parent,
            disk_dir: rt.disk_dir,
            stop_grace: Duration::from_secs(5),
            packages_dir: None,
        }
    }

    fn runtime(&self) -> RuntimeConfig {
        let mut c = RuntimeConfig::new(&self.runtime_state_dir, &self.helper_exe);
        c.uid_pool = self.uid_pool;
        c.cgroup_parent = self.cgroup_parent.clone();
        c.disk_dir = self.disk_dir.clone();
        c
    }
}

/// What a sandbox needs to be found again and run commands after a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    image: String,
    image_digest: String,
    lease: String,
    hostname: String,
    env: BTreeMap<String, String>,
    cwd: String,
    created_unix_ms: u64,
    /// What the lab's engine reports as its machine (`docker info`).
    #[serde(default)]
    memory_bytes: u64,
    #[serde(default)]
    cpus: Option<f64>,
}

impl Record {
    fn engine_resources(&self) -> engine::LabResources {
        let host_cpus = std::thread::available_parallelism().map_or(1, usize::from);
        engine::LabResources {
            memory_bytes: self.memory_bytes,
            cpus: self
                .cpus
                .map_or(host_cpus, |c| (c.ceil() as usize).clamp(1, host_cpus)),
        }
    }
}

/// The in-process [`SandboxHost`].
pub struct EmbeddedHost {
    config: EmbeddedConfig,
    rt: Arc<Runtime>,
    store: Store,
    /// Each lab's Docker engine, served on a socket its node sees.
    engines: engine::Engines,
    records: PathBuf,
    /// Ids whose `create_sandbox` is under way in this process.
    starting: Mutex<HashSet<String>>,
}

impl EmbeddedHost {
    /// Opens the store and the runtime, adopts the sandboxes still running
    /// (cleaning up the others) and re-adopts the leases of live sandboxes,
    /// releasing those of sandboxes that are gone.
    pub fn new(config: EmbeddedConfig) -> Result<Self> {
        let store = Store::open(&config.store_root)?;
        let rt = Arc::new(Runtime::new(config.runtime())?);
        rt.adopt_or_cleanup()?;
        let records = config.runtime_state_dir.join("host-sessions");
        fs::create_dir_all(&records).map_err(|e| record_err(&records, e))?;
        let mut engines = engine::Engines::new(
            store.clone(),
            images::hub(),
            rt.clone(),
            &config.runtime_state_dir.join("engines"),
        )?;
        if let Some(dir) = &config.packages_dir {
            engines = engines.with_packages(dir.clone());
        }
        let host = Self {
            config,
            rt,
            store,
            engines,
            records,
            starting: Mutex::default(),
        };
        host.adopt()?;
        Ok(host)
    }

    fn adopt(&self) -> Result<()> {
        let (mut adopted, mut released) = (Vec::new(), Vec::new());
        for rec in self.load_all()? {
            let alive = self
                .rt
                .get(&rec.id)
                .is_ok_and(|s| s.status == Status::Running);
            if alive {
                if let Err(e) = self.engines.start(&rec.id, rec.engine_resources()) {
                    warn!(id = rec.id, error = %e, "cannot serve the docker engine of a live lab");
                }
                match self.store.adopt_lease(&rec.lease) {
                    Ok(lease) => {
                        lease.keep();
                    }
                    Err(e) => {
                        warn!(id = rec.id, lease = rec.lease, error = %e, "live sandbox lost its image lease; its layers may be collected")
                    }
                }
                adopted.push(rec.id);
            } else {
                // Exited sandboxes were already removed by adopt_or_cleanup.
                self.forget(&rec)?;
                released.push(rec.id);
            }
        }
        info!(?adopted, ?released, "sandboxes found at start-up");
        Ok(())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.records.join(format!("{id}.json"))
    }

    fn load(&self, id: &str) -> Result<Record> {
        runtime::paths::check_id(id).map_err(|_| Error::InvalidId(id.to_owned()))?;
        let path = self.record_path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_owned()));
            }
            Err(e) => return Err(record_err(&path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| record_err(&path, e))
    }

    fn load_all(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.records)
            .map_err(|e| record_err(&self.records, e))?
            .flatten()
        {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            match self.load(id) {
                Ok(r) => out.push(r),
                // A record half-written by a crash: nothing to adopt.
                Err(e) => warn!(id, error = %e, "ignoring unreadable sandbox record"),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Creates the record; fails if one exists, which is what makes two
    /// concurrent creations of one id safe.
    fn save_new(&self, rec: &Record) -> Result<()> {
        let path = self.record_path(&rec.id);
        let mut f = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(rec.id.clone()));
            }
            Err(e) => return Err(record_err(&path, e)),
        };
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| record_err(&path, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| record_err(&path, e))
    }

    /// Releases the lease and removes the record (the sandbox is gone).
    fn forget(&self, rec: &Record) -> Result<()> {
        match self.store.release_lease(&rec.lease) {
            Ok(()) => {}
            Err(e) if e.kind() == store::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let path = self.record_path(&rec.id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(record_err(&path, e)),
        }
    }

    fn is_starting(&self, id: &str) -> bool {
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn info(&self, rec: Record) -> SandboxInfo {
        let state = match self.rt.get(&rec.id) {
            Ok(s) if s.status == Status::Running => SandboxState::Running,
            _ if self.is_starting(&rec.id) => SandboxState::Starting,
            _ => SandboxState::Exited,
        };
        SandboxInfo {
            last_activity: self.rt.last_activity(&rec.id),
            state,
            created: UNIX_EPOCH + Duration::from_millis(rec.created_unix_ms),
            id: rec.id,
            image: rec.image,
            image_digest: rec.image_digest,
            hostname: rec.hostname,
        }
    }

    /// The record of a sandbox that may run commands now.
    fn running(&self, id: &str, what: &'static str) -> Result<Record> {
        let rec = self.load(id)?;
        if self.is_starting(id) {
            return Err(Error::WrongState {
                id: id.to_owned(),
                state: "starting",
                what,
                advice: "wait until its creation has finished",
            });
        }
        Ok(rec)
    }

    fn exec_spec(rec: &Record, argv: &[String]) -> ExecSpec {
        let mut spec = ExecSpec::new(argv.iter().cloned());
        spec.env = rec.env.clone();
        spec.cwd = rec.cwd.clone();
        spec
    }

    fn create(&self, spec: &SandboxSpec) -> Result<SandboxInfo> {
        let image = Reference::parse(&spec.image)
            .map_err(|e| Error::InvalidSpec(format!("image name {:?}: {e}", spec.image)))?;
        let digest = match self.store.resolve(&images::hub(), &image) {
            Ok(d) => d,
            Err(e) if e.kind() == store::ErrorKind::NotFound => {
                return Err(Error::UnknownImage {
                    image: spec.image.clone(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let config = self.store.image(&digest)?.config()?;
        let cfg = config.config().as_ref();
        let mut env: BTreeMap<String, String> = cfg
            .and_then(|c| c.env().as_ref())
            .into_iter()
            .flatten()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.entry("HOME".into()).or_insert_with(|| "/root".into());
        env.entry("TERM".into())
            .or_insert_with(|| "xterm-256color".into());
        let cwd = cfg
            .and_then(|c| c.working_dir().clone())
            .filter(|d| d.starts_with('/'))
            .unwrap_or_else(|| "/root".into());

        let unpacked = self.store.unpack(&digest)?;
        let lowerdirs = unpacked.lowerdirs;
        let rec = Record {
            id: spec.id.clone(),
            image: spec.image.clone(),
            image_digest: digest.to_string(),
            lease: unpacked.lease.keep(),
            hostname: spec.hostname.clone(),
            env,
            cwd,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            memory_bytes: spec.limits.memory_bytes,
            cpus: spec.limits.cpus,
        };
        if let Err(e) = self.save_new(&rec) {
            let _ = self.store.release_lease(&rec.lease);
            return Err(e);
        }
        if let Err(e) = self.start(spec, &rec, lowerdirs) {
            // A sandbox of that id that is not ours must survive our failure.
            let cleaned = match e {
                Error::AlreadyExists(_) => self.forget(&rec),
                _ => self.teardown(&rec),
            };
            if let Err(cleanup) = cleaned {
                warn!(id = rec.id, error = %cleanup, "cleaning up a failed sandbox creation failed");
            }
            return Err(e);
        }
        Ok(self.info(rec))
    }

    fn start(&self, spec: &SandboxSpec, rec: &Record, lowerdirs: Vec<PathBuf>) -> Result<()> {
        let mut sb = runtime::SandboxSpec::new(&spec.id, lowerdirs);
        sb.hostname = spec.hostname.clone();
        sb.limits.memory_bytes = spec.limits.memory_bytes;
        sb.limits.pids = spec.limits.pids;
        sb.limits.cpus = spec.limits.cpus;
        sb.env = rec.env.clone();
        sb.cwd = rec.cwd.clone();
        // The lab's containers plug into this bridge, as into docker0 on a
        // Docker host.
        sb.network.bridge = Some(runtime::Bridge {
            name: engine::containers::BRIDGE.to_owned(),
            address: engine::containers::GATEWAY.octets(),
            prefix_len: engine::containers::BRIDGE_PREFIX,
        });
        // apt in the node uses the lab's package repository too.
        sb.hosts
            .push(engine::packages::hosts_line(engine::containers::GATEWAY));
        // The directory, not the socket, so a restarted engine's fresh
        // socket is seen; read-only, so the node cannot unlink it.
        sb.mounts.push(BindMount {
            source: self.engines.prepare(&rec.id)?,
            target: engine::NODE_SOCKET_DIR.to_owned(),
            readonly: true,
            in_node: false,
        });
        // Debian's /var/run is a link to /run, so this is also
        // /var/run/docker.sock, where the docker CLI looks.
        sb.links.push((
            "/run/docker.sock".to_owned(),
            format!(
                "{}/{}",
                engine::NODE_SOCKET_DIR.trim_start_matches("/run/"),
                engine::SOCKET_NAME
            ),
        ));
        sb.deadline_unix_ms = spec
            .max_lifetime
            .map(|l| rec.created_unix_ms.saturating_add(l.as_millis() as u64));
        self.rt.create(sb)?;
        self.engines.start(&rec.id, rec.engine_resources())?;
        let Some(script) = &spec.setup else {
            return Ok(());
        };
        let argv = ["bash".to_owned(), "-c".to_owned(), script.clone()];
        let out = self.run(rec, &argv, spec.setup_timeout)?;
        if out.status.code == Some(0) {
            debug!(id = rec.id, "setup script done");
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        let tail: String = {
            let chars: Vec<char> = output.trim_end().chars().collect();
            chars[chars.len().saturating_sub(500)..].iter().collect()
        };
        Err(Error::SetupFailed {
            id: rec.id.clone(),
            status: match (out.status.code, out.status.signal) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                (None, None) => "unknown status".into(),
            },
            output: tail,
        })
    }

    fn run(&self, rec: &Record, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
        let mut spec = Self::exec_spec(rec, argv);
        spec.timeout = Some(timeout);
        let out = self.rt.exec(&rec.id, &spec).map_err(|e| match e {
            runtime::Error::Timeout(_) => Error::Timeout {
                id: rec.id.clone(),
                command: argv.join(" "),
                timeout,
            },
            e => e.into(),
        })?;
        Ok(ExecOutput {
            status: ExitStatus {
                code: out.status.code,
                signal: out.status.signal,
            },
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// A host name as the node resolves it (its /etc/hosts, its DNS), by
    /// asking the node's own resolver.
    fn resolve(&self, rec: &Record, request: &HttpRequest, deadline: Instant) -> Result<IpAddr> {
        let unresolved = |reason: String| HttpError::Resolve {
            host: request.host.clone(),
            reason,
        };
        let host = &request.host;
        let plain = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !host.starts_with('-');
        if !plain {
            return Err(unresolved("not a host name".into()).into());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let argv = ["getent".to_owned(), "ahostsv4".to_owned(), host.clone()];
        let out = self.run(rec, &argv, left.max(Duration::from_millis(100)))?;
        http::parse_getent(&String::from_utf8_lossy(&out.stdout))
            .ok_or_else(|| unresolved("no such host".into()).into())
    }

    /// Stops the sandbox (if any), then releases the lease and the record.
    fn teardown(&self, rec: &Record) -> Result<()> {
        match self.rt.stop(&rec.id, self.config.stop_grace) {
            Ok(()) | Err(runtime::Error::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.engines.remove(&rec.id)?;
        self.forget(rec)
    }
}

impl SandboxHost for EmbeddedHost {
    fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxInfo> {
        crate::check_id(&spec.id)?;
        {
            // A panic elsewhere cannot leave this set inconsistent.
            let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
            if !starting.insert(spec.id.clone()) {
                return Err(Error::AlreadyExists(spec.id));
            }
        }
        let result = self.create(&spec);
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&spec.id);
        result
    }

    fn destroy_sandbox(&self, id: &str) -> Result<()> {
        let rec = self.running(id, "destroy")?;
        debug!(id, "destroying sandbox");
        self.teardown(&rec)
    }

    fn open_terminal(&self, id: &str, size: TerminalSize) -> Result<Terminal> {
        let rec = self.running(id, "a terminal")?;
        let spec = Self::exec_spec(&rec, &["bash".into(), "-l".into()]);
        pty::spawn(&self.rt, id, &spec, size)
    }

    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
        let rec = self.running(id, "exec")?;
        self.run(&rec, argv, timeout)
    }

    fn listening_ports(&self, id: &str) -> Result<Vec<u16>> {
        self.running(id, "a list of its ports")?;
        let mut ports = self.rt.listening_tcp_ports(id)?;
        // The lab's package repository is the engine's, not the student's.
        ports.retain(|p| *p != engine::packages::PORT);
        Ok(ports)
    }

    fn connect(&self, id: &str, port: u16, timeout: Duration) -> Result<std::net::TcpStream> {
        self.running(id, "a connection")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        self.rt.connect_tcp(id, addr, timeout).map_err(|e| match e {
            runtime::Error::Connect { source, .. } => HttpError::Connect { addr, source }.into(),
            e => e.into(),
        })
    }

    fn engine_image(&self, id: &str, name: &str) -> Result<Option<ImageFacts>> {
        self.running(id, "reading its Docker images")?;
        Ok(self.engines.image_facts(id, name)?)
    }

    fn engine_containers(&self, id: &str) -> Result<Vec<ContainerFacts>> {
        self.running(id, "reading its Docker containers")?;
        Ok(self.engines.container_facts(id)?)
    }

    fn http(&self, id: &str, request: &HttpRequest) -> Result<HttpResponse> {
        let rec = self.running(id, "an HTTP request")?;
        http::validate(request)?;
        let deadline = Instant::now() + request.timeout;
        let ip = match http::literal_address(&request.host) {
            Some(ip) => ip,
            None => self.resolve(&rec, request, deadline)?,
        };
        let addr = SocketAddr::new(ip, request.port);
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = match self.rt.connect_tcp(id, addr, left) {
            Ok(s) => s,
            Err(runtime::Error::Connect { source, .. })
                if source.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(HttpError::Timeout {
                    host: request.host.clone(),
                    port: request.port,
                    timeout: request.timeout,
                }
                .into());
            }
            Err(runtime::Error::Connect { source, .. }) => {
                return Err(HttpError::Connect { addr, source }.into());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(http::exchange(stream, request, deadline)?)
    }

    fn touch(&self, id: &str) -> Result<()> {
        self.running(id, "touch")?;
        let alive = self.rt.get(id).is_ok_and(|s| s.status == Status::Running);
        if !alive {
            return Err(Error::WrongState {
                id: id.to_owned(),
                state: "exited",
                what: "touch",
                advice: "destroy it and create a new one",
            });
        }
        self.rt.touch(id).map_err(Error::from)
    }

    fn expire(&self, policy: &Expiry, now: SystemTime) -> Result<Vec<Expired>> {
        let mut expired = Vec::new();
        for info in self.sandboxes()? {
            if self.is_starting(&info.id) {
                continue;
            }
            let Some(reason) = info.expiry_reason(policy, now) else {
                continue;
            };
            match self.destroy_sandbox(&info.id) {
                Ok(()) => {
                    info!(id = info.id, ?reason, "sandbox expired and destroyed");
                    expired.push(Expired {
                        id: info.id,
                        reason,
                    });
                }
                // Destroyed by someone else meanwhile: not ours to report.
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    warn!(id = info.id, ?reason, error = %e, "cannot destroy an expired sandbox; the next sweep retries")
                }
            }
        }
        Ok(expired)
    }

    fn sandbox(&self, id: &str) -> Result<SandboxInfo> {
        Ok(self.info(self.load(id)?))
    }

    fn sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        Ok(self.load_all()?.into_iter().map(|r| self.info(r)).collect())
    }

    fn usage(&self, id: &str) -> Result<Usage> {
        self.running(id, "its usage")?;
        let stats = self.rt.stats(id)?;
        Ok(Usage {
            memory_bytes: stats.memory_bytes,
            pids: stats.pids,
        })
    }
}

fn record_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Record {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
