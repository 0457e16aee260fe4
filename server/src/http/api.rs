//! The JSON API (DESIGN.md "HTTP API"); the pages use the same calls.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::error::AppError;
use super::session::ApiUser;
use super::state::SharedState;
use crate::db::User;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/lessons", get(lessons))
        .route("/api/me", get(me))
        .route("/api/course/version", get(course_version))
}

/// How many times a watched course was reloaded (`serve --watch`): open
/// pages reload when it moves. 404 when the course is not watched.
async fn course_version(State(state): State<SharedState>) -> Result<Response, AppError> {
    let version = state.course.version().ok_or_else(|| {
        AppError::not_found("the course is not watched: start the server with --watch")
    })?;
    Ok(Json(serde_json::json!({ "version": version })).into_response())
}

/// Lessons as students may see them: tasks without hint texts or checks.
async fn lessons(State(state): State<SharedState>) -> Response {
    Json(state.course.course().outlines()).into_response()
}

async fn me(ApiUser(user): ApiUser) -> Result<Json<User>, AppError> {
    Ok(Json(user))
}
