//! Lab sessions: the rows in the database and the nodes in the sandbox host
//! kept in step, slot limits, and the terminals that live as long as a lab.
//!
//! Every call into the [`host::SandboxHost`] blocks, so it runs on a
//! blocking thread. A lab is `starting` while its node is being built,
//! `ready` once it is up and `stopped` for good afterwards; a failed start
//! becomes `stopped` with the reason.

pub mod terminal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use host::{SandboxHost, SessionLimits, SessionSpec, SessionState};

use crate::db::{Db, DbError, Lab, LabState};
use terminal::{TerminalError, TerminalHub};

/// Most terminals one lab may have open at once.
pub const MAX_TERMINALS_PER_LAB: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("all {0} lab slots are busy, try again in a minute")]
    ServerFull(usize),
    #[error("you already have {0} labs running; stop one before starting another")]
    UserFull(usize),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error("the lab host failed: {0}")]
    Host(#[from] host::Error),
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub struct Labs {
    host: Arc<dyn SandboxHost>,
    db: Db,
    max_labs: usize,
    max_per_user: usize,
    /// Held while counting slots and inserting, so two requests cannot both
    /// take the last slot.
    admission: tokio::sync::Mutex<()>,
    terminals: Mutex<HashMap<(String, String), Arc<TerminalHub>>>,
}

impl Labs {
    pub fn new(host: Arc<dyn SandboxHost>, db: Db, max_labs: usize, max_per_user: usize) -> Labs {
        Labs {
            host,
            db,
            max_labs,
            max_per_user,
            admission: tokio::sync::Mutex::new(()),
            terminals: Mutex::new(HashMap::new()),
        }
    }

    /// The user's running lab for `lesson`, or a new one (`true` when new)
    /// whose node is being built in the background.
    pub async fn start(
        self: &Arc<Self>,
        user_id: &str,
        lesson: &course::Lesson,
    ) -> Result<(Lab, bool), LabError> {
        let _admission = self.admission.lock().await;
        if let Some(lab) = self.db.active_lab(user_id, &lesson.slug).await? {
            return Ok((lab, false));
        }
        let active = self.db.active_labs().await?;
        if active.iter().filter(|l| l.user_id == user_id).count() >= self.max_per_user {
            return Err(LabError::UserFull(self.max_per_user));
        }
        if active.len() >= self.max_labs {
            return Err(LabError::ServerFull(self.max_labs));
        }
        let id = format!("lab-{}", uuid::Uuid::new_v4().simple());
        let lab = self.db.insert_lab(&id, user_id, &lesson.slug).await?;
        let spec = spec_for(&id, lesson);
        let labs = self.clone();
        tokio::spawn(async move { labs.build(spec).await });
        Ok((lab, true))
    }

    async fn build(self: Arc<Self>, spec: SessionSpec) {
        let id = spec.id.clone();
        let host = self.host.clone();
        let created = tokio::task::spawn_blocking(move || host.create_session(spec)).await;
        match created {
            Ok(Ok(_)) => match self.db.lab_ready(&id).await {
                Ok(true) => {
                    tracing::info!(lab = %id, "lab ready");
                }
                // Stopped while it was starting: the node must go too.
                Ok(false) => self.destroy_node(&id).await,
                Err(err) => {
                    tracing::error!(lab = %id, error = %err, "cannot record a ready lab");
                    self.destroy_node(&id).await;
                    self.mark_stopped(&id, "the server could not record the lab; start it again")
                        .await;
                }
            },
            Ok(Err(err)) => {
                tracing::error!(lab = %id, error = %err, "lab failed to start");
                self.mark_stopped(&id, &format!("the lab machine failed to start: {err}"))
                    .await;
            }
            Err(err) => {
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
        if was_ready {
            self.destroy_node(&lab.id).await;
        }
        Ok(())
    }

    async fn destroy_node(&self, id: &str) {
        self.close_terminals(id);
        let host = self.host.clone();
        let owned = id.to_owned();
        match tokio::task::spawn_blocking(move || host.destroy_session(&owned)).await {
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

    /// After a restart: nodes whose lab is still active are adopted, the
    /// rest are removed; active labs without a node are stopped.
    pub async fn reconcile(&self) -> Result<(), LabError> {
        let host = self.host.clone();
        let sessions = tokio::task::spawn_blocking(move || host.sessions()).await??;
        let active = self.db.active_labs().await?;
        for session in &sessions {
            let lab = active.iter().find(|l| l.id == session.id);
            match (lab, session.state) {
                (Some(lab), SessionState::Running) => {
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

fn spec_for(id: &str, lesson: &course::Lesson) -> SessionSpec {
    let mut spec = SessionSpec::new(id);
    spec.image = lesson.node.image.clone();
    spec.setup = lesson.node.setup.clone();
    let defaults = SessionLimits::default();
    let limits = &lesson.node.limits;
    spec.limits = SessionLimits {
        memory_bytes: limits.memory_bytes.unwrap_or(defaults.memory_bytes),
        pids: limits.pids.map(u64::from).unwrap_or(defaults.pids),
        cpus: limits.cpus.or(defaults.cpus),
    };
    spec
}
