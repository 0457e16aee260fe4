//! User-namespace id ranges: host-wide allocation and writing the maps of a
//! new namespace.
//!
//! Each sandbox maps ids 0..65535 inside to `base..base+65535` outside. The
//! ranges are 65536-aligned and claimed *host-wide*, whatever runtime,
//! state directory, server, `sandbox run` or test suite asks: range `n`
//! (ids `n * 65536 ..`) is claimed by creating `CLAIMS/<n>` with `O_EXCL`;
//! the file holds its owner ([`Claim`]: state directory and sandbox id) and
//! is removed when that sandbox is destroyed. A pool ([`UidPool`]) only
//! says which ranges a runtime tries, lowest first, so pools may overlap.
//!
//! A claim whose owner looks gone (a crash, a deleted data directory, a
//! reboot) is taken over only when both hold:
//! - the owner has no live sandbox: no record in its state directory, or a
//!   record whose init has died (a record still being created counts as
//!   live);
//! - no process on the host runs with a uid or gid in the range (what is
//!   left of a sandbox whose record was lost still holds its range).
//!
//! The takeover rewrites the claim under an exclusive lock of the claim
//! directory after checking it still names the stale owner, so two
//! allocators never both win a range.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind as IoKind, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::paths::Layout;
use crate::state::{State, Status, process_start_time};

/// Ids per sandbox: all 16-bit ids, as images expect (nobody = 65534).
pub const RANGE_SIZE: u32 = 65536;

/// Where every runtime on the host claims its ranges.
pub const CLAIMS: &str = "/run/layerlab/uid-ranges";

#[derive(Debug, Clone, Copy)]
pub struct UidPool {
    /// First host id of slot 0: a multiple of 65536, never 0, so no sandbox
    /// id maps to host root.
    pub first: u32,
    /// Number of slots (sandboxes alive at once).
    pub count: u32,
}

impl Default for UidPool {
    fn default() -> Self {
        // Far above the ids Debian hands to users and services (and above
        // the 100000.. ranges that newuidmap users commonly get).
        Self {
            first: 1 << 28,
            count: 4096,
        }
    }
}

/// Who holds a range: a sandbox of one state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub state_dir: PathBuf,
    pub id: String,
}

impl Claim {
    fn load(path: &Path) -> Option<Claim> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    /// Whether the owner's sandbox may still be running or being created.
    fn owner_alive(&self) -> bool {
        if crate::paths::check_id(&self.id).is_err() {
            return false;
        }
        let layout = Layout::new(&self.state_dir);
        match State::load(&layout.state(&self.id)) {
            Ok(st) => match st.status {
                Status::Creating => true,
                Status::Running => st
                    .init_pid
                    .zip(st.init_start_time)
                    .is_some_and(|(p, t)| process_start_time(p) == Some(t)),
                Status::Exited => false,
            },
            // Allocation comes before the first state write.
            Err(_) => layout.sandbox(&self.id).is_dir(),
        }
    }
}

fn claim_path(base: u32) -> PathBuf {
    Path::new(CLAIMS).join((base / RANGE_SIZE).to_string())
}

impl UidPool {
    pub(crate) fn validate(&self) -> Result<()> {
        let end = u64::from(self.first) + u64::from(self.count) * u64::from(RANGE_SIZE);
        if self.first < RANGE_SIZE
            || !self.first.is_multiple_of(RANGE_SIZE)
            || self.count == 0
            || end > u64::from(u32::MAX)
        {
            return Err(Error::InvalidSpec(
                "uid pool must start at a multiple of 65536 (65536 or above) and end below 2^32"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn base(&self, slot: u32) -> u32 {
        self.first + slot * RANGE_SIZE
    }

    /// Claims the lowest free range of the pool for `owner`; returns its
    /// slot. Stale claims are looked at only when no range is free, so a
    /// busy host pays one failed `O_EXCL` create per live sandbox.
    pub(crate) fn allocate(&self, owner: &Claim) -> Result<u32> {
        fs::create_dir_all(CLAIMS).map_err(Error::io("create", CLAIMS))?;
        let body = serde_json::to_vec(owner).map_err(|source| Error::State {
            path: CLAIMS.into(),
            source,
        })?;
        for slot in 0..self.count {
            let path = claim_path(self.base(slot));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(&body).map_err(Error::io("write", &path))?;
                    return Ok(slot);
                }
                Err(e) if e.kind() == IoKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create", &path)(e)),
            }
        }
        // Ids of every host process, read once and only if a claim looks stale.
        let mut host_ids: Option<Vec<u32>> = None;
        for slot in 0..self.count {
            let base = self.base(slot);
            let path = claim_path(base);
            let Ok(seen) = fs::read(&path) else {
                continue;
            };
            let stale = match serde_json::from_slice::<Claim>(&seen) {
                Ok(owner) => !owner.owner_alive(),
                // Left half-written by a crash between create and write.
                Err(_) => fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > UNWRITTEN_CLAIM_AGE)),
            };
            if !stale {
                continue;
            }
            let ids = host_ids
                .get_or_insert_with(|| processes().into_iter().flat_map(|(_, ids)| ids).collect());
            if ids.iter().any(|&i| (base..base + RANGE_SIZE).contains(&i)) {
                continue;
            }
            if take_over(&path, &seen, &body)? {
                return Ok(slot);
            }
        }
        Err(Error::PoolExhausted { count: self.count })
    }
}

