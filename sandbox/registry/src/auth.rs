//! Basic auth from an htpasswd file with bcrypt entries (`htpasswd -B`),
//! answered with `WWW-Authenticate: Basic` so `docker login` works.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::context::lock;
use crate::error::{Code, Error};
use crate::htpasswd::Htpasswd;
use crate::state::Registry;

/// Verified `Authorization` values remembered at most; past that the set
/// starts over (a bound, not a policy).
const MAX_VERIFIED: usize = 1024;

/// `user` and `password` from a `Basic` authorization value.
pub(crate) fn credentials(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn challenge(htpasswd: &Htpasswd, detail: &str) -> Response {
    let mut response = Error::protocol(Code::Unauthorized, detail).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, htpasswd.challenge());
    response
}

/// Middleware: lets a request through when no htpasswd is configured or
/// its credentials match.
pub(crate) async fn require(
    State(registry): State<Registry>,
    request: Request,
    next: Next,
) -> Response {
    let Some(htpasswd) = registry.config().htpasswd.clone() else {
        return next.run(request).await;
    };
    let Some(value) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return challenge(&htpasswd, "log in with `docker login` (basic auth)");
    };
    if lock(&registry.inner.verified).contains(&value) {
        return next.run(request).await;
    }
    let Some((user, password)) = credentials(&value) else {
        return challenge(
            &htpasswd,
            "the Authorization header is not valid basic auth",
        );
    };
    let checker = htpasswd.clone();
    let ok = tokio::task::spawn_blocking(move || checker.verify(&user, &password))
        .await
        .unwrap_or(false);
    if !ok {
        return challenge(&htpasswd, "wrong user name or password");
    }
    {
        let mut verified = lock(&registry.inner.verified);
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(value);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_basic_credentials_are_read() {
        assert!(credentials("Basic YWxpY2U6c2VjcmV0").is_some());
        assert!(credentials("Bearer x").is_none());
        assert!(credentials("Basic !!!").is_none());
    }
}
