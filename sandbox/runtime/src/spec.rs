//! What callers ask for: a sandbox (`SandboxSpec`) and a command inside it
//! (`ExecSpec`). Everything here is validated before any helper runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::check_id;

/// The `PATH` a sandbox process gets unless the caller sets one, as Docker does.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Names the state directory and the cgroups: `[a-z0-9_-]{1,64}`.
    pub id: String,
    pub hostname: String,
    /// Image layers, topmost first. They are mounted read-only and idmapped,
    /// never modified, and may be shared by any number of sandboxes.
    pub lowerdirs: Vec<PathBuf>,
    pub mounts: Vec<BindMount>,
    pub limits: Limits,
    pub network: Network,
    /// Environment of the init command; `PATH` and `HOSTNAME` are added when absent.
    pub env: BTreeMap<String, String>,
    /// The command our init starts and whose exit ends the sandbox. `None`
    /// keeps the sandbox idle (a node waiting for exec'd shells) until stopped.
    pub init: Option<Vec<String>>,
    /// Working directory of the init command inside the sandbox.
    pub cwd: String,
    /// Extra lines for `/etc/hosts` after the loopback entries.
    pub hosts: Vec<(String, String)>,
    /// Symbolic links made after the bind mounts: (path, what it points
    /// to), e.g. `/run/docker.sock` → `layerlab/docker.sock`. An entry of
    /// the image at that path is replaced.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// A running sandbox whose user namespace, uid range and cgroups this
    /// one joins: a container beside its node, inside the lab's boundary.
    /// It gets its own mount, pid, uts, ipc, net and cgroup namespaces;
    /// its cgroups are children of the node's, so the node's limits bound
    /// both together.
    #[serde(default)]
    pub sibling_of: Option<String>,
    /// When the sandbox must end (milliseconds since the Unix epoch),
    /// whoever owns it and whether or not a server runs: its init stops
    /// everything at that moment (SIGTERM, SIGKILL 5 s later) and exits.
    #[serde(default)]
    pub deadline_unix_ms: Option<u64>,
    /// Keep the writable layer after the sandbox ends, and take it up again
    /// when a sandbox of the same id starts: a container's files survive
    /// `docker stop` and `docker start`, and can be read in between
    /// ([`crate::Runtime::open_layer`]). Gone only with
    /// [`crate::Runtime::remove_kept_layer`].
    #[serde(default)]
    pub keep_writable_layer: bool,
    /// Who the init command runs as (ids inside the sandbox); root when
    /// `None`. A non-root user has no capabilities, as on Docker.
    #[serde(default)]
    pub user: Option<User>,
}

/// A user inside a sandbox: ids below 65536 (the mapped range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default)]
    pub groups: Vec<u32>,
}

