//! Per-sandbox cgroups on v1 (one directory per controller hierarchy, as on
//! this hybrid host) or v2 (one directory in the unified tree).
//!
//! Layout: v1 `/sys/fs/cgroup/<controller>/<parent>/<id>` for memory, pids,
//! cpu and cpuacct; v2 `/sys/fs/cgroup/<parent>/<id>`. The devices
//! controller is not used: a user namespace cannot create device nodes and
//! the sandbox's /dev holds only bind-mounted harmless ones.

use std::fs;
use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spec::Limits;

const ROOT: &str = "/sys/fs/cgroup";
/// cpuacct is left out: nothing reads it, and every hierarchy joined costs
/// time on the start-up path.
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

pub fn detect() -> Version {
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

/// The directories a sandbox `id` uses under `parent`.
pub fn dirs(version: Version, parent: &str, id: &str) -> Vec<PathBuf> {
    match version {
        Version::V1 => V1_CONTROLLERS
            .iter()
            .map(|c| Path::new(ROOT).join(c).join(parent).join(id))
            .collect(),
        Version::V2 => vec![Path::new(ROOT).join(parent).join(id)],
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(Error::io("write cgroup file", path))
}

fn find<'a>(dirs: &'a [PathBuf], controller: &str) -> Option<&'a Path> {
    dirs.iter()
        .find(|d| {
            d.strip_prefix(ROOT)
                .ok()
                .and_then(|r| r.iter().next())
                .is_some_and(|c| c == controller)
        })
        .map(PathBuf::as_path)
}

/// Creates the directories and applies `limits`.
pub fn create(version: Version, dirs: &[PathBuf], limits: &Limits) -> Result<()> {
    for d in dirs {
        if let (Version::V2, Some(parent)) = (version, d.parent()) {
            enable_v2_controllers(parent)?;
        }
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::NotFound => {
                fs::create_dir_all(d).map_err(Error::io("create cgroup", d))?;
            }
            Err(e) if e.kind() == IoKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create cgroup", d)(e)),
        }
    }
    let swap = limits.memory_swap_bytes.unwrap_or(limits.memory_bytes);
    match version {
        Version::V1 => {
            if let Some(m) = find(dirs, "memory") {
                write(m, "memory.limit_in_bytes", &limits.memory_bytes.to_string())?;
                // Absent when the kernel runs without swap accounting.
                if m.join("memory.memsw.limit_in_bytes").exists() {
                    write(m, "memory.memsw.limit_in_bytes", &swap.to_string())?;
                }
            }
            if let Some(p) = find(dirs, "pids") {
                write(p, "pids.max", &limits.pids.to_string())?;
            }
            if let Some(c) = find(dirs, "cpu") {
                // v1 shares default to 1024 for weight 100.
                let shares = (limits.cpu_weight * 1024 / 100).max(2);
                write(c, "cpu.shares", &shares.to_string())?;
                if let Some(cpus) = limits.cpus {
                    write(c, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    write(
                        c,
                        "cpu.cfs_quota_us",
                        &((cpus * CPU_PERIOD_US as f64) as u64).to_string(),
                    )?;
                }
            }
        }
        Version::V2 => {
            let d = &dirs[0];
            write(d, "memory.max", &limits.memory_bytes.to_string())?;
            if d.join("memory.swap.max").exists() {
                write(
                    d,
                    "memory.swap.max",
                    &(swap - limits.memory_bytes).to_string(),
                )?;
            }
            write(d, "pids.max", &limits.pids.to_string())?;
            write(d, "cpu.weight", &limits.cpu_weight.to_string())?;
            if let Some(cpus) = limits.cpus {
                write(
                    d,
                    "cpu.max",
                    &format!("{} {CPU_PERIOD_US}", (cpus * CPU_PERIOD_US as f64) as u64),
                )?;
            }
        }
    }
    Ok(())
}

