//! Lab sessions: the rows in the database and the nodes in the sandbox host
//! kept in step, slot limits, and the terminals that live as long as a lab.
//!
//! Admission counts labs (per server, per user) and memory: the memory
//! limits of the labs running stay within the [`memory_budget`] of the
//! host, so the host cannot run out of memory through its labs unless an
//! operator asks for overcommit. A lab's own `oom_score_adj` is never what
//! protects the server: a lab may lower it.
//!
//! Every call into the [`host::SandboxHost`] blocks, so it runs on a
//! blocking thread. A lab is `starting` while its node is being built
//! (first waiting for its image while the catalog is being prepared),
//! `ready` once it is up and `stopped` for good afterwards; a failed start
//! becomes `stopped` with the reason.

pub mod terminal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use host::{Expiry, ExpiryReason, SandboxHost, SandboxLimits, SandboxSpec, SandboxState, Usage};

use crate::db::{Db, DbError, Lab, LabState};
use crate::metrics::{self, StartFailure};
use terminal::{TerminalError, TerminalHub};

/// Most terminals one lab may have open at once.
pub const MAX_TERMINALS_PER_LAB: usize = 4;
/// Most websockets on one terminal at once (a few tabs showing the same
/// shell); every socket costs a replay buffer and a share of the input.
pub const MAX_SOCKETS_PER_TERMINAL: usize = 4;
/// Most terminal websockets one user may hold at once, over all labs.
pub const MAX_SOCKETS_PER_USER: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("all {0} lab slots are busy, try again in a minute")]
    ServerFull(usize),
    #[error("you already have {0} labs running; stop one before starting another")]
    UserFull(usize),
    #[error(
        "lab slots are full: running labs hold {reserved_mib} MiB of the {budget_mib} MiB of memory this server gives labs and this lab needs {wanted_mib} MiB; try again in a few minutes"
    )]
    MemoryFull {
        reserved_mib: u64,
        budget_mib: u64,
        wanted_mib: u64,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("this terminal is already open in {0} tabs or windows; close one of them and reload")]
    TerminalBusy(usize),
    #[error("you have {0} terminal connections open; close some tabs and reload")]
    TooManySockets(usize),
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error("the lab host failed: {0}")]
    Host(#[from] host::Error),
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How many labs may run, with how much memory, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_labs: usize,
    pub max_per_user: usize,
    /// Most bytes the memory limits of all running labs may add up to.
    pub memory_budget: u64,
    /// CPU cap of a lab whose lesson sets none, in CPUs.
    pub cpus: f64,
    pub expiry: Expiry,
}

/// Memory held back from labs for the host and the server itself.
const HOST_RESERVE: u64 = 1 << 30;

/// What the labs of this host may reserve in total: the machine's memory
/// less a reserve for the host and the server (1 GiB, or a quarter on a
/// small machine), times `overcommit` (1.0 promises every lab its whole
/// limit at once).
pub fn memory_budget(overcommit: f64) -> std::io::Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no MemTotal in /proc/meminfo"))?;
    let total = total_kib << 10;
    let usable = total - HOST_RESERVE.min(total / 4);
    Ok((usable as f64 * overcommit) as u64)
}

pub struct Labs {
    host: Arc<dyn SandboxHost>,
    db: Db,
    limits: Limits,
    /// Each lesson's node limits, resolved once from the course.
    node_limits: HashMap<String, SandboxLimits>,
    /// Held while counting slots and inserting, so two requests cannot both
    /// take the last slot.
    admission: tokio::sync::Mutex<()>,
    terminals: Mutex<HashMap<(String, String), Arc<TerminalHub>>>,
    /// When each lab's activity stamp was last moved by terminal input.
    touched: Mutex<HashMap<String, Instant>>,
    /// Open terminal websockets per user id and per (lab, terminal).
    sockets: Mutex<SocketCounts>,
    /// Labs whose node is being built: each receiver sees its sender
    /// dropped when the start has ended, ready or not.
    starting: Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>,
    /// Who is watching each lab's terminals read-only, by lab id: the
    /// student's pane names them.
    watchers: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// A lab waits here for its image while the catalog is being built.
    catalog: Arc<crate::catalog::Catalog>,
}