/// The `/etc/hosts` of a sandbox named `hostname`: loopback names, then
/// `extra` (address, name) lines in order.
pub fn hosts_file(hostname: &str, extra: &[(String, String)]) -> String {
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    for (ip, name) in extra {
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    hosts
}

impl SandboxSpec {
    /// A node-like sandbox: hostname `node1`, default limits, no init command.
    pub fn new(id: impl Into<String>, lowerdirs: Vec<PathBuf>) -> Self {
        Self {
            id: id.into(),
            hostname: "node1".to_owned(),
            lowerdirs,
            mounts: Vec::new(),
            limits: Limits::default(),
            network: Network::default(),
            env: BTreeMap::new(),
            init: None,
            cwd: "/".to_owned(),
            hosts: Vec::new(),
            links: Vec::new(),
            sibling_of: None,
            deadline_unix_ms: None,
            keep_writable_layer: false,
            user: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(u) = &self.user
            && (u.uid > 65535 || u.gid > 65535 || u.groups.iter().any(|g| *g > 65535))
        {
            return Err(Error::InvalidSpec(
                "user and group ids must be below 65536 (the mapped range)".into(),
            ));
        }
        check_id(&self.id)?;
        if let Some(node) = &self.sibling_of {
            check_id(node)?;
        }
        let bad = |m: String| Err(Error::InvalidSpec(m));
        let host_ok = !self.hostname.is_empty()
            && self.hostname.len() <= 63
            && self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_ok {
            return bad(format!(
                "hostname {:?} is not a valid host name",
                self.hostname
            ));
        }
        if self.lowerdirs.is_empty() {
            return bad("at least one lower layer is needed".into());
        }
        if self.lowerdirs.len() > 128 {
            return bad("more than 128 lower layers".into());
        }
        for d in &self.lowerdirs {
            if !d.is_absolute()
                || d.to_str()
                    .is_none_or(|s| s.contains(',') || s.contains(':'))
            {
                return bad(format!(
                    "lower layer {} must be an absolute path without ',' or ':'",
                    d.display()
                ));
            }
        }
        for m in &self.mounts {
            m.validate()?;
            if m.in_node && self.sibling_of.is_none() {
                return bad("a mount from the node needs a node: set sibling_of".into());
            }
        }
        if let Some(argv) = &self.init {
            check_argv(argv)?;
        }
        check_inside_path("cwd", &self.cwd)?;
        check_env(&self.env)?;
        for (ip, name) in &self.hosts {
            if ip.parse::<std::net::IpAddr>().is_err()
                || name.is_empty()
                || name.contains(char::is_whitespace)
            {
                return bad(format!(
                    "hosts entry {ip:?} {name:?} is not an address and a name"
                ));
            }
        }
        for (path, to) in &self.links {
            check_inside_path("link", path)?;
            if to.is_empty() || to.contains('\0') {
                return bad(format!("link {path:?} must point somewhere"));
            }
        }
        if (self.network.veth.is_some() || self.network.share_node) && self.sibling_of.is_none() {
            return bad("a veth or a shared network needs a node: set sibling_of".into());
        }
        if self.network.veth.is_some() && self.network.share_node {
            return bad("a sandbox sharing its node's network has no veth of its own".into());
        }
        self.limits.validate()?;
        self.network.validate()
    }
}

/// A path bind-mounted into the sandbox: a host path (the engine's socket
/// directory), or with `in_node` a path inside the node this sandbox is a
/// sibling of (a container's `-v`), resolved with the node's root as `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the sandbox; created when missing.
    pub target: String,
    pub readonly: bool,
    #[serde(default)]
    pub in_node: bool,
}

impl BindMount {
    fn validate(&self) -> Result<()> {
        if !self.source.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "bind mount source {} must be absolute",
                self.source.display()
            )));
        }
        check_inside_path("bind mount target", &self.target)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: u64,
    /// Memory plus swap; `None` means equal to `memory_bytes` (no swap).
    pub memory_swap_bytes: Option<u64>,
    pub pids: u64,
    /// Relative CPU weight, 1..=10000 (cgroup v2 scale; 100 is the default share).
    pub cpu_weight: u64,
    /// Hard CPU cap in CPUs (e.g. 1.5); `None` leaves it uncapped.
    pub cpus: Option<f64>,
    /// Size of the writable layer, which is all a sandbox can fill: an ext4
    /// filesystem on disk, so filling it gives ENOSPC and costs no memory
    /// limit (memory and disk are two separate limits).
    pub disk_bytes: u64,
    /// Inodes of the writable layer (rounded up by mke2fs to whole inode
    /// table blocks).
    pub disk_inodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            memory_swap_bytes: None,
            pids: 512,
            cpu_weight: 100,
            cpus: None,
            disk_bytes: 1 << 30,
            disk_inodes: 65536,
        }
    }
}

impl Limits {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidSpec(m.to_owned()));
        if self.memory_bytes < 4 << 20 {
            return bad("memory limit below 4 MiB");
        }
        if self
            .memory_swap_bytes
            .is_some_and(|s| s < self.memory_bytes)
        {
            return bad("memory+swap limit below the memory limit");
        }
        if self.pids < 2 {
            return bad("pids limit below 2");
        }
        if !(1..=10000).contains(&self.cpu_weight) {
            return bad("cpu weight outside 1..=10000");
        }
        if self
            .cpus
            .is_some_and(|c| !(c.is_finite() && c > 0.0 && c <= 1024.0))
        {
            return bad("cpus must be a positive number of CPUs");
        }
        if self.disk_bytes < 1 << 20 || self.disk_inodes < 64 {
            return bad("disk limit below 1 MiB or 64 inodes");
        }
        Ok(())
    }
}

