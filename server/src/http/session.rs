//! Who is asking, and is the request really theirs: session cookies,
//! bearer tokens, and CSRF checks, as extractors whose rejections are our
//! own errors.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::de::DeserializeOwned;

use super::error::{AppError, PageError};
use super::state::SharedState;
use crate::db::{User, random_secret};

pub const SESSION_COOKIE: &str = "layerlab_session";
/// The CSRF cookie's name over plain http; over https it carries the
/// `__Host-` prefix, which browsers accept only from this very host, over
/// https, for path `/`: a sibling subdomain cannot plant one.
const CSRF_COOKIE: &str = "layerlab_csrf";
const CSRF_COOKIE_HTTPS: &str = "__Host-layerlab_csrf";
/// Header carrying the CSRF token on cookie-authenticated API calls (htmx
/// and fetch set it from the page's meta tag).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Name of the hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// What a request's CSRF token is bound to: the CSRF cookie's value and
/// the session cookie's (empty when not logged in); present on every
/// request after [`ensure_csrf_cookie`] ran.
#[derive(Clone)]
struct CsrfBinding {
    cookie: String,
    session: String,
}

fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        CSRF_COOKIE_HTTPS
    } else {
        CSRF_COOKIE
    }
}

/// A CSRF cookie with a fresh value.
pub fn fresh_csrf_cookie(secure: bool) -> Cookie<'static> {
    Cookie::build((csrf_cookie_name(secure), random_secret()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .build()
}

/// Gives every browser a CSRF cookie, so any page can render a form.
pub async fn ensure_csrf_cookie(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let secure = state.settings.secure_cookies;
    let jar = CookieJar::from_headers(request.headers());
    let existing = jar
        .get(csrf_cookie_name(secure))
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty());
    let (cookie, fresh) = match existing {
        Some(value) => (value, None),
        None => {
            let fresh = fresh_csrf_cookie(secure);
            (fresh.value().to_string(), Some(fresh))
        }
    };
    let session = jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    request
        .extensions_mut()
        .insert(CsrfBinding { cookie, session });
    let mut response = next.run(request).await;
    if let Some(cookie) = fresh
        && let Ok(value) = HeaderValue::from_str(&cookie.to_string())
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The CSRF token to embed in forms and in the page's meta tag.
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken
where
    SharedState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SharedState::from_ref(state);
        let binding = csrf_binding(parts)?;
        Ok(CsrfToken(
            state.csrf.token_for(&binding.cookie, &binding.session),
        ))
    }
}

fn csrf_binding(parts: &Parts) -> Result<CsrfBinding, AppError> {
    parts
        .extensions
        .get::<CsrfBinding>()
        .cloned()
        .ok_or_else(|| AppError::internal("csrf middleware missing from the router"))
}

fn csrf_valid(state: &SharedState, parts: &Parts, token: &str) -> Result<bool, AppError> {
    let binding = csrf_binding(parts)?;
    Ok(state.csrf.verify(&binding.cookie, &binding.session, token))
}

/// How a request proved who it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proof {
    Cookie,
    Bearer,
}

async fn authenticate(
    parts: &Parts,
    state: &SharedState,
) -> Result<Option<(User, Proof)>, AppError> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                AppError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        return match state.db.token_user(token.trim()).await? {
            Some(user) => Ok(Some((user, Proof::Bearer))),
            None => Err(AppError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "this API token is not valid; create one with `layerlab token create USER`",
            )),
        };
    }
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(secret) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    Ok(state
        .db
        .session_user(&secret)
        .await?
        .map(|user| (user, Proof::Cookie)))
}

/// The logged-in user of a page, if any.
pub struct Viewer(pub Option<User>);

impl<S: Send + Sync> FromRequestParts<S> for Viewer
where
    SharedState: FromRef<S>,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SharedState::from_ref(state);
        Ok(Viewer(
            authenticate(parts, &state).await?.map(|(user, _)| user),
        ))
    }
}

