//! An htpasswd file with bcrypt entries (`htpasswd -B`): the users of a
//! registry behind basic auth, and the realm its login challenge names.

use std::collections::HashMap;
use std::path::Path;

use axum::http::HeaderValue;

use crate::error::{Error, Result};

/// The realm a login challenge names unless [`Htpasswd::with_realm`] set
/// another.
const DEFAULT_REALM: &str = "layerlab registry";

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
    pub(crate) fn challenge(&self) -> HeaderValue {
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
        assert_eq!(file.challenge(), "Basic realm=\"layerlab registry\"");
        let file = file.with_realm("Registry \"Realm\"\n\\");
        assert_eq!(file.challenge(), "Basic realm=\"Registry Realm\"");
    }
}