/// The sandbox's network namespace: always loopback; optionally a bridge
/// that sibling containers attach to, or (for a sibling) a veth into its
/// node's bridge. Nothing routes out of the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub bridge: Option<Bridge>,
    /// Only with [`SandboxSpec::sibling_of`].
    #[serde(default)]
    pub veth: Option<Veth>,
    /// Only with [`SandboxSpec::sibling_of`]: use the node's network
    /// namespace, as `docker run --network host` uses the host's.
    #[serde(default)]
    pub share_node: bool,
}

/// A sibling's link to its node's bridge: `eth0` with this address, a
/// default route through `gateway`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Veth {
    /// The bridge in the node's network namespace.
    pub bridge: String,
    pub address: [u8; 4],
    pub prefix_len: u8,
    pub gateway: [u8; 4],
}

impl Default for Network {
    fn default() -> Self {
        Self {
            bridge: Some(Bridge {
                name: "br0".to_owned(),
                address: [10, 88, 0, 1],
                prefix_len: 16,
            }),
            veth: None,
            share_node: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bridge {
    pub name: String,
    pub address: [u8; 4],
    pub prefix_len: u8,
}

impl Network {
    fn validate(&self) -> Result<()> {
        if let Some(v) = &self.veth
            && (!valid_ifname(&v.bridge) || !(1..=30).contains(&v.prefix_len))
        {
            return Err(Error::InvalidSpec(format!(
                "veth into bridge {:?}/{} is not valid",
                v.bridge, v.prefix_len
            )));
        }
        if let Some(b) = &self.bridge {
            let ok = valid_ifname(&b.name) && (1..=30).contains(&b.prefix_len);
            if !ok {
                return Err(Error::InvalidSpec(format!(
                    "bridge {:?}/{} is not valid",
                    b.name, b.prefix_len
                )));
            }
        }
        Ok(())
    }
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        && name != "lo"
}

/// A command to run inside a running sandbox.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Kill the command (and its helper) after this long; pipes mode only.
    pub timeout: Option<Duration>,
}

impl ExecSpec {
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            cwd: "/".to_owned(),
            uid: 0,
            gid: 0,
            timeout: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        check_argv(&self.argv)?;
        check_env(&self.env)?;
        check_inside_path("cwd", &self.cwd)?;
        if self.uid > 65535 || self.gid > 65535 {
            return Err(Error::InvalidSpec(
                "uid and gid must be below 65536 (the mapped range)".into(),
            ));
        }
        Ok(())
    }
}

/// How a sandboxed command ended: `code` when it exited, `signal` when a
/// signal killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The shell convention: the code, or 128 + signal number.
    pub fn shell_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 255,
        }
    }
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: s.code(),
            signal: s.signal(),
        }
    }
}

/// Captured result of [`crate::Runtime::exec`]; each stream is cut at
/// [`crate::MAX_CAPTURE`] bytes.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

fn check_argv(argv: &[String]) -> Result<()> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(Error::InvalidSpec("command is empty".into()));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(Error::InvalidSpec("command contains a NUL byte".into()));
    }
    Ok(())
}

fn check_env(env: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(Error::InvalidSpec(format!(
                "environment variable {k:?} is not valid"
            )));
        }
    }
    Ok(())
}

fn check_inside_path(what: &str, p: &str) -> Result<()> {
    if !p.starts_with('/') || p.contains('\0') || p.split('/').any(|c| c == "..") {
        return Err(Error::InvalidSpec(format!(
            "{what} {p:?} must be an absolute path without '..'"
        )));
    }
    Ok(())
}
