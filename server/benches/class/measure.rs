//! What the class benchmark counts: latency samples and their
//! percentiles, failures by kind, and the host's and the server's memory
//! and CPU sampled while a phase runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::rss;

/// Latencies of one kind, from every student of a phase.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    pub fn extend(&mut self, other: &Samples) {
        self.0.extend_from_slice(&other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (nearest rank), `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        Some(sorted[(last as f64 * q).round() as usize])
    }

    /// "p50 / p99" in milliseconds, or "—" without samples.
    pub fn p50_p99(&self) -> String {
        match (self.quantile(0.50), self.quantile(0.99)) {
            (Some(p50), Some(p99)) => format!("{} / {}", ms(p50), ms(p99)),
            _ => "—".to_owned(),
        }
    }
}

/// A duration in milliseconds with a precision that suits its size.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Something a student saw fail: a non-success answer, a dropped or
/// silent websocket, a timeout.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The step that failed, e.g. "check" or "keystroke echo".
    pub step: &'static str,
    pub detail: String,
}

impl Failure {
    pub fn new(step: &'static str, detail: impl Into<String>) -> Failure {
        Failure {
            step,
            detail: detail.into(),
        }
    }
}

/// Failures of a phase by step: how many, and the first one's detail.
#[derive(Debug, Default)]
pub struct Failures(BTreeMap<&'static str, (usize, String)>);

impl Failures {
    pub fn add(&mut self, failure: &Failure) {
        self.0
            .entry(failure.step)
            .or_insert_with(|| (0, failure.detail.clone()))
            .0 += 1;
    }

    pub fn total(&self) -> usize {
        self.0.values().map(|(n, _)| n).sum()
    }

    /// One line per failing step.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(step, (n, first))| format!("{n} × {step} (first: {first})"))
            .collect()
    }
}

/// The host's and the server's use of memory and CPU over a phase.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// MemTotal − MemAvailable when the phase began, and its peak.
    pub host_used_before: u64,
    pub host_used_peak: u64,
    /// Peak resident memory of the server process(es).
    pub server_rss_peak: u64,
    /// Highest 1-minute load average seen.
    pub load_peak: f64,
    /// Share of all CPUs' time the host spent busy (not idle, not iowait),
    /// over the phase and in its busiest half second.
    pub host_busy: f64,
    pub host_busy_peak: f64,
    pub wall: Duration,
}

/// Samples memory and load every half second until stopped; watches
/// whichever server pid it is told about.
pub struct Sampler {
    pub server_pid: Arc<AtomicU32>,
    running: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Peaks>,
    host_used_before: u64,
    cpu_before: CpuTimes,
    began: Instant,
}

impl Sampler {
    pub fn start(server_pid: u32) -> Sampler {
        let pid = Arc::new(AtomicU32::new(server_pid));
        let running = Arc::new(AtomicBool::new(true));
        let (watched, keep) = (pid.clone(), running.clone());
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            let mut cpu = CpuTimes::now();
            while keep.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let now = CpuTimes::now();
                peaks.host_busy = peaks.host_busy.max(now.busy_since(&cpu));
                cpu = now;
                peaks.host_used = peaks.host_used.max(host_used());
                peaks.rss = peaks.rss.max(rss(watched.load(Ordering::Relaxed)));
                peaks.load = peaks.load.max(load1());
            }
            peaks
        });
        Sampler {
            server_pid: pid,
            running,
            thread,
            host_used_before: host_used(),
            cpu_before: CpuTimes::now(),
            began: Instant::now(),
        }
    }

    pub fn finish(self) -> Usage {
        let cpu = CpuTimes::now();
        self.running.store(false, Ordering::Relaxed);
        let peaks = self.thread.join().unwrap_or_default();
        Usage {
            host_used_before: self.host_used_before,
            host_used_peak: peaks.host_used,
            server_rss_peak: peaks.rss,
            load_peak: peaks.load,
            host_busy: cpu.busy_since(&self.cpu_before),
            host_busy_peak: peaks.host_busy,
            wall: self.began.elapsed(),
        }
    }
}

fn meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib << 10)
}

/// Memory in use on the host: MemTotal − MemAvailable.
pub fn host_used() -> u64 {
    meminfo("MemTotal:").saturating_sub(meminfo("MemAvailable:"))
}

pub fn mem_total() -> u64 {
    meminfo("MemTotal:")
}

#[derive(Default)]
struct Peaks {
    host_used: u64,
    rss: u64,
    load: f64,
    host_busy: f64,
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU time `pid` has used (user + system), zero once it is gone.
pub fn process_cpu(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces; the fields follow its ')'.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// The host's CPU time counters, all CPUs together, in ticks.
struct CpuTimes {
    total: u64,
    idle: u64,
}

impl CpuTimes {
    fn now() -> CpuTimes {
        let line = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let values: Vec<u64> = line
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        CpuTimes {
            total: values.iter().sum(),
            // idle and iowait
            idle: values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0),
        }
    }

    /// The share of the time since `before` the CPUs were busy.
    fn busy_since(&self, before: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(before.total).max(1);
        let idle = self.idle.saturating_sub(before.idle);
        1.0 - idle as f64 / total as f64
    }
}

pub fn mib(bytes: u64) -> u64 {
    bytes >> 20
}
