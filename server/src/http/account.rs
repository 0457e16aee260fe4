//! Sign-up, login, logout and the one-time admin setup page.

use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Router, routing::post};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use axum_htmx::{HxRedirect, HxRequest};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::{AppError, PageError};
use super::session::{
    ClientAddr, CsrfForm, CsrfToken, SESSION_COOKIE, Viewer, fresh_csrf_cookie, session_cookie,
};
use super::state::SharedState;
use crate::auth::{loggable, normalize_name, password};
use crate::db::{Role, User};
use crate::templates::{self, FormState, LoginPage, PageContext, SignupPage};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/signup", get(signup_page).post(signup))
        .route("/logout", post(logout))
        .route("/setup/{token}", get(setup_page).post(setup))
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only paths on this site are followed after login: never another host.
/// Browsers drop tabs and newlines inside a URL and read `\\` as `/`, so
/// `/\t/evil.example` would become `//evil.example`: a path must start with
/// a single `/` and hold only visible ASCII, no `\\` and no `//`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
                && !n.contains("//") =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn context(state: &SharedState, user: Option<User>, csrf: &CsrfToken) -> PageContext {
    PageContext {
        user,
        csrf: csrf.0.clone(),
        signup_open: state.settings.signup_open,
    }
}

async fn login_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
    Query(query): Query<NextQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if user.is_some() {
        return Redirect::to(&next).into_response();
    }
    let form = FormState {
        csrf: csrf.0.clone(),
        name: String::new(),
        error: None,
        next,
        action: "/login".into(),
        invitation: false,
    };
    templates::render(&LoginPage {
        page: context(&state, None, &csrf),
        form,
    })
}

#[derive(Deserialize)]
struct LoginInput {
    name: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<SharedState>,
    ClientAddr(client): ClientAddr,
    HxRequest(htmx): HxRequest,
    csrf: CsrfToken,
    jar: CookieJar,
    CsrfForm(input): CsrfForm<LoginInput>,
) -> Result<Response, PageError> {
    let next = safe_next(input.next.as_deref());
    let name = input.name.trim().to_ascii_lowercase();
    let refuse = |status: StatusCode, message: String| {
        let form = FormState {
            csrf: csrf.0.clone(),
            name: name.clone(),
            error: Some(message),
            next: next.clone(),
            action: "/login".into(),
            invitation: false,
        };
        form_response(htmx, status, &state, &csrf, form, Kind::Login)
    };
    if let Err(limited) = state.login_limiter.attempt(&name, client) {
        tracing::warn!(account = %loggable(&name), peer = %client, "login rate limited");
        return Ok(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{}.", capitalize(&limited.to_string())),
        ));
    }
    let credentials = state.db.credentials(&name).await?;
    let (user, stored) = match credentials {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    let matches = state.hasher.verify(input.password, stored).await?;
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!(account = %loggable(&name), "login refused: wrong name or password");
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.".into(),
        ));
    };
    if user.disabled {
        tracing::info!(account = %user.name, "login refused: account disabled");
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "This account is disabled; ask an admin to enable it.".into(),
        ));
    }
    tracing::info!(account = %user.name, "logged in");
    Ok(start_session(&state, jar, &user, htmx, &next).await?)
}

/// Logs `user` in with a brand-new session id (never one the browser
/// already had, which defeats session fixation) and sends them on.
async fn start_session(
    state: &SharedState,
    jar: CookieJar,
    user: &User,
    htmx: bool,
    next: &str,
) -> Result<Response, AppError> {
    if let Some(old) = jar.get(SESSION_COOKIE) {
        state.db.delete_session(old.value()).await?;
    }
    let secret = state.db.create_session(&user.id).await?;
    let secure = state.settings.secure_cookies;
    // A new CSRF value too: tokens from before the login are dead.
    let jar = jar
        .add(session_cookie(secret, secure))
        .add(fresh_csrf_cookie(secure));
    Ok(go_to(jar, htmx, next))
}