/// An instructor watching a lab; the name goes when this is dropped.
pub struct Watching {
    watchers: Arc<Mutex<HashMap<String, Vec<String>>>>,
    lab_id: String,
    name: String,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(names) = watchers.get_mut(&self.lab_id) {
            if let Some(at) = names.iter().position(|n| *n == self.name) {
                names.remove(at);
            }
            if names.is_empty() {
                watchers.remove(&self.lab_id);
            }
        }
    }
}

#[derive(Default)]
struct SocketCounts {
    per_user: HashMap<String, usize>,
    per_terminal: HashMap<(String, String), usize>,
}

/// A terminal websocket's place in the counts; dropping it frees it.
pub struct SocketSlot {
    labs: Arc<Labs>,
    user: String,
    terminal: (String, String),
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = self.labs.sockets.lock().unwrap_or_else(|p| p.into_inner());
        release(&mut counts.per_user, &self.user);
        release(&mut counts.per_terminal, &self.terminal);
    }
}

fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

impl Labs {
    pub fn new(
        host: Arc<dyn SandboxHost>,
        db: Db,
        limits: Limits,
        course: &course::Course,
        catalog: Arc<crate::catalog::Catalog>,
    ) -> Labs {
        Labs {
            node_limits: course
                .lessons
                .iter()
                .map(|l| (l.slug.clone(), node_limits(l, limits.cpus)))
                .collect(),
            host,
            db,
            limits,
            admission: tokio::sync::Mutex::new(()),
            terminals: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            sockets: Mutex::new(SocketCounts::default()),
            starting: Mutex::new(HashMap::new()),
            watchers: Arc::new(Mutex::new(HashMap::new())),
            catalog,
        }
    }

