//! How an area of the API (`system`, `images`, `containers`, …) takes a
//! request: it recognises its own paths and answers, or hands the request
//! on ([`Handled`]).

use axum::extract::Request;
use axum::http::Method;

use super::error::{ApiError, ApiResult};

/// Whether an area recognised the request (and its answer), or hands it on.
pub(crate) enum Handled {
    Yes(ApiResult),
    No(Request),
}

/// The rest of `path` after an area's `prefix` (`/volumes`): `""` for the
/// area itself, what follows its `/` otherwise; `None` for another area
/// (`/volumesx` is not `/volumes`).
pub(crate) fn area<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    match path.strip_prefix(prefix)? {
        "" => Some(""),
        rest => rest.strip_prefix('/'),
    }
}

/// The method must be one of `allowed`; Docker answers others with 404.
pub(crate) fn only(method: &Method, allowed: &[Method]) -> ApiResult<()> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_are_matched_whole() {
        assert_eq!(area("/volumes", "/volumes"), Some(""));
        assert_eq!(area("/volumes/data", "/volumes"), Some("data"));
        assert_eq!(area("/volumesx", "/volumes"), None);
        assert_eq!(area("/networks", "/volumes"), None);
    }
}
