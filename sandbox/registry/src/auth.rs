//! Basic auth from an htpasswd file with bcrypt entries (`htpasswd -B`),
//! answered with `WWW-Authenticate: Basic` so `docker login` works.

use std::collections::HashMap;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::error::{Code, Error, Result};
use crate::{Registry, lock};

/// The realm a login challenge names unless [`Htpasswd::with_realm`] set
/// another.
const DEFAULT_REALM: &str = "layerlab registry";
/// Verified `Authorization` values remembered at most; past that the set
/// starts over (a bound, not a policy).
const MAX_VERIFIED: usize = 1024;

/// Users and their bcrypt hashes, and the realm of the login challenge.
#[derive(Clone)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Printable, without quotes or backslashes.
    realm: String,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hashes stay out of logs.
        f.debug_struct("Htpasswd")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("realm", &self.realm)
            .finish()
    }
}

impl Htpasswd {
    /// Reads and parses an htpasswd file.
    pub fn load(path: &Path) -> Result<Htpasswd> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::HtpasswdRead {
            path: path.display().to_string(),
            source,
        })?;
        Htpasswd::parse(&text)
    }

    /// Parses `user:hash` lines; blank lines and `#` comments are skipped.
    /// Only bcrypt hashes (`$2a$`, `$2b$`, `$2y$`) are accepted.
    pub fn parse(text: &str) -> Result<Htpasswd> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(Error::HtpasswdFormat { line: i + 1 });
            };
            if user.is_empty() || !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
                return Err(Error::HtpasswdFormat { line: i + 1 });
            }
            users.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Htpasswd {
            users,
            realm: DEFAULT_REALM.to_owned(),
        })
    }

    /// Names `realm` in the login challenge (distribution's
    /// `REGISTRY_AUTH_HTPASSWD_REALM`); quotes, backslashes and control
    /// characters are dropped so the header stays well-formed.
    pub fn with_realm(mut self, realm: &str) -> Htpasswd {
        self.realm = realm
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        self
    }

    /// The `WWW-Authenticate` value of a login challenge.
    fn challenge(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic realm=\"{}\"", self.realm))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic"))
    }

    /// Whether `user` exists and `password` matches its hash.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }
}

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
    fn bcrypt_entries_verify_and_others_are_refused() {
        let hash = bcrypt::hash("secret", 4).expect("hash");
        let file = Htpasswd::parse(&format!("# users\nalice:{hash}\n\n")).expect("parse");
        assert!(file.verify("alice", "secret"));
        assert!(!file.verify("alice", "wrong"));
        assert!(!file.verify("bob", "secret"));
        assert!(Htpasswd::parse("alice:{SHA}abc").is_err());
        assert!(Htpasswd::parse("no-colon").is_err());
        assert!(credentials("Basic YWxpY2U6c2VjcmV0").is_some());
        assert!(credentials("Bearer x").is_none());
        assert!(credentials("Basic !!!").is_none());
        assert_eq!(file.challenge(), "Basic realm=\"layerlab registry\"");
        let file = file.with_realm("Registry \"Realm\"\n\\");
        assert_eq!(file.challenge(), "Basic realm=\"Registry Realm\"");
    }
}
