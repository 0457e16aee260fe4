//! What the server measures, for Prometheus: one process-wide registry
//! behind a small typed API that the labs, grading and HTTP code call
//! (`lab_started`, `check_ran`, `error_response`, …), and [`scrape`],
//! which samples what is cheaper to read than to track (labs by state,
//! open terminals, the nodes' memory and pids, the store's size, the
//! process) and encodes everything as OpenMetrics text.
//!
//! The registry is a process-wide static rather than a field of the app's
//! state: errors become responses in `http::error` where no state is at
//! hand, and one process is one server, which is also what Prometheus'
//! `instance` label names.
//!
//! Every name starts with `layerlab_` and carries its unit (`_seconds`,
//! `_bytes`); counters end in `_total` (the encoder adds the suffixes).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::db::LabState;

/// The content type of [`scrape`]'s answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a measured store size is served before it is measured again:
/// the walk reads every file of the store, unpacked layers included.
const STORE_SIZE_TTL: Duration = Duration::from_secs(300);

/// Lab starts take from well under a second (a small node, warm caches)
/// to the setup timeout: 50 ms up to 30 s.
const START_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0,
];
/// A task's checks run commands in the node, with deadlines of seconds.
const CHECK_BUCKETS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

type Labeled<M> = Family<[(&'static str, &'static str); 1], M>;

struct Metrics {
    registry: Registry,
    started: Instant,
    labs: Labeled<Gauge>,
    lab_start_duration: Histogram,
    lab_start_failures: Labeled<Counter>,
    terminals: Gauge,
    websocket_received: Counter,
    websocket_sent: Counter,
    checks: Labeled<Counter>,
    check_duration: Histogram,
    attempts: Counter,
    hub_sent: Counter,
    store_size: Gauge,
    sandbox_memory: Gauge,
    sandbox_pids: Gauge,
    errors: Labeled<Counter>,
    resident_memory: Gauge,
    uptime: Gauge<f64, AtomicU64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("layerlab");
        let r = &mut registry;
        let metrics = Metrics {
            started: Instant::now(),
            labs: add(
                r,
                "labs",
                "Labs holding a slot, by state (starting, ready)",
                None,
            ),
            lab_start_duration: add_as(
                r,
                "lab_start_duration",
                "Time from a lab's start request until its node is ready",
                Some(Unit::Seconds),
                Histogram::new(START_BUCKETS),
            ),
            lab_start_failures: add(
                r,
                "lab_start_failures",
                "Lab starts refused or failed, by reason (server_full, user_full, memory_full, node, internal)",
                None,
            ),
            terminals: add(r, "terminals", "Terminals open on running labs", None),
            websocket_received: add(
                r,
                "websocket_received",
                "Terminal input received over websockets",
                Some(Unit::Bytes),
            ),
            websocket_sent: add(
                r,
                "websocket_sent",
                "Terminal output and messages sent over websockets",
                Some(Unit::Bytes),
            ),
            checks: add(
                r,
                "checks",
                "Tasks checked, by result (passed, failed, error)",
                None,
            ),
            check_duration: add_as(
                r,
                "check_duration",
                "Time to run one task's checks in its lab",
                Some(Unit::Seconds),
                Histogram::new(CHECK_BUCKETS),
            ),
            attempts: add(r, "attempts", "Attempts recorded in the database", None),
            hub_sent: add(
                r,
                "hub_sent",
                "Bytes of answers of known length the hub sent (manifests and blobs)",
                Some(Unit::Bytes),
            ),
            store_size: add(
                r,
                "store_size",
                "Disk space the image store takes, measured every few minutes (0 until first measured)",
                Some(Unit::Bytes),
            ),
            sandbox_memory: add(
                r,
                "sandbox_memory",
                "Memory the running labs' nodes and containers use, from their cgroups",
                Some(Unit::Bytes),
            ),
            sandbox_pids: add(
                r,
                "sandbox_pids",
                "Processes and threads in the running labs' nodes and containers",
                None,
            ),
            errors: add(
                r,
                "errors",
                "Requests answered with an error, by kind (bad_request, not_found, internal, …)",
                None,
            ),
            resident_memory: add(
                r,
                "process_resident_memory",
                "Resident memory of the server process",
                Some(Unit::Bytes),
            ),
            uptime: add(
                r,
                "process_uptime",
                "Time since the server started",
                Some(Unit::Seconds),
            ),
            registry,
        };
        // Every label value is exported from the start, so a rate over a
        // series that had nothing yet reads 0 rather than nothing.
        for state in [LabState::Starting, LabState::Ready] {
            let _ = metrics.labs.get_or_create(&[("state", state.as_str())]);
        }
        for reason in StartFailure::ALL {
            let _ = metrics
                .lab_start_failures
                .get_or_create(&[("reason", reason.label())]);
        }
        for result in CheckResult::ALL {
            let _ = metrics.checks.get_or_create(&[("result", result.label())]);
        }
        for kind in ERROR_KINDS {
            let _ = metrics.errors.get_or_create(&[("kind", kind)]);
        }
        metrics
    }
}

