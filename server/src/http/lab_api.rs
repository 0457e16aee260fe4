//! Where the lab API's routes live.

use axum::Router;

use super::state::SharedState;

/// The lab API's routes under `/api/labs`, and under `/api/sessions`, its
/// first name, which clients written before the rename still call.
pub fn nest(routes: Router<SharedState>) -> Router<SharedState> {
    Router::new()
        .nest("/api/labs", routes.clone())
        .nest("/api/sessions", routes)
}
