//! The JSON API (DESIGN.md "HTTP API"); the pages use the same calls.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::SharedState;
use super::error::AppError;
use super::session::ApiUser;
use crate::db::User;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/lessons", get(lessons))
        .route("/api/me", get(me))
}

/// Lessons as students may see them: tasks without hint texts or checks.
async fn lessons(State(state): State<SharedState>) -> Response {
    Json(state.course.outlines()).into_response()
}

async fn me(ApiUser(user): ApiUser) -> Result<Json<User>, AppError> {
    Ok(Json(user))
}