/// A new metric of its default kind, registered under `name` (its unit,
/// if any, appended).
fn add<M: Metric + Clone + Default>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> M {
    add_as(registry, name, help, unit, M::default())
}

/// `metric`, registered under `name` (its unit, if any, appended).
fn add_as<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric.clone()),
        None => registry.register(name, help, metric.clone()),
    }
    metric
}

/// Starts the clock of `layerlab_process_uptime_seconds`.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// A lab's node is ready, `took` after its start was asked for.
pub fn lab_started(took: Duration) {
    METRICS.lab_start_duration.observe(took.as_secs_f64());
}

/// Why a lab did not start.
#[derive(Debug, Clone, Copy)]
pub enum StartFailure {
    ServerFull,
    UserFull,
    MemoryFull,
    /// The sandbox host could not build the node (image, setup script, …).
    Node,
    /// The server failed around it (database, a panicked task).
    Internal,
}

impl StartFailure {
    const ALL: [StartFailure; 5] = [
        StartFailure::ServerFull,
        StartFailure::UserFull,
        StartFailure::MemoryFull,
        StartFailure::Node,
        StartFailure::Internal,
    ];

    fn label(self) -> &'static str {
        match self {
            StartFailure::ServerFull => "server_full",
            StartFailure::UserFull => "user_full",
            StartFailure::MemoryFull => "memory_full",
            StartFailure::Node => "node",
            StartFailure::Internal => "internal",
        }
    }
}

pub fn lab_start_failed(reason: StartFailure) {
    METRICS
        .lab_start_failures
        .get_or_create(&[("reason", reason.label())])
        .inc();
}

/// How a task's check run ended.
#[derive(Debug, Clone, Copy)]
pub enum CheckResult {
    Passed,
    Failed,
    /// The run itself failed (the server, not the student's work).
    Error,
}

/// One task was checked; `took` is `None` when the run failed before any
/// check ran.
impl CheckResult {
    const ALL: [CheckResult; 3] = [CheckResult::Passed, CheckResult::Failed, CheckResult::Error];

    fn label(self) -> &'static str {
        match self {
            CheckResult::Passed => "passed",
            CheckResult::Failed => "failed",
            CheckResult::Error => "error",
        }
    }
}

pub fn check_ran(result: CheckResult, took: Option<Duration>) {
    METRICS
        .checks
        .get_or_create(&[("result", result.label())])
        .inc();
    if let Some(took) = took {
        METRICS.check_duration.observe(took.as_secs_f64());
    }
}

pub fn attempt_recorded() {
    METRICS.attempts.inc();
}

pub fn websocket_received(bytes: usize) {
    METRICS.websocket_received.inc_by(bytes as u64);
}

pub fn websocket_sent(bytes: usize) {
    METRICS.websocket_sent.inc_by(bytes as u64);
}

/// Every `kind` of `layerlab_errors_total`.
const ERROR_KINDS: [&str; 10] = [
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "too_many_requests",
    "unavailable",
    "internal",
    "other",
];

/// A request was answered with `status`, an error.
pub fn error_response(status: StatusCode) {
    METRICS
        .errors
        .get_or_create(&[("kind", error_kind(status))])
        .inc();
}

fn error_kind(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "other",
    }
}

/// Middleware for the hub: counts the bytes of every answer whose length
/// is known (blobs and manifests are; HEAD answers send none).
pub async fn hub_traffic(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let head = request.method() == axum::http::Method::HEAD;
    let response = next.run(request).await;
    let length = response
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (false, Some(length)) = (head, length) {
        METRICS.hub_sent.inc_by(length);
    }
    response
}

/// What a scrape reads from the server rather than tracks as it happens.
pub struct Sample {
    /// Labs starting and ready.
    pub labs: Vec<(LabState, usize)>,
    pub terminals: usize,
    /// Memory and pids of every lab's node, when they could be read.
    pub usage: Option<(u64, u64)>,
    pub store_size: Option<u64>,
}

