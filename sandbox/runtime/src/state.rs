//! The lifecycle record each sandbox keeps in `state.json`, so a restarted
//! server can adopt running sandboxes or clean up what the last one left.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a sandbox is in its life, and what may be called on it.
///
/// | status   | exec | stop | stats | list | meaning |
/// |----------|------|------|-------|------|---------|
/// | Creating | no   | yes  | no    | yes  | the helper is building it; a crash here leaves leftovers that `adopt_or_cleanup` removes |
/// | Running  | yes  | yes  | yes   | yes  | init is alive |
/// | Exited   | no   | yes  | no    | yes  | init has ended; `stop` releases its leftovers |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Running,
    Exited,
}

impl Status {
    pub fn can_exec(self) -> bool {
        self == Status::Running
    }

    pub fn can_stats(self) -> bool {
        self == Status::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// Persisted lifecycle record of one sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub status: Status,
    /// Host pid of the sandbox's init (pid 1 inside).
    pub init_pid: Option<i32>,
    /// Start time of `init_pid` in clock ticks since boot, so a recycled pid
    /// is never mistaken for our init.
    pub init_start_time: Option<u64>,
    /// Slot in the runtime's uid pool; its range (claimed host-wide) starts
    /// at `uid_base`.
    pub uid_slot: u32,
    pub uid_base: u32,
    /// Every cgroup directory created for the sandbox, one per hierarchy.
    pub cgroups: Vec<PathBuf>,
    pub created_unix_ms: u64,
    /// The sandbox whose user namespace this one shares; it must go first
    /// when that one is destroyed (its cgroups are children of ours).
    #[serde(default)]
    pub sibling_of: Option<String>,
    /// Descriptors init holds for its caller, from `HELD_FD` on.
    #[serde(default)]
    pub held: usize,
}

impl State {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(Error::io("read state", path))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::State {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes through a temporary file and a rename so a crash never leaves
    /// a half-written record.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_json_atomic(path, self)
    }
}

pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).map_err(|source| Error::State {
        path: path.to_owned(),
        source,
    })?;
    let mut f = fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all(&bytes).map_err(Error::io("write", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(Error::io("rename", path))
}

/// Start time (field 22 of `/proc/PID/stat`) of a live process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3; field 22 is 19 further.
    fields.nth(18)?.parse().ok()
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