    /// Records that `name` watches lab `lab_id` until the guard is dropped.
    pub fn watch(&self, lab_id: &str, name: &str) -> Watching {
        self.watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(lab_id.to_owned())
            .or_default()
            .push(name.to_owned());
        Watching {
            watchers: self.watchers.clone(),
            lab_id: lab_id.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Who watches lab `lab_id` now, each name once, sorted.
    pub fn watchers(&self, lab_id: &str) -> Vec<String> {
        let mut names = self
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(lab_id)
            .cloned()
            .unwrap_or_default();
        names.sort();
        names.dedup();
        names
    }

    /// Counts a new websocket on terminal `name` of `lab_id` for `user_id`,
    /// or refuses it when the terminal or the user has too many already.
    pub fn admit_socket(
        self: &Arc<Self>,
        user_id: &str,
        lab_id: &str,
        name: &str,
    ) -> Result<SocketSlot, LabError> {
        let terminal = (lab_id.to_owned(), name.to_owned());
        let mut counts = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if counts.per_user.get(user_id).copied().unwrap_or(0) >= MAX_SOCKETS_PER_USER {
            return Err(LabError::TooManySockets(MAX_SOCKETS_PER_USER));
        }
        if counts.per_terminal.get(&terminal).copied().unwrap_or(0) >= MAX_SOCKETS_PER_TERMINAL {
            return Err(LabError::TerminalBusy(MAX_SOCKETS_PER_TERMINAL));
        }
        *counts.per_user.entry(user_id.to_owned()).or_default() += 1;
        *counts.per_terminal.entry(terminal.clone()).or_default() += 1;
        Ok(SocketSlot {
            labs: self.clone(),
            user: user_id.to_owned(),
            terminal,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The node limits of a lesson's labs; a lesson gone from the course
    /// since its lab started counts with the defaults.
    fn limits_of(&self, lesson: &str) -> SandboxLimits {
        self.node_limits
            .get(lesson)
            .cloned()
            .unwrap_or(SandboxLimits {
                cpus: Some(self.limits.cpus),
                ..SandboxLimits::default()
            })
    }

    /// How long before an idle stop the page warns the student: a sixth of
    /// the idle timeout, at most five minutes.
    pub fn idle_warning(&self) -> Duration {
        (self.limits.expiry.idle / 6).min(Duration::from_secs(300))
    }

    /// The user's running lab for `lesson`, or a new one (`true` when new)
    /// whose node is being built in the background.
    pub async fn start(
        self: &Arc<Self>,
        user_id: &str,
        lesson: &course::Lesson,
    ) -> Result<(Lab, bool), LabError> {
        let began = Instant::now();
        let _admission = self.admission.lock().await;
        if let Some(lab) = self.db.active_lab(user_id, &lesson.slug).await? {
            return Ok((lab, false));
        }
        let active = self.db.active_labs().await?;
        let Limits {
            max_labs,
            max_per_user,
            memory_budget,
            expiry,
            ..
        } = self.limits;
        if active.iter().filter(|l| l.user_id == user_id).count() >= max_per_user {
            metrics::lab_start_failed(StartFailure::UserFull);
            return Err(LabError::UserFull(max_per_user));
        }
        if active.len() >= max_labs {
            metrics::lab_start_failed(StartFailure::ServerFull);
            return Err(LabError::ServerFull(max_labs));
        }
        let reserved: u64 = active
            .iter()
            .map(|l| self.limits_of(&l.lesson).memory_bytes)
            .sum();
        let wanted = self.limits_of(&lesson.slug).memory_bytes;
        if reserved + wanted > memory_budget {
            metrics::lab_start_failed(StartFailure::MemoryFull);
            return Err(LabError::MemoryFull {
                reserved_mib: reserved >> 20,
                budget_mib: memory_budget >> 20,
                wanted_mib: wanted >> 20,
            });
        }
        let id = format!("lab-{}", uuid::Uuid::new_v4().simple());
        let lifetime = i64::try_from(expiry.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        let lab = self
            .db
            .insert_lab(&id, user_id, &lesson.slug, lifetime)
            .await?;
        let mut spec = SandboxSpec::new(&id);
        spec.image = lesson.node.image.clone();
        spec.setup = lesson.node.setup.clone();
        spec.limits = self.limits_of(&lesson.slug);
        // Holds even if this server is gone by then.
        spec.max_lifetime = Some(expiry.max_lifetime);
        let (started, receiver) = tokio::sync::watch::channel(());
        self.starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), receiver);
        let labs = self.clone();
        tokio::spawn(async move {
            labs.clone().build(spec, began).await;
            labs.starting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            drop(started);
        });
        Ok((lab, true))
    }

    /// Waits until the lab's start has ended (it is ready, or stopped for
    /// failing), at most `limit`; at once when it is not starting.
    pub async fn wait_started(&self, lab_id: &str, limit: Duration) {
        let receiver = self
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(lab_id)
            .cloned();
        if let Some(mut receiver) = receiver {
            // Never sent on: resolves with an error once the sender is gone.
            let _ = tokio::time::timeout(limit, receiver.changed()).await;
        }
    }

    async fn build(self: Arc<Self>, spec: SandboxSpec, began: Instant) {
        let id = spec.id.clone();
        if let Err(err) = self.catalog.wait_for(&spec.image).await {
            tracing::error!(lab = %id, image = %spec.image, error = %err, "lab cannot start without its image");
            self.mark_stopped(&id, &err.to_string()).await;
            return;
        }
        let host = self.host.clone();
        let created = tokio::task::spawn_blocking(move || host.create_sandbox(spec)).await;
        match created {
            Ok(Ok(_)) => match self.db.lab_ready(&id).await {
                Ok(true) => {
                    let took = began.elapsed();
                    metrics::lab_started(took);
                    let took_ms = took.as_millis() as u64;
                    tracing::info!(lab = %id, took_ms, "lab ready");
                }
                // Stopped while it was starting: the node must go too.
                Ok(false) => self.destroy_node(&id).await,
                Err(err) => {
                    metrics::lab_start_failed(StartFailure::Internal);
                    tracing::error!(lab = %id, error = %err, "cannot record a ready lab");
                    self.destroy_node(&id).await;
                    self.mark_stopped(&id, "the server could not record the lab; start it again")
                        .await;
                }
            },
            Ok(Err(err)) => {
                metrics::lab_start_failed(StartFailure::Node);
                tracing::error!(lab = %id, error = %err, "lab failed to start");
                self.mark_stopped(&id, &format!("the lab machine failed to start: {err}"))
                    .await;
            }
            Err(err) => {
                metrics::lab_start_failed(StartFailure::Internal);
                tracing::error!(lab = %id, error = %err, "lab start panicked");
                self.mark_stopped(&id, "the lab machine failed to start")
                    .await;
            }
        }
    }

    async fn mark_stopped(&self, id: &str, reason: &str) {
        if let Err(err) = self.db.lab_stopped(id, reason).await {
            tracing::error!(lab = %id, error = %err, "cannot record a stopped lab");
        }
    }

    /// Stops a lab: the row first (so its slot frees at once), then its
    /// terminals and node. A lab still starting loses its node when the
    /// start finishes.
    pub async fn stop(&self, lab: &Lab, reason: &str) -> Result<(), LabError> {
        let was_ready = lab.state == LabState::Ready;
        self.db.lab_stopped(&lab.id, reason).await?;
        self.close_terminals(&lab.id);
        if let Ok(mut touched) = self.touched.lock() {
            touched.remove(&lab.id);
        }
        if was_ready {
            self.destroy_node(&lab.id).await;
        }
        Ok(())
    }

    async fn destroy_node(&self, id: &str) {
        self.close_terminals(id);
        let host = self.host.clone();
        let owned = id.to_owned();
        match tokio::task::spawn_blocking(move || host.destroy_sandbox(&owned)).await {
            Ok(Ok(())) => tracing::info!(lab = %id, "lab machine removed"),
            Ok(Err(err)) => tracing::error!(lab = %id, error = %err, "cannot remove a lab machine"),
            Err(err) => tracing::error!(lab = %id, error = %err, "removing a lab machine panicked"),
        }
    }

    fn close_terminals(&self, lab_id: &str) {
        let mut closed = Vec::new();
        if let Ok(mut terminals) = self.terminals.lock() {
            terminals.retain(|(lab, _), hub| {
                if lab == lab_id {
                    closed.push(hub.clone());
                    false
                } else {
                    true
                }
            });
        }
        for hub in closed {
            hub.kill();
        }
    }

    /// The terminal `name` of a ready lab, opened on first use.
    pub async fn terminal(&self, lab_id: &str, name: &str) -> Result<Arc<TerminalHub>, LabError> {
        let key = (lab_id.to_owned(), name.to_owned());
        {
            let mut terminals = self.terminals.lock().map_err(|_| TerminalError::Poisoned)?;
            // A shell that ended is replaced by a fresh one.
            terminals.retain(|_, hub| !hub.exited());
            if let Some(hub) = terminals.get(&key) {
                return Ok(hub.clone());
            }
            let open = terminals.keys().filter(|(lab, _)| lab == lab_id).count();
            if open >= MAX_TERMINALS_PER_LAB {
                return Err(TerminalError::TooMany(MAX_TERMINALS_PER_LAB).into());
            }
        }
        let host = self.host.clone();
        let id = lab_id.to_owned();
        let term =
            tokio::task::spawn_blocking(move || host.open_terminal(&id, terminal::INITIAL_SIZE))
                .await??;
        let hub = TerminalHub::start(format!("{lab_id}/{name}"), term)?;
        let mut terminals = self.terminals.lock().map_err(|_| TerminalError::Poisoned)?;
        // Two sockets may have raced to open the same name: keep the first.
        let kept = terminals.entry(key).or_insert_with(|| hub.clone()).clone();
        if !Arc::ptr_eq(&kept, &hub) {
            hub.kill();
        }
        Ok(kept)
    }

    /// Ends terminal `name` of a lab (its shell is killed) and forgets it,
    /// so a reload does not bring it back; `false` when it was not open.
    pub fn close_terminal(&self, lab_id: &str, name: &str) -> bool {
        let hub = self
            .terminals
            .lock()
            .ok()
            .and_then(|mut t| t.remove(&(lab_id.to_owned(), name.to_owned())));
        match hub {
            Some(hub) => {
                hub.kill();
                true
            }
            None => false,
        }
    }

    /// Terminals open now, over all labs.
    pub fn open_terminals(&self) -> usize {
        self.terminals
            .lock()
            .map(|t| t.values().filter(|hub| !hub.exited()).count())
            .unwrap_or(0)
    }

    /// What each running node uses now, by lab id; a node that ends
    /// meanwhile is left out.
    pub async fn usage(&self) -> Result<HashMap<String, Usage>, LabError> {
        let host = self.host.clone();
        let usage = tokio::task::spawn_blocking(move || {
            host.sandboxes().map(|sessions| {
                sessions
                    .into_iter()
                    .filter(|s| s.state == SandboxState::Running)
                    .filter_map(|s| host.usage(&s.id).ok().map(|u| (s.id, u)))
                    .collect()
            })
        })
        .await??;
        Ok(usage)
    }

    /// The memory limit of a lab of `lesson`.
    pub fn memory_limit(&self, lesson: &str) -> u64 {
        self.limits_of(lesson).memory_bytes
    }

    /// Names of the lab's open terminals, `node1` first, then by name.
    pub fn terminal_names(&self, lab_id: &str) -> Vec<String> {
        let mut names: Vec<String> = match self.terminals.lock() {
            Ok(terminals) => terminals
                .iter()
                .filter(|((lab, _), hub)| lab == lab_id && !hub.exited())
                .map(|((_, name), _)| name.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort_by(|a, b| (a != "node1", a).cmp(&(b != "node1", b)));
        names
    }

    /// The lab with its deadline as of now: a running lab's `expires_at`
    /// is the earlier of its idle and lifetime deadlines, which activity
    /// moves.
    pub async fn live(&self, mut lab: Lab) -> Result<Lab, LabError> {
        if lab.state != LabState::Ready {
            return Ok(lab);
        }
        let host = self.host.clone();
        let id = lab.id.clone();
        let session = match tokio::task::spawn_blocking(move || host.sandbox(&id)).await? {
            Ok(session) => session,
            Err(err) if err.kind() == host::ErrorKind::NotFound => return Ok(lab),
            Err(err) => return Err(err.into()),
        };
        if let Some((at, reason)) = session.next_expiry(&self.limits.expiry) {
            lab.expires_at = unix_secs(at);
            lab.expires_because = Some(match reason {
                ExpiryReason::Idle => "idle",
                ExpiryReason::Lifetime | ExpiryReason::Exited => "lifetime",
            });
        }
        Ok(lab)
    }

    /// Terminal input: moves the lab's idle deadline. At most every five
    /// seconds (sooner for short timeouts), so typing costs no disk writes.
    pub fn note_activity(self: &Arc<Self>, lab_id: &str) {
        let granularity = (self.limits.expiry.idle / 4).min(Duration::from_secs(5));
        let now = Instant::now();
        {
            let Ok(mut touched) = self.touched.lock() else {
                return;
            };
            if touched
                .get(lab_id)
                .is_some_and(|last| now.duration_since(*last) < granularity)
            {
                return;
            }
            touched.insert(lab_id.to_owned(), now);
        }
        let host = self.host.clone();
        let id = lab_id.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = host.touch(&id) {
                tracing::debug!(lab = %id, error = %err, "cannot record lab activity");
            }
        });
    }

    /// Where the labs run, for the port preview's connections.
    pub fn host(&self) -> Arc<dyn SandboxHost> {
        self.host.clone()
    }

    /// Whether terminal input reached the lab lately (a quarter of the idle
    /// timeout, at most two minutes). Continuous grading runs only then:
    /// its commands count as activity and would otherwise keep an
    /// unattended lab from ever going idle.
    pub fn recently_typed(&self, lab_id: &str) -> bool {
        let window = (self.limits.expiry.idle / 4).min(Duration::from_secs(120));
        self.touched
            .lock()
            .ok()
            .and_then(|t| t.get(lab_id).copied())
            .is_some_and(|at| at.elapsed() < window)
    }

    /// Stops the labs whose time is up (idle, too old, or whose node ended)
    /// and records why.
    pub async fn reap(&self) -> Result<(), LabError> {
        let host = self.host.clone();
        let policy = self.limits.expiry;
        let expired =
            tokio::task::spawn_blocking(move || host.expire(&policy, SystemTime::now())).await??;
        for gone in expired {
            let reason = match gone.reason {
                ExpiryReason::Idle => format!(
                    "stopped after {} without activity",
                    human_duration(policy.idle)
                ),
                ExpiryReason::Lifetime => format!(
                    "stopped at its time limit of {}",
                    human_duration(policy.max_lifetime)
                ),
                ExpiryReason::Exited => "the lab machine stopped on its own".to_owned(),
            };
            tracing::info!(lab = %gone.id, %reason, "lab expired");
            self.close_terminals(&gone.id);
            if let Ok(mut touched) = self.touched.lock() {
                touched.remove(&gone.id);
            }
            self.mark_stopped(&gone.id, &reason).await;
        }
        Ok(())
    }

    /// Runs [`Labs::reap`] every `period`, for as long as the server runs.
    pub async fn reap_every(self: Arc<Self>, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = self.reap().await {
                tracing::warn!(error = %err, "cannot stop expired labs");
            }
        }
    }

    /// After a restart: nodes whose lab is still active are adopted, the
    /// rest are removed; active labs without a node are stopped.
    pub async fn reconcile(&self) -> Result<(), LabError> {
        let host = self.host.clone();
        let sessions = tokio::task::spawn_blocking(move || host.sandboxes()).await??;
        let active = self.db.active_labs().await?;
        for session in &sessions {
            let lab = active.iter().find(|l| l.id == session.id);
            match (lab, session.state) {
                (Some(lab), SandboxState::Running) => {
                    if lab.state == LabState::Starting {
                        self.db.lab_ready(&lab.id).await?;
                    }
                    tracing::info!(lab = %lab.id, "lab adopted");
                }
                (Some(lab), _) => {
                    self.destroy_node(&lab.id).await;
                    self.mark_stopped(&lab.id, "the lab machine stopped while the server was down")
                        .await;
                }
                (None, _) => {
                    tracing::info!(session = %session.id, "removing a lab machine no lab owns");
                    self.destroy_node(&session.id).await;
                }
            }
        }
        for lab in active
            .iter()
            .filter(|l| !sessions.iter().any(|s| s.id == l.id))
        {
            self.mark_stopped(
                &lab.id,
                "the lab machine was lost when the server restarted",
            )
            .await;
        }
        Ok(())
    }
}

fn unix_secs(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// "30 min", "4 h", "90 s": how the page and stop reasons name a duration.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

fn node_limits(lesson: &course::Lesson, default_cpus: f64) -> SandboxLimits {
    let defaults = SandboxLimits::default();
    let limits = &lesson.node.limits;
    SandboxLimits {
        memory_bytes: limits.memory_bytes.unwrap_or(defaults.memory_bytes),
        pids: limits.pids.map(u64::from).unwrap_or(defaults.pids),
        cpus: limits.cpus.or(Some(default_cpus)),
    }
}
