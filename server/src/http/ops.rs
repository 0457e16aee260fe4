//! What operators and their tools ask: `/healthz` (the process answers),
//! `/readyz` (it can serve labs), and `/metrics` (Prometheus), either on a
//! listener of its own (`--metrics-listen`, no authentication: bind it
//! where only the scraper reaches) or here behind a bearer token
//! (`--metrics-token`).
//!
//! Without a token `/metrics` is 404 here, as for any path this server
//! does not serve; with one, a request without it or with another is 401
//! with `WWW-Authenticate: Bearer`, so a misconfigured scraper says why.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::AppError;
use super::state::SharedState;
use crate::catalog::CatalogStatus;
use crate::db::LabState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_with_token))
}

/// The router of the `--metrics-listen` address: `/metrics` only.
pub fn metrics_app(state: SharedState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<SharedState>) -> Response {
    if let Err(err) = state.db.ping().await {
        tracing::warn!(error = %err, "not ready: the database does not answer");
        return not_ready("the database does not answer; the server log says why");
    }
    match state.catalog.status() {
        CatalogStatus::Ready => (StatusCode::OK, "ready").into_response(),
        status @ CatalogStatus::Preparing { .. } => not_ready(&format!(
            "preparing lab images: {status}; labs wait for them"
        )),
        CatalogStatus::Failed { error } => not_ready(&format!(
            "the lab images could not be prepared ({error}); restart the server to try again"
        )),
    }
}

/// What `/metrics` reads from the database, the labs and the store.
async fn sample(state: &SharedState) -> crate::metrics::Sample {
    let labs = match state.db.active_labs().await {
        Ok(labs) => [LabState::Starting, LabState::Ready]
            .map(|lab_state| {
                (
                    lab_state,
                    labs.iter().filter(|l| l.state == lab_state).count(),
                )
            })
            .to_vec(),
        Err(err) => {
            tracing::warn!(error = %err, "metrics: cannot count the labs");
            Vec::new()
        }
    };
    let usage = match state.labs.usage().await {
        Ok(usage) => Some((
            usage.values().map(|u| u.memory_bytes).sum(),
            usage.values().map(|u| u.pids).sum(),
        )),
        Err(err) => {
            tracing::warn!(error = %err, "metrics: cannot read the labs' usage");
            None
        }
    };
    crate::metrics::Sample {
        labs,
        terminals: state.labs.open_terminals(),
        usage,
        store_size: state.store_size.current(),
    }
}

fn not_ready(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not ready: {reason}"),
    )
        .into_response()
}

async fn metrics(State(state): State<SharedState>) -> Response {
    let text = crate::metrics::scrape(sample(&state).await);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

async fn metrics_with_token(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Some(token) = &state.settings.metrics_token else {
        return Err(AppError::not_found(
            "metrics are not served on this address; see --metrics-listen and --metrics-token",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Hashed first, so the comparison takes the same time whatever the
    // lengths.
    let matches: bool = Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(token.as_bytes()))
        .into();
    if !matches {
        let mut refused = AppError::new(
            StatusCode::UNAUTHORIZED,
            "send the metrics token as `Authorization: Bearer TOKEN`",
        )
        .into_response();
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return Ok(refused);
    }
    Ok(metrics(State(state)).await)
}
