//! What callers read about sandboxes: records, stats, processes and
//! activity.

use std::fs;
use std::time::SystemTime;

use crate::cgroups::{self, Stats};
use crate::error::{Error, Result};
use crate::paths::check_id;
use crate::state::{State, Status};
use crate::userns;

use super::Runtime;

/// One row of [`Runtime::list`].
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub id: String,
    pub status: Status,
    pub init_pid: Option<i32>,
    pub uid_base: u32,
    pub created_unix_ms: u64,
    /// Last `create`, `exec`, `exec_command` or `touch`.
    pub last_activity: Option<SystemTime>,
}

impl Runtime {
    fn info(&self, st: State) -> SandboxInfo {
        let status = match st.status {
            Status::Running if !self.alive(&st) => Status::Exited,
            s => s,
        };
        SandboxInfo {
            last_activity: self.last_activity(&st.id),
            id: st.id,
            status,
            init_pid: st.init_pid,
            uid_base: st.uid_base,
            created_unix_ms: st.created_unix_ms,
        }
    }

    pub fn get(&self, id: &str) -> Result<SandboxInfo> {
        check_id(id)?;
        Ok(self.info(self.load(id)?))
    }

    /// Every sandbox with a state record, in id order.
    pub fn list(&self) -> Result<Vec<SandboxInfo>> {
        let mut out = Vec::new();
        for id in self.sandbox_ids()? {
            if let Ok(st) = State::load(&self.layout.state(&id)) {
                out.push(self.info(st));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The ids of the sandbox directories here, valid ones only.
    pub(super) fn sandbox_ids(&self) -> Result<Vec<String>> {
        let dir = self.layout.sandboxes();
        Ok(fs::read_dir(&dir)
            .map_err(Error::io("read", &dir))?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|id| check_id(id).is_ok())
            .collect())
    }

    /// The uid ranges this state directory's sandboxes hold on the host:
    /// first host id and sandbox id.
    pub fn claimed_ranges(&self) -> Vec<(u32, String)> {
        userns::claims()
            .into_iter()
            .filter(|(_, c)| c.state_dir == self.layout.root())
            .map(|(base, c)| (base, c.id))
            .collect()
    }

    pub fn stats(&self, id: &str) -> Result<Stats> {
        let st = self.running_state(id, "stats")?;
        cgroups::stats(self.cgroup_version, &st.cgroups)
    }

    /// Host pids of the sandbox's processes (its init included). Running
    /// only.
    pub fn processes(&self, id: &str) -> Result<Vec<i32>> {
        let st = self.running_state(id, "a process list")?;
        Ok(cgroups::procs(&st.cgroups))
    }

    /// The record of a running sandbox; `NotRunning` names `what` needed it.
    fn running_state(&self, id: &str, what: &'static str) -> Result<State> {
        check_id(id)?;
        let st = self.load(id)?;
        if !self.alive(&st) {
            return Err(Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what,
            });
        }
        Ok(st)
    }

    /// Records activity now (terminal input, a grading run); the owner
    /// compares [`SandboxInfo::last_activity`] with its idle timeout.
    pub fn touch(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let path = self.layout.activity(id);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        f.set_modified(SystemTime::now())
            .map_err(Error::io("touch", &path))
    }

    pub fn last_activity(&self, id: &str) -> Option<SystemTime> {
        fs::metadata(self.layout.activity(id))
            .and_then(|m| m.modified())
            .ok()
    }
}
