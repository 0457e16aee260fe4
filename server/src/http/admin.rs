//! The admin's page of accounts and API tokens: disable or enable an
//! account, revoke a token. The same as `layerlab user disable|enable` and
//! `layerlab token revoke`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::SharedState;
use super::account::NoFields;
use super::error::{AppError, PageError};
use super::session::{CsrfForm, CsrfToken, Viewer};
use crate::db::{Role, User};
use crate::templates::{self, AdminUsersPage, PageContext};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/admin/users", get(users_page))
        .route("/admin/users/{name}/{action}", post(set_status))
        .route("/admin/tokens/{id}/revoke", post(revoke))
}

fn admin(user: Option<User>) -> Result<User, AppError> {
    match user {
        Some(user) if user.role == Role::Admin => Ok(user),
        Some(_) => Err(AppError::forbidden("only admins manage accounts")),
        None => Err(AppError::unauthorized()),
    }
}

async fn users_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let user = admin(user)?;
    let users = state.db.list_users().await?;
    let tokens = state.db.list_tokens().await?;
    Ok(templates::render(&AdminUsersPage {
        page: PageContext {
            user: Some(user),
            csrf: csrf.0,
            signup_open: state.settings.signup_open,
        },
        users,
        tokens,
    }))
}

/// `POST /admin/users/{name}/disable` or `…/enable`.
async fn set_status(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    Path((name, action)): Path<(String, String)>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let user = admin(user)?;
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(AppError::not_found("an account can be disabled or enabled").into()),
    };
    if disabled && user.name == name {
        return Err(AppError::bad_request("you cannot disable your own account").into());
    }
    state.db.set_disabled(&name, disabled).await?;
    tracing::info!(account = %crate::auth::loggable(&name), by = %user.name, disabled, "account status changed");
    Ok(Redirect::to("/admin/users").into_response())
}

async fn revoke(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    Path(id): Path<String>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let user = admin(user)?;
    if !state.db.revoke_token(&id).await? {
        return Err(
            AppError::not_found(format!("there is no token {id:?}; reload the page")).into(),
        );
    }
    tracing::info!(token = %crate::auth::loggable(&id), by = %user.name, "token revoked");
    Ok(Redirect::to("/admin/users").into_response())
}
