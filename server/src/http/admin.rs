//! The admin's pages: accounts and API tokens (disable or enable an
//! account, revoke a token; the same as `layerlab user disable|enable` and
//! `layerlab token revoke`), and the labs running now, each with a Stop
//! button.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::account::NoFields;
use super::error::{AppError, PageError};
use super::session::{CsrfForm, CsrfToken, Viewer};
use super::state::SharedState;
use crate::db::LabState;
use crate::db::{Role, User};
use crate::templates::{self, AdminLabRow, AdminLabsPage, AdminUsersPage};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/admin/users", get(users_page))
        .route("/admin/users/{name}/{action}", post(set_status))
        .route("/admin/tokens/{id}/revoke", post(revoke))
        .route("/admin/labs", get(labs_page))
        .route("/admin/labs/{id}/stop", post(stop_lab))
}

fn admin(user: Option<User>) -> Result<User, AppError> {
    match user {
        Some(user) if user.role == Role::Admin => Ok(user),
        Some(_) => Err(AppError::forbidden("only admins manage accounts and labs")),
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
        page: super::grades::page(&state, user, csrf),
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

async fn labs_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let user = admin(user)?;
    let active = super::labs::active_labs_with_owners(&state).await?;
    // The page still lists the labs when the host cannot say what they use.
    let usage = state.labs.usage().await.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "cannot read the labs' memory in use");
        HashMap::new()
    });
    let now = crate::db::now();
    let labs = active
        .into_iter()
        .map(|(lab, owner)| {
            let limit = mib(state.labs.memory_limit(&lab.lesson));
            AdminLabRow {
                owner,
                state: lab.state.as_str(),
                age: age(now - lab.created_at),
                memory: match usage.get(&lab.id) {
                    Some(used) => format!("{} of {limit}", mib(used.memory_bytes)),
                    None => format!("— of {limit}"),
                },
                lesson: lab.lesson,
                id: lab.id,
            }
        })
        .collect();
    Ok(templates::render(&AdminLabsPage {
        page: super::grades::page(&state, user, csrf),
        labs,
    }))
}

/// `POST /admin/labs/{id}/stop`: the lab ends as its student's Stop would,
/// its end reason naming the admin.
async fn stop_lab(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    Path(id): Path<String>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    let user = admin(user)?;
    let lab =
        state.db.lab(&id).await?.ok_or_else(|| {
            AppError::not_found(format!("there is no lab {id:?}; reload the page"))
        })?;
    if lab.state != LabState::Stopped {
        let reason = format!("stopped by admin {}", user.name);
        state.labs.stop(&lab, &reason).await?;
        tracing::info!(lab = %lab.id, by = %user.name, "lab stopped by an admin");
    }
    Ok(Redirect::to("/admin/labs").into_response())
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// `45 s`, `12 min`, `2 h 5 min`.
fn age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_in_the_largest_units() {
        assert_eq!(age(-3), "0 s");
        assert_eq!(age(59), "59 s");
        assert_eq!(age(61), "1 min");
        assert_eq!(age(2 * 3600 + 5 * 60 + 7), "2 h 5 min");
    }
}
