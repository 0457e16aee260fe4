//! How far the catalog images are: `GET /api/catalog` as JSON, and the
//! banner the course and lesson pages poll while they are prepared.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use super::state::SharedState;
use crate::catalog::CatalogStatus;
use crate::templates::{self, CatalogBanner, CatalogBannerPanel};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/api/catalog", get(status))
        .route("/catalog/banner", get(banner))
}

/// `{"state":"preparing","done":1,"total":7,"current":"debian"}`,
/// `{"state":"ready"}` or `{"state":"failed","error":"…"}`. Public, like
/// the pages that show it.
async fn status(State(state): State<SharedState>) -> Json<CatalogStatus> {
    Json(state.catalog.status())
}

async fn banner(State(state): State<SharedState>) -> Response {
    templates::render(&CatalogBannerPanel {
        catalog: CatalogBanner::of(&state.catalog),
    })
}
