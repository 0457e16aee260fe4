//! Sockets and bridges made inside a running sandbox's network namespace.

use std::os::fd::AsFd;
use std::time::Duration;

use tracing::debug;

use crate::error::{Error, Result};
use crate::paths::check_id;
use crate::state::Status;

use super::Runtime;

impl Runtime {
    /// A TCP connection to `addr` made inside the sandbox's network
    /// namespace: `127.0.0.1` is the sandbox's own loopback, never the
    /// host's. Running only. The caller gets a plain socket and speaks
    /// whatever protocol it likes over it.
    pub fn connect_tcp(
        &self,
        id: &str,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        let pidfd = self.live_pidfd(id, "a connection")?;
        debug!(id, %addr, "connecting inside the sandbox's network");
        crate::net::connect_in(pidfd.as_fd(), addr, timeout).map_err(|source| Error::Connect {
            id: id.to_owned(),
            addr,
            source,
        })
    }

    /// The TCP ports something listens on inside the sandbox's network
    /// namespace on every address or on loopback (what
    /// [`Runtime::connect_tcp`] to `127.0.0.1` reaches), ascending. Read
    /// from the kernel's tables of its init (`/proc/<pid>/net/tcp{,6}`),
    /// so nothing runs in the sandbox and its idle clock does not move.
    /// Running only.
    pub fn listening_tcp_ports(&self, id: &str) -> Result<Vec<u16>> {
        check_id(id)?;
        let st = self.load(id)?;
        let pid = st
            .init_pid
            .filter(|_| self.alive(&st))
            .ok_or_else(|| Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "a list of its ports",
            })?;
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            let path = format!("/proc/{pid}/net/{table}");
            match std::fs::read_to_string(&path) {
                Ok(text) => ports.extend(crate::net::listening_ports(&text)),
                // A kernel without IPv6 has no tcp6 table.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("reading the port table", path)(e)),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        Ok(ports)
    }

    /// A TCP listener bound to `addr` inside the sandbox's network
    /// namespace: a port published on a node. Running only.
    pub fn listen_tcp(
        &self,
        id: &str,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::TcpListener> {
        let pidfd = self.live_pidfd(id, "a listener")?;
        debug!(id, %addr, "listening inside the sandbox's network");
        crate::net::listen_in(pidfd.as_fd(), addr).map_err(|source| Error::Listen {
            id: id.to_owned(),
            addr,
            source,
        })
    }

    /// A UDP socket bound to `addr` inside the sandbox's network namespace.
    /// Running only.
    pub fn bind_udp(&self, id: &str, addr: std::net::SocketAddr) -> Result<std::net::UdpSocket> {
        let pidfd = self.live_pidfd(id, "a UDP socket")?;
        crate::net::bind_udp_in(pidfd.as_fd(), addr).map_err(|source| Error::Listen {
            id: id.to_owned(),
            addr,
            source,
        })
    }

    /// Adds `bridge` to the sandbox's network (a user-defined network of
    /// its siblings). Running only.
    pub fn add_bridge(&self, id: &str, bridge: &crate::spec::Bridge) -> Result<()> {
        let pidfd = self.live_pidfd(id, "a new bridge")?;
        crate::net::bridge_in(pidfd.as_fd(), Some(bridge), &bridge.name)
    }

    /// Removes bridge `name` from the sandbox's network. Running only.
    pub fn remove_bridge(&self, id: &str, name: &str) -> Result<()> {
        let pidfd = self.live_pidfd(id, "a bridge's removal")?;
        crate::net::bridge_in(pidfd.as_fd(), None, name)
    }
}