fn go_to(jar: CookieJar, htmx: bool, next: &str) -> Response {
    if htmx {
        (jar, HxRedirect(next.to_string()), StatusCode::OK).into_response()
    } else {
        (jar, Redirect::to(next)).into_response()
    }
}

enum Kind {
    Login,
    Signup(&'static str),
}

/// Answers a refused form: htmx swaps just the form (it only swaps 2xx
/// answers), a plain browser gets the whole page with the real status.
fn form_response(
    htmx: bool,
    status: StatusCode,
    state: &SharedState,
    csrf: &CsrfToken,
    form: FormState,
    kind: Kind,
) -> Response {
    match (htmx, kind) {
        (true, Kind::Login) => templates::render(&templates::LoginForm { form }),
        (true, Kind::Signup(_)) => templates::render(&templates::SignupForm { form }),
        (false, Kind::Login) => (
            status,
            templates::render(&LoginPage {
                page: context(state, None, csrf),
                form,
            }),
        )
            .into_response(),
        (false, Kind::Signup(heading)) => (
            status,
            templates::render(&SignupPage {
                page: context(state, None, csrf),
                form,
                heading,
            }),
        )
            .into_response(),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

const SIGNUP_HEADING: &str = "Create your account";
const SETUP_HEADING: &str = "Create the first admin account";

async fn signup_page(
    State(state): State<SharedState>,
    Viewer(user): Viewer,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    if !state.settings.signup_open {
        return Err(AppError::forbidden(
            "sign-up is closed on this server; ask your instructor for an account",
        )
        .into());
    }
    if user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let form = FormState {
        csrf: csrf.0.clone(),
        name: String::new(),
        error: None,
        next: "/".into(),
        action: "/signup".into(),
        invitation: state.settings.signup_code.is_some(),
    };
    Ok(templates::render(&SignupPage {
        page: context(&state, None, &csrf),
        form,
        heading: SIGNUP_HEADING,
    }))
}

#[derive(Deserialize)]
struct SignupInput {
    name: String,
    password: String,
    confirm: String,
    /// Asked for when the server has a `--signup-code`.
    #[serde(default)]
    invitation: String,
}

async fn signup(
    State(state): State<SharedState>,
    ClientAddr(client): ClientAddr,
    HxRequest(htmx): HxRequest,
    csrf: CsrfToken,
    jar: CookieJar,
    CsrfForm(input): CsrfForm<SignupInput>,
) -> Result<Response, PageError> {
    if !state.settings.signup_open {
        return Err(AppError::forbidden(
            "sign-up is closed on this server; ask your instructor for an account",
        )
        .into());
    }
    create_account(&state, htmx, &csrf, jar, input, Creation::Signup { client }).await
}

/// Which form creates an account.
#[derive(Clone, Copy)]
enum Creation<'a> {
    /// Open sign-up from this client address: a student.
    Signup { client: IpAddr },
    /// The one-time setup link: the first admin.
    Setup { token: &'a str },
}

impl Creation<'_> {
    fn action(self) -> String {
        match self {
            Creation::Signup { .. } => "/signup".into(),
            Creation::Setup { token } => format!("/setup/{token}"),
        }
    }

    fn heading(self) -> &'static str {
        match self {
            Creation::Signup { .. } => SIGNUP_HEADING,
            Creation::Setup { .. } => SETUP_HEADING,
        }
    }
}

/// Validates a sign-up or setup form, creates the account and logs it in.
async fn create_account(
    state: &SharedState,
    htmx: bool,
    csrf: &CsrfToken,
    jar: CookieJar,
    input: SignupInput,
    creation: Creation<'_>,
) -> Result<Response, PageError> {
    let refuse = |status: StatusCode, message: String| {
        let form = FormState {
            csrf: csrf.0.clone(),
            name: input.name.clone(),
            error: Some(message),
            next: "/".into(),
            action: creation.action(),
            invitation: matches!(creation, Creation::Signup { .. })
                && state.settings.signup_code.is_some(),
        };
        Ok(form_response(
            htmx,
            status,
            state,
            csrf,
            form,
            Kind::Signup(creation.heading()),
        ))
    };
    if let Creation::Signup { client } = creation {
        // Counted before anything is checked, so the budget also bounds
        // guesses at the invitation code.
        if let Err(limited) = state.signup_limiter.attempt(client) {
            tracing::warn!(peer = %client, "sign-up rate limited");
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{}.", capitalize(&limited.to_string())),
            );
        }
        if let Some(code) = &state.settings.signup_code
            && !bool::from(code.as_bytes().ct_eq(input.invitation.trim().as_bytes()))
        {
            return refuse(
                StatusCode::FORBIDDEN,
                "This invitation code is not valid; ask your instructor for your class's code."
                    .into(),
            );
        }
    }
    let name = match normalize_name(&input.name) {
        Ok(name) => name,
        Err(err) => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}.", capitalize(&err.to_string())),
            );
        }
    };
    if let Err(err) = password::check_strength(&input.password) {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}.", capitalize(&err.to_string())),
        );
    }
    if input.password != input.confirm {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ.".into(),
        );
    }
    let hash = state.hasher.hash(input.password.clone()).await?;
    let created = match creation {
        Creation::Signup { .. } => state.db.create_user(&name, &hash, Role::Student).await,
        Creation::Setup { token } => state.db.create_first_admin(token, &name, &hash).await,
    };
    let user = match created {
        Ok(user) => user,
        Err(crate::db::DbError::NameTaken(_)) => {
            return refuse(
                StatusCode::CONFLICT,
                format!("The name {name:?} is taken; choose another."),
            );
        }
        Err(err) => return Err(err.into()),
    };
    tracing::info!(account = %user.name, role = %user.role, "account created");
    Ok(start_session(state, jar, &user, htmx, "/").await?)
}

