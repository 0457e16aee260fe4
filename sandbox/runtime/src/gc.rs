//! `layerlab sandbox gc`: sandboxes that nothing will ever stop.
//!
//! Sandboxes outlive their owner on purpose (a restarted server adopts
//! them), so one whose state directory is never served again would run
//! until its deadline, or for ever without one. The host-wide uid range
//! claims (module `userns`) name every state directory that still has
//! sandboxes; for each one, gc finds:
//! - no runtime holding the directory's lock (no server, no `sandbox run`):
//!   every sandbox there is an orphan;
//! - a served directory: only the sandboxes past their deadline;
//! - a state directory that is gone: what still runs in its uid ranges is
//!   killed and the claims released.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::paths::Layout;
use crate::process::HelperConfig;
use crate::runtime::{Runtime, RuntimeConfig, open_lock};
use crate::state::now_unix_ms;
use crate::userns::{self, Claim};

/// Why [`gc`] counts a sandbox as orphaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanReason {
    /// No runtime (server, `sandbox run`) has its state directory open.
    NoServer,
    /// Its deadline has passed.
    PastDeadline,
    /// Its state directory no longer exists.
    StateDirGone,
}

impl fmt::Display for OrphanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrphanReason::NoServer => "no server runs on its state directory",
            OrphanReason::PastDeadline => "past its deadline",
            OrphanReason::StateDirGone => "its state directory is gone",
        })
    }
}

/// One sandbox [`gc`] found (and removed, unless asked not to).
#[derive(Debug, Clone)]
pub struct Orphan {
    pub state_dir: PathBuf,
    pub id: String,
    pub reason: OrphanReason,
}

/// Finds the orphaned sandboxes of every state directory with a uid range
/// claim on this host (or of the directories in `only`), and removes them
/// unless `dry_run`. `helper_exe` is what [`RuntimeConfig::helper_exe`]
/// would be.
pub fn gc(helper_exe: &Path, only: Option<&[PathBuf]>, dry_run: bool) -> Result<Vec<Orphan>> {
    let claims = userns::claims();
    let dirs: BTreeSet<PathBuf> = match only {
        Some(dirs) => dirs
            .iter()
            .map(|d| fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
            .collect(),
        None => claims.iter().map(|(_, c)| c.state_dir.clone()).collect(),
    };
    let mut found = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            for (base, claim) in claims.iter().filter(|(_, c)| c.state_dir == dir) {
                found.push(orphan(claim, OrphanReason::StateDirGone));
                if !dry_run {
                    kill_range(*base, claim)?;
                }
            }
            continue;
        }
        let lock = open_lock(&Layout::new(&dir))?;
        // SAFETY: plain flock on a descriptor we own.
        let unserved = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        let rt = Runtime::open(
            RuntimeConfig::new(&dir, helper_exe),
            unserved.then_some(lock),
        )?;
        let now = now_unix_ms();
        for info in rt.list()? {
            let reason = if unserved {
                OrphanReason::NoServer
            } else if deadline(rt.layout(), &info.id).is_some_and(|d| d <= now) {
                OrphanReason::PastDeadline
            } else {
                continue;
            };
            found.push(Orphan {
                state_dir: dir.clone(),
                id: info.id.clone(),
                reason,
            });
            if !dry_run {
                rt.stop(&info.id, Duration::from_secs(1))?;
            }
        }
        if unserved && !dry_run {
            // Claims of creates that crashed before their first record.
            rt.adopt_or_cleanup()?;
        }
    }
    Ok(found)
}

fn orphan(claim: &Claim, reason: OrphanReason) -> Orphan {
    Orphan {
        state_dir: claim.state_dir.clone(),
        id: claim.id.clone(),
        reason,
    }
}

/// The deadline recorded in a sandbox's helper configuration.
fn deadline(layout: &Layout, id: &str) -> Option<u64> {
    let cfg: HelperConfig = serde_json::from_slice(&fs::read(layout.config(id)).ok()?).ok()?;
    cfg.spec.deadline_unix_ms
}

/// SIGKILLs what runs in the range at `base` until nothing does, then
/// releases the claim.
fn kill_range(base: u32, claim: &Claim) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pids = userns::processes_in_range(base);
        if pids.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Sys {
                what: "processes of an orphaned uid range survived SIGKILL",
                source: std::io::Error::from(std::io::ErrorKind::TimedOut),
            });
        }
        for pid in pids {
            // SAFETY: plain syscall; these ids belong to the range alone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    userns::release(base, claim)
}
