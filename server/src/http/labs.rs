//! Lab sessions over HTTP: start, look at, stop, and the terminal
//! websocket (DESIGN.md "HTTP API").

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::SharedState;
use super::error::AppError;
use super::session::{ApiUser, check_origin};
use crate::db::{Lab, LabState, User};
use crate::labs::LabError;
use crate::labs::terminal::{
    Catchup, Control, Event, TerminalError, TerminalHub, exit_message, parse_control, valid_name,
};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/sessions", axum::routing::post(create))
        .route("/api/sessions/{id}", get(show).delete(remove))
        .route(
            "/api/sessions/{id}/terminals/{name}",
            get(terminal).delete(close_terminal),
        )
        .route(
            "/api/sessions/{id}/terminals/{name}/watch",
            get(watch_terminal),
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
        .max_message_size(MAX_INPUT_BYTES)
        .max_frame_size(MAX_INPUT_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let read_only = watching.is_some();
            let _watching = watching;
            let activity = || labs.note_activity(&lab.id);
            let mut socket = Socket { socket, timeout };
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
            "lab {id} has no open terminal {name:?}; GET /api/sessions/{id} shows whether the lab runs"
        )))
    }
}

/// Largest message or frame a browser may send: keystrokes and pastes are
/// a few KiB (a larger paste arrives in several messages).
const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Output is written out once this much is buffered for a socket, and a
/// socket never buffers more than a batch on top of it.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
const MAX_WRITE_BUFFER_BYTES: usize = WRITE_BUFFER_BYTES + 2 * BATCH_BYTES;
/// Most output sent in one websocket frame.
const BATCH_BYTES: usize = 256 * 1024;
/// Output waiting at once that marks a flood (a PTY read is at most 4 KiB).
const FLOOD_BYTES: usize = 4096;
/// How long a flood's first bytes wait for the rest.
const FLOOD_PAUSE: Duration = Duration::from_millis(1);

/// Replays the terminal's kept output, then relays both ways until either
/// side ends. Input counts as activity (it keeps an idle lab alive). While
/// the browser has paused the stream, output is left to the ring and sent
/// from there on resume, so a flood never queues up in the server. While
/// the shell's input queue is full, one message waits here and the socket
/// is not read, so a client typing into a shell that does not read is
/// held back by TCP, and output still flows.
async fn relay(
    socket: &mut Socket,
    hub: Arc<TerminalHub>,
    activity: impl Fn(),
    read_only: bool,
) -> Result<(), RelayError> {
    let mut catchup = hub.catch_up(0)?;
    let mut seen = catchup.end;
    let mut paused = false;
    let mut pending: Option<Vec<u8>> = None;
    let mut heard = Instant::now();
    let mut ping = tokio::time::interval(socket.timeout / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    if send_catchup(socket, &mut catchup).await? {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = ping.tick() => {
                // A client held back by a full input queue is not being
                // read, so its pongs wait too: that is not silence.
                if pending.is_some() {
                    heard = Instant::now();
                }
                if heard.elapsed() >= socket.timeout {
                    return Err(RelayError::Silent(socket.timeout));
                }
                socket.send(Message::Ping(Default::default())).await?;
            }
            event = catchup.events.recv(), if !paused => {
                let mut batch = Vec::new();
                let mut exit = gather(Some(event), &hub, &mut catchup, &mut seen, &mut batch)?;
                // This much at once means a command is flooding: wait a
                // moment and take what follows along, so the flood travels
                // in few large frames. Typing never waits.
                if exit.is_none() && (FLOOD_BYTES..BATCH_BYTES).contains(&batch.len()) {
                    tokio::time::sleep(FLOOD_PAUSE).await;
                    exit = gather(None, &hub, &mut catchup, &mut seen, &mut batch)?;
                }
                if !batch.is_empty() {
                    socket.send(Message::Binary(batch.into())).await?;
                }
                if let Some(code) = exit {
                    socket.send(Message::Text(exit_message(code).into())).await?;
                    return Ok(());
                }
            }
            slot = hub.input_slot(), if pending.is_some() => {
                if let Some(bytes) = pending.take() {
                    slot?.send(bytes);
                }
            }
            message = socket.socket.recv(), if pending.is_none() => match message {
                None => return Ok(()),
                Some(message) => match message.inspect(|m| {
                    heard = Instant::now();
                    crate::metrics::websocket_received(message_len(m));
                })? {
                    Message::Binary(_) if read_only => {}
                    Message::Binary(bytes) => {
                        activity();
                        pending = Some(bytes.to_vec());
                    }
                    Message::Text(text) => match parse_control(&text) {
                        Ok(Control::Resize(_)) if read_only => {}
                        Ok(Control::Resize(size)) => hub.resize(size)?,
                        Ok(Control::Pause) => paused = true,
                        Ok(Control::Resume) if paused => {
                            paused = false;
                            catchup = hub.catch_up(seen)?;
                            seen = catchup.end;
                            if send_catchup(socket, &mut catchup).await? {
                                return Ok(());
                            }
                        }
                        Ok(Control::Resume) => {}
                        Err(message) => {
                            let error = serde_json::json!({ "type": "error", "message": message });
                            socket.send(Message::Text(error.to_string().into())).await?;
                        }
                    },
                    Message::Close(_) => return Ok(()),
                    Message::Ping(_) | Message::Pong(_) => {}
                },
            },
        }
    }
}