async fn logout(
    State(state): State<SharedState>,
    jar: CookieJar,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        state.db.delete_session(cookie.value()).await?;
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/")).into_response())
}

/// Checks the one-time setup link; it is valid until used, and only while
/// no admin exists. (Creating the admin checks both again, atomically.)
async fn setup_allowed(state: &SharedState, token: &str) -> Result<(), AppError> {
    if state.db.setup_token_valid(token).await? {
        Ok(())
    } else {
        Err(crate::db::DbError::SetupUsed.into())
    }
}

async fn setup_page(
    State(state): State<SharedState>,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    setup_allowed(&state, &token).await?;
    let creation = Creation::Setup { token: &token };
    let form = FormState {
        csrf: csrf.0.clone(),
        name: "admin".into(),
        error: None,
        next: "/".into(),
        action: creation.action(),
        invitation: false,
    };
    Ok(templates::render(&SignupPage {
        page: context(&state, None, &csrf),
        form,
        heading: creation.heading(),
    }))
}

async fn setup(
    State(state): State<SharedState>,
    HxRequest(htmx): HxRequest,
    csrf: CsrfToken,
    jar: CookieJar,
    Path(token): Path<String>,
    CsrfForm(input): CsrfForm<SignupInput>,
) -> Result<Response, PageError> {
    setup_allowed(&state, &token).await?;
    create_account(
        &state,
        htmx,
        &csrf,
        jar,
        input,
        Creation::Setup { token: &token },
    )
    .await
}

/// A form whose only field is the CSRF token.
#[derive(Deserialize)]
pub(super) struct NoFields {}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_plain_local_paths_are_followed() {
        for good in ["/", "/lessons/x", "/lessons/x?tab=2#top", "/a%09b"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "",
            "x",
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\\evil.example",
            "/x//evil.example",
            "/ /x",
            "/\u{e9}",
            "https://evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
