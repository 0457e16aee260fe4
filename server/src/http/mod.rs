//! The web server: one `router()` per area, merged in [`app`], wrapped in
//! the layers every response gets (request ids, tracing, compression,
//! security headers, body limits).

mod account;
mod admin;
mod api;
pub mod assets;
mod catalog;
pub mod error;
mod grades;
mod lab_api;
mod lab_pane;
mod labs;
mod listen;
mod ops;
mod pages;
mod policy;
mod preview;
mod relay;
pub mod session;
mod state;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};

use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use policy::{content_security_policy, with_terminal_styles};
pub use state::{AppState, Settings, SharedState};

pub fn app(state: SharedState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(pages::router())
        .merge(account::router())
        .merge(admin::router())
        .merge(api::router())
        .merge(labs::router())
        .merge(grades::router())
        .merge(lab_pane::router())
        .merge(catalog::router())
        .merge(preview::router())
        .merge(assets::router())
        .merge(ops::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), session::ensure_csrf_cookie))
        .with_state(state)
        .layer(DefaultBodyLimit::max(policy::BODY_LIMIT))
        .layer(CompressionLayer::new())
        .layer(default_header(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&content_security_policy(None))
                .expect("the policy is ASCII"),
        ))
        .layer(default_header(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(default_header(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(default_header(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

fn default_header(name: HeaderName, value: HeaderValue) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, value)
}

/// Serves until `shutdown` resolves, then lets requests in flight finish;
/// with `metrics_listener`, serves `/metrics` there as long.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if metrics_listener.is_some() || state.settings.metrics_token.is_some() {
        // The first measurement of the store takes a while: start it now.
        state.store_size.current();
    }
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = metrics_listener.map(|metrics_listener| {
        tokio::spawn(listen::run(
            metrics_listener,
            ops::metrics_app(state.clone()),
            async {
                let _ = metrics_stopped.await;
            },
        ))
    });
    let janitor = tokio::spawn(housekeeping(state.clone()));
    // Often enough that a lab stops within a few seconds of its deadline
    // (a quarter of the idle timeout), rarely enough to cost nothing.
    let reap_period = (state.labs.limits().expiry.idle / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    let reaper = tokio::spawn(state.labs.clone().reap_every(reap_period));
    let result = listen::run(listener, app(state), shutdown).await;
    janitor.abort();
    reaper.abort();
    let _ = stop_metrics.send(());
    if let Some(metrics) = metrics {
        metrics.await??;
    }
    result
}

/// The hub: the catalog (store namespace `hub`) over the OCI distribution
/// API at `/v2/`, anonymous and read-only, on its own listener.
/// Periodic clean-up: expired sessions and idle rate-limit entries.
async fn housekeeping(state: SharedState) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        state.login_limiter.forget_idle();
        state.signup_limiter.forget_idle();
        state.grading.forget_idle();
        match state.db.delete_expired_sessions().await {
            Ok(n) if n > 0 => tracing::debug!(removed = n, "expired sessions removed"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not remove expired sessions"),
        }
    }
}
