//! The lab pane of a lesson page, driven by htmx: start and stop the
//! lesson's lab, follow it while it starts (each request waits for the
//! start to end, so the pane turns into terminals the moment the node is
//! up), and refresh its state and time left while it runs. The same
//! `Labs` calls as the JSON API (`/api/labs`), answered with HTML
//! fragments.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_htmx::{HxReswap, HxRetarget, SwapOption};

use super::error::AppError;
use super::session::ApiUser;
use super::state::SharedState;
use crate::db::{LabState, User, now};
use crate::labs::{LabError, human_duration};
use crate::live_course::LessonRef;
use crate::templates::{self, LabPane, LabPanel, LabStatusPanel};

/// How long a request about a starting lab waits for its start to end
/// before it answers "starting": long enough that a start (tens of
/// milliseconds) answers with the terminal at once, and a slow one (the
/// first lab after the catalog changed) is followed by a request that
/// waits again, without polling on a timer.
const START_WAIT: Duration = Duration::from_secs(10);

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/lessons/{slug}/lab", get(show).post(start).delete(stop))
        .route("/lessons/{slug}/lab/status", get(status))
}

fn lesson(state: &SharedState, slug: &str) -> Result<LessonRef, AppError> {
    state.course.lesson(slug).ok_or_else(|| {
        AppError::not_found(format!(
            "there is no lesson {slug:?}; pick one from the course page"
        ))
    })
}

/// The pane as `user` should see it now: their active lab for the lesson
/// (with its live deadline), or the start button and how their last lab
/// ended.
pub async fn pane(
    state: &SharedState,
    user: Option<&User>,
    slug: &str,
) -> Result<LabPane, AppError> {
    let labs = &state.labs;
    let expiry = labs.limits().expiry;
    let mut pane = LabPane {
        slug: slug.to_owned(),
        logged_in: user.is_some(),
        lab: None,
        terminals: Vec::new(),
        last_end: None,
        error: None,
        idle_label: human_duration(expiry.idle),
        warn_secs: labs.idle_warning().as_secs(),
        now: now(),
        watchers: Vec::new(),
        waiting: None,
    };
    let Some(user) = user else {
        return Ok(pane);
    };
    match state.db.latest_lab(&user.id, slug).await? {
        Some(lab) if lab.state == LabState::Stopped => pane.last_end = lab.end_reason,
        Some(lab) => {
            if lab.state == LabState::Starting
                && let Some(lesson) = state.course.lesson(slug)
            {
                pane.waiting = state.catalog.waiting_for(&lesson.node.image);
            }
            pane.terminals = labs.terminal_names(&lab.id);
            pane.watchers = labs.watchers(&lab.id);
            pane.lab = Some(labs.live(lab).await?);
        }
        None => {}
    }
    Ok(pane)
}

/// Until the lab's start has ended, at most [`START_WAIT`]; sooner when
/// the catalog it may wait for moves on, so the pane shows how far it got.
async fn wait_started(state: &SharedState, lab_id: &str) {
    tokio::select! {
        () = state.labs.wait_started(lab_id, START_WAIT) => {}
        () = state.catalog.changed() => {}
    }
}

async fn show(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    lesson(&state, &slug)?;
    if let Some(lab) = state.db.active_lab(&user.id, &slug).await?
        && lab.state == LabState::Starting
    {
        wait_started(&state, &lab.id).await;
    }
    let pane = pane(&state, Some(&user), &slug).await?;
    Ok(templates::render(&LabPanel { pane }))
}

async fn start(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    let found = lesson(&state, &slug)?;
    let lesson = &*found;
    // A full server or a user at their limit is an answer to show in the
    // pane, not a failed request.
    let refused = match state.labs.start(&user.id, lesson).await {
        Ok((lab, _)) => {
            wait_started(&state, &lab.id).await;
            None
        }
        Err(
            err @ (LabError::ServerFull(_) | LabError::UserFull(_) | LabError::MemoryFull { .. }),
        ) => Some(err.to_string()),
        Err(err) => return Err(err.into()),
    };
    let mut pane = pane(&state, Some(&user), &slug).await?;
    pane.error = refused;
    Ok(templates::render(&LabPanel { pane }))
}

async fn stop(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    lesson(&state, &slug)?;
    if let Some(lab) = state.db.active_lab(&user.id, &slug).await? {
        state.labs.stop(&lab, "stopped by its user").await?;
    }
    let pane = pane(&state, Some(&user), &slug).await?;
    Ok(templates::render(&LabPanel { pane }))
}

/// The status line of a running lab; once the lab has stopped (its time
/// ran out, or it was stopped elsewhere) the whole pane is replaced.
async fn status(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
) -> Result<Response, AppError> {
    lesson(&state, &slug)?;
    let pane = pane(&state, Some(&user), &slug).await?;
    if pane
        .lab
        .as_ref()
        .is_some_and(|l| l.state == LabState::Ready)
    {
        return Ok(templates::render(&LabStatusPanel { pane }));
    }
    Ok((
        HxRetarget("#lab".to_owned()),
        HxReswap(SwapOption::InnerHtml),
        templates::render(&LabPanel { pane }),
    )
        .into_response())
}