fn enable_v2_controllers(parent: &Path) -> Result<()> {
    // Each ancestor must delegate the controllers to its children.
    let mut chain: Vec<&Path> = parent
        .ancestors()
        .take_while(|p| p.starts_with(ROOT))
        .collect();
    chain.reverse();
    for dir in chain {
        fs::create_dir_all(dir).map_err(Error::io("create cgroup", dir))?;
        let path = dir.join("cgroup.subtree_control");
        let cur = fs::read_to_string(&path).unwrap_or_default();
        for c in ["memory", "pids", "cpu"] {
            if !cur.split_whitespace().any(|x| x == c) {
                fs::write(&path, format!("+{c}"))
                    .map_err(Error::io("enable cgroup controller", &path))?;
            }
        }
    }
    Ok(())
}

/// Moves the calling process, which must be single-threaded, into every
/// directory.
///
/// On v1 this writes "0" to `tasks` rather than a pid to `cgroup.procs`:
/// moving only the calling thread skips the global threadgroup lock, whose
/// first writer after a quiet spell waits a whole RCU grace period (10–15 ms
/// measured here, the largest single cost of a sandbox start). For a
/// single-threaded process, the thread is the whole process.
pub fn join_self(version: Version, dirs: &[PathBuf]) -> Result<()> {
    let file = match version {
        Version::V1 => "tasks",
        Version::V2 => "cgroup.procs",
    };
    for d in dirs {
        write(d, file, "0")?;
    }
    Ok(())
}

/// Memory and process counts as the cgroup reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Memory charged to the sandbox, page cache and kernel memory included.
    pub memory_bytes: u64,
    pub pids: u64,
    /// CPU time used so far, in nanoseconds.
    pub cpu_nanos: u64,
}

fn read_u64(path: &Path) -> Result<u64> {
    let s = fs::read_to_string(path).map_err(Error::io("read cgroup file", path))?;
    s.trim().parse().map_err(|_| {
        Error::io("parse cgroup file", path)(std::io::Error::from(IoKind::InvalidData))
    })
}

pub fn stats(version: Version, dirs: &[PathBuf]) -> Result<Stats> {
    let (mem, pids) = match version {
        Version::V1 => (
            find(dirs, "memory").map(|d| d.join("memory.usage_in_bytes")),
            find(dirs, "pids").map(|d| d.join("pids.current")),
        ),
        Version::V2 => (
            dirs.first().map(|d| d.join("memory.current")),
            dirs.first().map(|d| d.join("pids.current")),
        ),
    };
    let cpu_nanos = match version {
        // The v1 cpu controller keeps no usage (cpuacct does, and sandboxes
        // have no cpuacct group): the CPU time of the processes alive now.
        Version::V1 => procs(dirs).into_iter().map(process_cpu_nanos).sum(),
        Version::V2 => dirs
            .first()
            .and_then(|d| fs::read_to_string(d.join("cpu.stat")).ok())
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .map_or(0, |us| us * 1000),
    };
    Ok(Stats {
        memory_bytes: mem.map(|p| read_u64(&p)).transpose()?.unwrap_or(0),
        pids: pids.map(|p| read_u64(&p)).transpose()?.unwrap_or(0),
        cpu_nanos,
    })
}

/// User plus system CPU time of a process, in nanoseconds.
fn process_cpu_nanos(pid: i32) -> u64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command's closing parenthesis; utime and stime are
    // fields 14 and 15, counted in clock ticks.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: plain sysconf.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

/// Host pids of every process in the sandbox's cgroups.
pub fn procs(dirs: &[PathBuf]) -> Vec<i32> {
    let mut all: Vec<i32> = dirs
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// SIGKILLs every process in the cgroups until they are empty, then removes
/// the directories. Missing directories are fine (already cleaned).
pub fn destroy(dirs: &[PathBuf], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = procs(dirs);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: plain syscall; a vanished pid only yields ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if Instant::now() > deadline {
            return Err(Error::Sys {
                what: "processes of the sandbox survived SIGKILL",
                source: std::io::Error::from(IoKind::TimedOut),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for d in dirs {
        loop {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == IoKind::NotFound => break,
                // A process that just exited may still be leaving the group.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(Error::io("remove cgroup", d)(e)),
            }
        }
    }
    Ok(())
}
