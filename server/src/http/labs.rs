//! Labs over HTTP: start, look at, stop, and the terminal
//! websocket (DESIGN.md "HTTP API").

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;

use super::error::AppError;
use super::relay::{self, RelayError, Socket, relay};
use super::session::{ApiUser, check_origin};
use super::state::SharedState;
use crate::db::{Lab, LabState, User};
use crate::labs::LabError;
use crate::labs::terminal::{TerminalError, TerminalHub, valid_name};

pub fn router() -> Router<SharedState> {
    super::lab_api::nest(
        Router::new()
            .route("/", axum::routing::post(create))
            .route("/{id}", get(show).delete(remove))
            .route(
                "/{id}/terminals/{name}",
                get(terminal).delete(close_terminal),
            )
            .route("/{id}/terminals/{name}/watch", get(watch_terminal)),
    )
}

impl From<LabError> for AppError {
    fn from(err: LabError) -> AppError {
        match err {
            LabError::ServerFull(_) | LabError::MemoryFull { .. } => {
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
            }
            LabError::UserFull(_) | LabError::TerminalBusy(_) | LabError::TooManySockets(_) => {
                AppError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string())
            }
            LabError::Terminal(TerminalError::TooMany(_)) => {
                AppError::new(StatusCode::CONFLICT, err.to_string())
            }
            LabError::Host(err) | LabError::Terminal(TerminalError::Resize(err)) => err.into(),
            LabError::Db(err) => err.into(),
            other => AppError::internal(other),
        }
    }
}

#[derive(Deserialize)]
struct CreateLab {
    lesson: String,
}

async fn create(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    body: Result<Json<CreateLab>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, AppError> {
    let Json(body) = body.map_err(|e| {
        AppError::bad_request(format!(
            "send JSON like {{\"lesson\":\"01-first-container\"}}: {e}"
        ))
    })?;
    let lesson = state.course.lesson(&body.lesson).ok_or_else(|| {
        AppError::not_found(format!(
            "there is no lesson {:?}; GET /api/lessons lists them",
            body.lesson
        ))
    })?;
    let (lab, created) = state.labs.start(&user.id, &lesson).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(lab)).into_response())
}

/// The lab, if it exists and belongs to `user`.
pub(super) async fn owned_lab(state: &SharedState, user: &User, id: &str) -> Result<Lab, AppError> {
    let lab = state
        .db
        .lab(id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("there is no lab {id:?}")))?;
    if lab.user_id != user.id {
        return Err(AppError::forbidden("this lab belongs to someone else"));
    }
    Ok(lab)
}

/// A 409 unless `lab` is ready; `then` tells the student what to do.
pub(super) fn require_ready(lab: &Lab, then: &str) -> Result<(), AppError> {
    if lab.state == LabState::Ready {
        return Ok(());
    }
    Err(AppError::new(
        StatusCode::CONFLICT,
        format!("the lab is {}, not ready; {then}", lab.state.as_str()),
    ))
}

/// The labs holding a slot now, oldest first, each with its owner's name.
pub(super) async fn active_labs_with_owners(
    state: &SharedState,
) -> Result<Vec<(Lab, String)>, AppError> {
    let names: std::collections::HashMap<String, String> = state
        .db
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    Ok(state
        .db
        .active_labs()
        .await?
        .into_iter()
        .map(|lab| {
            let owner = names.get(&lab.user_id).cloned().unwrap_or_default();
            (lab, owner)
        })
        .collect())
}

async fn show(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<Lab>, AppError> {
    let lab = owned_lab(&state, &user, &id).await?;
    Ok(Json(state.labs.live(lab).await?))
}

async fn remove(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let lab = owned_lab(&state, &user, &id).await?;
    if lab.state != LabState::Stopped {
        state.labs.stop(&lab, "stopped by its user").await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A request whose Origin, if any, is ours: websockets are not covered by
/// CORS, so this is what keeps other sites from opening a student's shell.
struct SameOrigin;

impl FromRequestParts<SharedState> for SameOrigin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        check_origin(parts, state)?;
        Ok(SameOrigin)
    }
}

async fn terminal(
    State(state): State<SharedState>,
    SameOrigin: SameOrigin,
    ApiUser(user): ApiUser,
    Path((id, name)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    check_terminal_name(&name)?;
    let lab = owned_lab(&state, &user, &id).await?;
    require_ready(&lab, "wait until it is ready")?;
    let slot = state.labs.admit_socket(&user.id, &lab.id, &name)?;
    let hub = state.labs.terminal(&lab.id, &name).await?;
    Ok(serve_terminal(&state, upgrade, lab, hub, slot, None))
}

/// An instructor's read-only view of a student's terminal: the same output
/// as the student sees, no input, no resizing; the student's lab pane
/// names who is watching while the socket is open.
async fn watch_terminal(
    State(state): State<SharedState>,
    SameOrigin: SameOrigin,
    ApiUser(user): ApiUser,
    Path((id, name)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, AppError> {
    if !user.role.can_teach() {
        return Err(AppError::forbidden(
            "only instructors and admins watch a student's lab",
        ));
    }
    check_terminal_name(&name)?;
    let lab = state
        .db
        .lab(&id)
        .await?
        .filter(|lab| lab.state == LabState::Ready)
        .ok_or_else(|| AppError::not_found(format!("there is no running lab {id:?}")))?;
    let slot = state.labs.admit_socket(&user.id, &lab.id, &name)?;
    let hub = state.labs.terminal(&lab.id, &name).await?;
    let watching = state.labs.watch(&lab.id, &user.name);
    Ok(serve_terminal(
        &state,
        upgrade,
        lab,
        hub,
        slot,
        Some(watching),
    ))
}

/// Relays a terminal over the upgraded socket; with `watching`, read-only.
fn serve_terminal(
    state: &SharedState,
    upgrade: WebSocketUpgrade,
    lab: Lab,
    hub: Arc<TerminalHub>,
    slot: crate::labs::SocketSlot,
    watching: Option<crate::labs::Watching>,
) -> Response {
    let labs = state.labs.clone();
    let timeout = state.settings.socket_timeout;
    upgrade
        .max_message_size(relay::MAX_INPUT_BYTES)
        .max_frame_size(relay::MAX_INPUT_BYTES)
        .write_buffer_size(relay::WRITE_BUFFER_BYTES)
        .max_write_buffer_size(relay::MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let read_only = watching.is_some();
            let _watching = watching;
            let activity = || labs.note_activity(&lab.id);
            let (sink, stream) = socket.split();
            let mut socket = Socket::new(sink, stream, timeout);
            if let Err(err) = relay(&mut socket, hub, activity, read_only).await {
                tracing::debug!(error = %err, "terminal socket ended");
                if let RelayError::Silent(_) = err {
                    // Tell a client that may still be listening why.
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: close_code::AWAY,
                            reason: err.to_string().into(),
                        })))
                        .await;
                }
            }
        })
        .into_response()
}

fn check_terminal_name(name: &str) -> Result<(), AppError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "terminal names are 1 to 32 of a-z, 0-9 and -",
        ))
    }
}

/// Ends a terminal and its shell; the lab and its other terminals go on.
async fn close_terminal(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path((id, name)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let lab = owned_lab(&state, &user, &id).await?;
    if state.labs.close_terminal(&lab.id, &name) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found(format!(
            "lab {id} has no open terminal {name:?}; GET /api/labs/{id} shows whether the lab runs"
        )))
    }
}