/// Appends `first` (or, without it, the next waiting event) and every
/// event already waiting after it to `batch`, up to [`BATCH_BYTES`]; a
/// client that fell behind is resynced from the ring. Returns the shell's
/// exit code once it ended.
fn gather(
    first: Option<Result<Event, RecvError>>,
    hub: &TerminalHub,
    catchup: &mut Catchup,
    seen: &mut u64,
    batch: &mut Vec<u8>,
) -> Result<Option<u32>, TerminalError> {
    let mut next = first.or_else(|| waiting(catchup));
    while let Some(event) = next.take() {
        match event {
            Ok(Event::Output { end, bytes }) => {
                // Output already covered by a resync arrives again; skip it.
                let fresh = end.saturating_sub(*seen).min(bytes.len() as u64) as usize;
                batch.extend_from_slice(&bytes[bytes.len() - fresh..]);
                *seen = (*seen).max(end);
            }
            Ok(Event::Exit(code)) => return Ok(Some(code)),
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                *catchup = hub.catch_up(*seen)?;
                *seen = catchup.end;
                batch.append(&mut catchup.bytes);
                if catchup.exit.is_some() {
                    return Ok(catchup.exit);
                }
            }
        }
        if batch.len() < BATCH_BYTES {
            next = waiting(catchup);
        }
    }
    Ok(None)
}

/// The next event if one is already waiting.
fn waiting(catchup: &mut Catchup) -> Option<Result<Event, RecvError>> {
    match catchup.events.try_recv() {
        Ok(event) => Some(Ok(event)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
    }
}

/// Sends a catch-up's bytes, then the exit message if the shell ended;
/// true when it did (the socket is done).
async fn send_catchup(socket: &mut Socket, catchup: &mut Catchup) -> Result<bool, RelayError> {
    if !catchup.bytes.is_empty() {
        socket
            .send(Message::Binary(std::mem::take(&mut catchup.bytes).into()))
            .await?;
    }
    if let Some(code) = catchup.exit {
        socket
            .send(Message::Text(exit_message(code).into()))
            .await?;
        return Ok(true);
    }
    Ok(false)
}

/// A terminal's websocket and how long it may stay silent or stuck.
struct Socket {
    socket: WebSocket,
    /// Without a message from the client (pongs count) for this long, or
    /// unable to take a message for this long, the socket is closed.
    timeout: Duration,
}

impl Socket {
    async fn send(&mut self, message: Message) -> Result<(), RelayError> {
        crate::metrics::websocket_sent(message_len(&message));
        match tokio::time::timeout(self.timeout, self.socket.send(message)).await {
            Ok(sent) => Ok(sent?),
            Err(_) => Err(RelayError::Stuck(self.timeout)),
        }
    }
}

/// A message's payload, as the byte counters count it.
fn message_len(message: &Message) -> usize {
    match message {
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Text(text) => text.len(),
        Message::Close(_) => 0,
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    #[error("websocket: {0}")]
    Socket(#[from] axum::Error),
    #[error("no answer to pings for {0:?}")]
    Silent(Duration),
    #[error("the client read nothing for {0:?}")]
    Stuck(Duration),
}
