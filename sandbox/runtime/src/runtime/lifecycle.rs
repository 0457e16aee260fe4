//! How sandboxes end and what is left of them: stop, signals, exit
//! statuses, adoption after a restart and removal.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::cgroups;
use crate::error::{Error, Result};
use crate::paths::check_id;
use crate::spec::ExitStatus;
use crate::state::{State, Status};
use crate::userns;

use super::{Runtime, wait_readable};

/// How long killed processes may take to leave their cgroups.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`Runtime::adopt_or_cleanup`] found.
#[derive(Debug, Clone, Default)]
pub struct AdoptReport {
    pub adopted: Vec<String>,
    pub cleaned: Vec<String>,
}

impl Runtime {
    /// SIGTERM to the init (forwarded to its command, or to every process
    /// when idle), SIGKILL to whatever is left after `grace`, then releases
    /// everything: cgroups, state directory, uid range. Works in every
    /// status, including on leftovers of a crashed create.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        check_id(id)?;
        let st = self.load(id)?;
        debug!(id, ?grace, "stopping sandbox");
        if let Some(pidfd) = self.signal_init(&st, libc::SIGTERM) {
            wait_readable(pidfd.as_raw_fd(), grace);
        }
        self.destroy(id, Some(st.uid_base))
    }

    /// Sends `signal` to the sandbox's init, which passes it on to its
    /// command (a container's main process). Running only.
    pub fn signal(&self, id: &str, signal: i32) -> Result<()> {
        check_id(id)?;
        let st = self.load(id)?;
        match self.signal_init(&st, signal) {
            Some(_) => Ok(()),
            None => Err(Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "a signal",
            }),
        }
    }

    /// Signals a live init through a pidfd opened before the liveness
    /// check, so a pid recycled in between never receives it.
    fn signal_init(&self, st: &State, signal: i32) -> Option<OwnedFd> {
        let pidfd = st
            .init_pid
            .and_then(|pid| crate::sys::pidfd_open(pid).ok())?;
        if !self.alive(st) {
            return None;
        }
        // SAFETY: plain syscall on a pidfd we own.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                signal,
                0usize,
                0,
            )
        };
        Some(pidfd)
    }

    /// The descriptors the init of running sandbox `id` holds for its caller
    /// ([`Stdio3::held`](super::Stdio3::held), or its terminal's master),
    /// copied into this process: how a restarted caller finds a container's
    /// streams again.
    pub fn take_back(&self, id: &str) -> Result<Vec<OwnedFd>> {
        let pidfd = self.live_pidfd(id, "taking its streams back")?;
        let st = self.load(id)?;
        // Whoever reaps the init now (its parent is gone, or is another
        // `Runtime` of this process), this one learns how it ended.
        self.watch_foreign_exit(id, pidfd.try_clone().map_err(Error::sys("copy a pidfd"))?);
        (0..st.held as i32)
            .map(|i| {
                // SAFETY: plain syscall on a pidfd we own.
                let fd = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_getfd,
                        pidfd.as_raw_fd(),
                        crate::process::HELD_FD + i,
                        0,
                    )
                };
                if fd < 0 {
                    return Err(Error::sys("take a sandbox's stream back")(
                        std::io::Error::last_os_error(),
                    ));
                }
                // SAFETY: a fresh descriptor the kernel just gave us.
                Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
            })
            .collect()
    }

    /// Records how the init of `id` ends without reaping it (it outlived
    /// the `Runtime` that started it): once its pidfd says it is gone,
    /// from the exit code it wrote beside its state.
    fn watch_foreign_exit(&self, id: &str, pidfd: OwnedFd) {
        let exited = Arc::clone(&self.exited);
        let path = self.layout.sandbox(id).join(crate::process::EXIT_CODE_FILE);
        let id = id.to_owned();
        let spawned = std::thread::Builder::new()
            .name(format!("watch-{id}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut p = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; retried when a signal interrupts it.
                while unsafe { libc::poll(&mut p, 1, -1) } < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                }
                let code = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok());
                let status = ExitStatus { code, signal: None };
                debug!(id = %id, ?status, "an adopted sandbox's init exited");
                if let Ok(mut m) = exited.map.lock() {
                    m.insert(id, status);
                    exited.changed.notify_all();
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot watch an adopted sandbox; its exit code will be lost");
        }
    }

    /// Exit status of an init this process reaped (`None` while running,
    /// for adopted sandboxes, or once stopped).
    pub fn exit_status(&self, id: &str) -> Option<ExitStatus> {
        self.exited.map.lock().ok()?.get(id).copied()
    }

    /// Waits up to `timeout` for the init of `id`, our child, to be reaped,
    /// and returns its status; `None` if it still runs then (or is not ours).
    pub fn wait_exit(&self, id: &str, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let mut map = self.exited.map.lock().ok()?;
        loop {
            if let Some(status) = map.get(id) {
                return Some(*status);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            map = self.exited.changed.wait_timeout(map, left).ok()?.0;
        }
    }

    /// Run once at start: keeps sandboxes whose init still runs, removes
    /// every trace of the others (processes, cgroups, state, uid ranges),
    /// including uid ranges this directory claimed without a state record.
    ///
    /// Cgroups under the parent without a state record here are left
    /// alone: a sandbox's state is saved before its cgroup is created and
    /// removed after it is destroyed, so such a cgroup belongs to another
    /// runtime directory sharing the parent (a second server, or
    /// `layerlab sandbox run` with another data directory).
    pub fn adopt_or_cleanup(&self) -> Result<AdoptReport> {
        let mut report = AdoptReport::default();
        for id in self.sandbox_ids()? {
            match State::load(&self.layout.state(&id)) {
                Ok(st) if self.alive(&st) => report.adopted.push(id),
                Ok(st) => {
                    self.destroy(&id, Some(st.uid_base))?;
                    report.cleaned.push(id);
                }
                Err(_) => {
                    self.destroy(&id, None)?;
                    report.cleaned.push(id);
                }
            }
        }
        tracing::info!(adopted = ?report.adopted, cleaned = ?report.cleaned, "sandboxes found at start-up");
        // Ranges claimed by a create that crashed before its first record.
        for (base, id) in self.claimed_ranges() {
            if !self.layout.sandbox(&id).exists() {
                userns::release(base, &self.claim(&id))?;
            }
        }
        Ok(report)
    }

    /// Kills what is left and removes every host-side trace of `id`, after
    /// that of its siblings (whose cgroups live inside its own), releasing
    /// its uid range (starting at `uid_base`) last.
    pub(super) fn destroy(&self, id: &str, uid_base: Option<u32>) -> Result<()> {
        for sibling in self.siblings_of(id) {
            self.destroy(&sibling, None)?;
        }
        let dirs = match State::load(&self.layout.state(id)) {
            Ok(st) => st.cgroups,
            Err(_) => cgroups::dirs(self.cgroup_version, &self.config.cgroup_parent, id),
        };
        cgroups::destroy(&dirs, KILL_TIMEOUT)?;
        let dir = self.layout.sandbox(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &dir)(e)),
        }
        let image = self.disk_image(id);
        match fs::remove_file(&image) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &image)(e)),
        }
        if let Some(base) = uid_base {
            userns::release(base, &self.claim(id))?;
        }
        if let Ok(mut m) = self.exited.map.lock() {
            m.remove(id);
        }
        Ok(())
    }

    /// Sandboxes created as siblings of `id`.
    fn siblings_of(&self, id: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.layout.sandboxes()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|other| other != id && check_id(other).is_ok())
            .filter(|other| {
                State::load(&self.layout.state(other))
                    .is_ok_and(|st| st.sibling_of.as_deref() == Some(id))
            })
            .collect()
    }
}