/// Records `sample` and the process's own figures, then encodes every
/// metric.
pub fn scrape(sample: Sample) -> String {
    for (lab_state, n) in sample.labs {
        METRICS
            .labs
            .get_or_create(&[("state", lab_state.as_str())])
            .set(n as i64);
    }
    METRICS.terminals.set(sample.terminals as i64);
    if let Some((memory, pids)) = sample.usage {
        METRICS.sandbox_memory.set(memory as i64);
        METRICS.sandbox_pids.set(pids as i64);
    }
    if let Some(bytes) = sample.store_size {
        METRICS.store_size.set(bytes as i64);
    }
    if let Some(rss) = resident_memory() {
        METRICS.resident_memory.set(rss as i64);
    }
    METRICS.uptime.set(METRICS.started.elapsed().as_secs_f64());
    encode()
}

fn encode() -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &METRICS.registry);
    text
}

/// Resident memory of this process, from `/proc/self/statm` (in pages).
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: plain sysconf.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The image store's size on disk, measured on a thread of its own at
/// most every [`STORE_SIZE_TTL`], so a scrape never walks the tree.
pub struct StoreSize {
    dir: PathBuf,
    measured: Arc<Mutex<Measured>>,
}

#[derive(Default)]
struct Measured {
    bytes: Option<u64>,
    at: Option<Instant>,
    walking: bool,
}

impl StoreSize {
    /// Measures nothing yet: the first [`StoreSize::current`] starts it
    /// (the server asks at start when it serves metrics).
    pub fn new(dir: &Path) -> StoreSize {
        StoreSize {
            dir: dir.to_owned(),
            measured: Arc::default(),
        }
    }

    /// The last size measured, if any; starts a new measurement in the
    /// background when it is stale.
    pub fn current(&self) -> Option<u64> {
        let mut measured = self.measured.lock().unwrap_or_else(|p| p.into_inner());
        let stale = measured.at.is_none_or(|at| at.elapsed() >= STORE_SIZE_TTL);
        if stale && !measured.walking {
            measured.walking = true;
            let dir = self.dir.clone();
            let shared = self.measured.clone();
            std::thread::spawn(move || {
                let bytes = disk_usage(&dir);
                let mut measured = shared.lock().unwrap_or_else(|p| p.into_inner());
                measured.bytes = Some(bytes);
                measured.at = Some(Instant::now());
                measured.walking = false;
            });
        }
        measured.bytes
    }
}

/// Bytes of disk the files under `dir` take, as `du` counts them: blocks
/// allocated, each hard-linked file once, links not followed.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut linked = HashSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                pending.push(entry.path());
            }
            if meta.nlink() > 1 && !meta.is_dir() && !linked.insert((meta.dev(), meta.ino())) {
                continue;
            }
            total += meta.blocks() * 512;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name the dashboard queries is one the server exports.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let exported: HashSet<String> = encode()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .flat_map(|l| {
                let mut words = l.split(' ');
                let name = words.next().unwrap_or_default().to_owned();
                let suffixes: &[&str] = match words.next() {
                    Some("counter") => &["_total"],
                    Some("histogram") => &["_bucket", "_sum", "_count"],
                    _ => &[""],
                };
                suffixes
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            exported.contains("layerlab_lab_start_duration_seconds_bucket"),
            "{exported:?}"
        );
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/grafana-dashboard.json"))
                .expect("the dashboard is JSON");
        let mut queried = Vec::new();
        collect_exprs(&dashboard, &mut queried);
        assert!(
            queried.len() >= 8,
            "the dashboard has its panels: {queried:?}"
        );
        let name = regex::Regex::new(r"layerlab_[a-z_]+").unwrap();
        let mut used = HashSet::new();
        for expr in &queried {
            for found in name.find_iter(expr) {
                assert!(
                    exported.contains(found.as_str()),
                    "the dashboard queries {}, which the server does not export; it exports {exported:?}",
                    found.as_str()
                );
                used.insert(found.as_str().to_owned());
            }
        }
        for family in [
            "layerlab_labs",
            "layerlab_terminals",
            "layerlab_errors_total",
            "layerlab_sandbox_memory_bytes",
            "layerlab_process_resident_memory_bytes",
        ] {
            assert!(used.contains(family), "no panel shows {family}");
        }
    }

    fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => collect_exprs(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_status_has_an_exported_error_kind() {
        for code in 400..600 {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(ERROR_KINDS.contains(&error_kind(status)), "{status}");
        }
        assert_eq!(error_kind(StatusCode::BAD_GATEWAY), "internal");
        assert_eq!(error_kind(StatusCode::IM_A_TEAPOT), "other");
        let text = encode();
        assert!(
            text.contains("layerlab_errors_total{kind=\"not_found\"} "),
            "{text}"
        );
    }

    #[test]
    fn disk_usage_counts_a_hard_linked_file_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        let one = disk_usage(dir.path());
        assert!(one >= 64 * 1024, "{one}");
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("usr")).unwrap();
        assert_eq!(disk_usage(dir.path()), one, "links add nothing");
    }
}