/// How old an unreadable claim must be before it counts as a crash's leftover.
const UNWRITTEN_CLAIM_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Replaces the claim at `path` by `body` if it still holds `stale`.
fn take_over(path: &Path, stale: &[u8], body: &[u8]) -> Result<bool> {
    let lock = fs::File::open(CLAIMS).map_err(Error::io("open", CLAIMS))?;
    // SAFETY: plain flock on a descriptor we own; released when it closes.
    crate::sys::check(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) })
        .map_err(Error::sys("lock the uid range claims"))?;
    if fs::read(path).ok().as_deref() != Some(stale) {
        return Ok(false);
    }
    let tmp = path.with_extension("new");
    fs::write(&tmp, body).map_err(Error::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(Error::io("rename", path))?;
    tracing::info!(range = %path.display(), stale = %String::from_utf8_lossy(stale), "took over a uid range whose owner is gone");
    Ok(true)
}

/// Releases the range at `base` if `owner` still holds it.
pub(crate) fn release(base: u32, owner: &Claim) -> Result<()> {
    let path = claim_path(base);
    if Claim::load(&path).as_ref() == Some(owner) {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path)(e)),
        }
    }
    Ok(())
}

/// Every claimed range on the host: its first id and its owner.
pub fn claims() -> Vec<(u32, Claim)> {
    let Ok(rd) = fs::read_dir(CLAIMS) else {
        return Vec::new();
    };
    let mut all: Vec<(u32, Claim)> = rd
        .flatten()
        .filter_map(|e| {
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((n.checked_mul(RANGE_SIZE)?, Claim::load(&e.path())?))
        })
        .collect();
    all.sort_by_key(|(base, _)| *base);
    all
}

/// Every live host process with its real, effective, saved and filesystem
/// uids and gids. Zombies are left out: they hold nothing of a range, and
/// an orphan nobody reaps (this machine's pid 1 does not) stays one.
fn processes() -> Vec<(i32, Vec<u32>)> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let status = fs::read_to_string(e.path().join("status")).ok()?;
            if status.lines().any(|l| l.starts_with("State:\tZ")) {
                return None;
            }
            let ids = status
                .lines()
                .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:"))
                .flat_map(|l| l.split_whitespace().skip(1).filter_map(|v| v.parse().ok()))
                .collect();
            Some((pid, ids))
        })
        .collect()
}

/// Host pids of the processes running with an id of the range at `base`:
/// what is left of a sandbox whose records are gone.
pub(crate) fn processes_in_range(base: u32) -> Vec<i32> {
    let range = base..base.saturating_add(RANGE_SIZE);
    processes()
        .into_iter()
        .filter(|(_, ids)| ids.iter().any(|i| range.contains(i)))
        .map(|(pid, _)| pid)
        .collect()
}

/// Writes `0 base 65536` into the uid and gid maps of process `pid`, which
/// has just created its user namespace and waits for us.
pub(crate) fn write_maps(pid: i32, base: u32) -> Result<()> {
    let line = format!("0 {base} {RANGE_SIZE}\n");
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, &line).map_err(Error::io("write", path))?;
    }
    Ok(())
}
