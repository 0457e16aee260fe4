//! What every handler is given: the server's state and its settings.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::csrf::CsrfKey;
use crate::auth::limits::{LoginLimiter, SignupLimiter};
use crate::db::Db;

pub struct Settings {
    /// Scheme, host and port browsers use to reach us (from `--base-url`);
    /// forms and sockets from any other Origin are refused. Without it the
    /// Origin must match the Host the browser asked for.
    pub origin: Option<String>,
    /// Cookies get `Secure` when the public URL is https.
    pub secure_cookies: bool,
    pub signup_open: bool,
    /// Invitation code open sign-up asks for (`--signup-code`).
    pub signup_code: Option<String>,
    /// How long a terminal websocket may stay silent or stuck.
    pub socket_timeout: Duration,
    /// The proxies (`--trust-proxy`) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` we believe.
    pub trust_proxy: Option<crate::cli::TrustedProxies>,
    /// Bearer token that `/metrics` on this listener asks for
    /// (`--metrics-token`); without it `/metrics` is not served here.
    pub metrics_token: Option<String>,
}

pub struct AppState {
    pub db: Db,
    pub course: Arc<crate::live_course::LiveCourse>,
    /// Whether the catalog images are in the store (built at first start).
    pub catalog: Arc<crate::catalog::Catalog>,
    pub settings: Settings,
    pub csrf: CsrfKey,
    pub login_limiter: LoginLimiter,
    pub signup_limiter: SignupLimiter,
    /// Password hashing, on threads of its own (see `auth::password`).
    pub hasher: crate::auth::password::Hasher,
    pub labs: Arc<crate::labs::Labs>,
    pub grading: crate::grading::Grading,
    /// The image store's size on disk, for `/metrics`.
    pub store_size: crate::metrics::StoreSize,
}

pub type SharedState = Arc<AppState>;