/// A user calling the JSON API. Cookie-authenticated calls that change
/// something must also carry the CSRF token in `X-CSRF-Token`; bearer
/// tokens are not sent by browsers on their own, so they need none.
pub struct ApiUser(pub User);

impl<S: Send + Sync> FromRequestParts<S> for ApiUser
where
    SharedState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SharedState::from_ref(state);
        let (user, proof) = authenticate(parts, &state)
            .await?
            .ok_or_else(AppError::unauthorized)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if proof == Proof::Cookie && !safe {
            let token = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !csrf_valid(&state, parts, token)? {
                return Err(AppError::forbidden(
                    "missing or stale X-CSRF-Token header; reload the page and try again",
                ));
            }
        }
        Ok(ApiUser(user))
    }
}

/// A form submission that passed the CSRF and Origin checks.
pub struct CsrfForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for CsrfForm<T>
where
    SharedState: FromRef<S>,
{
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let state = SharedState::from_ref(state);
        let (parts, body) = request.into_parts();
        check_origin(&parts, &state)?;
        let bytes = axum::body::to_bytes(body, super::policy::BODY_LIMIT)
            .await
            .map_err(|_| {
                AppError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "the form is too large",
                )
            })?;
        let token = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !csrf_valid(&state, &parts, &token)? {
            return Err(AppError::forbidden(
                "this form expired or was sent from another site; reload the page and submit it again",
            )
            .into());
        }
        let value = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            AppError::bad_request(format!("the form is incomplete or malformed: {e}"))
        })?;
        Ok(CsrfForm(value))
    }
}

/// Browsers send `Origin` on every POST; one that is not ours means the
/// form was submitted from another site. "Ours" is the configured public
/// URL, or else the scheme we serve and the host the browser asked for.
pub fn check_origin(parts: &Parts, state: &SharedState) -> Result<(), AppError> {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let ours = match &state.settings.origin {
        Some(configured) => origin == configured,
        None => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            !host.is_empty() && origin == format!("{}://{host}", request_scheme(parts, state))
        }
    };
    if ours {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "requests from {origin:?} are not accepted here; open layerlab at its own address"
        )))
    }
}

/// The address of the client a request comes from, for rate limits.
pub struct ClientAddr(pub std::net::IpAddr);

impl FromRequestParts<SharedState> for ClientAddr {
    type Rejection = AppError;

    /// The connecting address, or behind a trusted proxy the address it
    /// reports.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .ok_or_else(|| AppError::internal("the server runs without connect info"))?;
        let proxied = proxy_says(parts, state, "x-forwarded-for").and_then(|a| a.parse().ok());
        Ok(ClientAddr(proxied.unwrap_or(peer.0.ip())))
    }
}

/// The scheme browsers use to reach us when no `--base-url` says: what a
/// trusted proxy reports in `X-Forwarded-Proto`, else plain http.
fn request_scheme<'a>(parts: &'a Parts, state: &SharedState) -> &'a str {
    proxy_says(parts, state, "x-forwarded-proto").unwrap_or("http")
}

/// For a request from a proxy named by `--trust-proxy`, the last entry of
/// the last `header`: the one that proxy added (earlier ones come from the
/// client and prove nothing). Anyone else could write any address there.
fn proxy_says<'a>(parts: &'a Parts, state: &SharedState, header: &str) -> Option<&'a str> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?;
    if !state
        .settings
        .trust_proxy
        .as_ref()
        .is_some_and(|proxies| proxies.contains(peer.0.ip()))
    {
        return None;
    }
    let value = parts.headers.get_all(header).iter().next_back()?;
    Some(value.to_str().ok()?.rsplit(',').next()?.trim())
}

/// The session cookie for a fresh login.
pub fn session_cookie(secret: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, secret))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(crate::db::SESSION_TTL_SECS))
        .build()
}
