//! CSRF protection by the signed double-submit pattern: a random value in a
//! `SameSite=Strict` cookie, and in every form a token that is an HMAC of
//! that value and the browser's login session under the server's secret.
//! A forged form from another site can neither read the cookies nor
//! compute the token; and one who plants a cookie value of their own (from
//! a sibling subdomain or over plain http) still lacks the victim's
//! session, so the token they hold for that value is refused.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub struct CsrfKey([u8; 32]);

impl CsrfKey {
    pub fn random() -> CsrfKey {
        CsrfKey(rand::random())
    }

    /// Reads the key from `path`, creating it (mode 0600) on first use, so
    /// forms rendered before a restart still submit after it.
    pub fn load_or_create(path: &std::path::Path) -> std::io::Result<CsrfKey> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(CsrfKey(key));
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "form key file is damaged; making a new one")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key = CsrfKey::random();
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&key.0)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(key)
    }

    /// The token forms must carry for the given cookie value and session
    /// secret (empty when not logged in).
    pub fn token_for(&self, cookie_value: &str, session: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac takes any key length");
        // Length-prefixed, so no two (cookie, session) pairs hash alike.
        mac.update(&(cookie_value.len() as u64).to_be_bytes());
        mac.update(cookie_value.as_bytes());
        mac.update(session.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Constant-time check of a submitted token.
    pub fn verify(&self, cookie_value: &str, session: &str, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.token_for(cookie_value, session);
        !cookie_value.is_empty() && expected.as_bytes().ct_eq(token.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_its_cookie_session_and_key() {
        let key = CsrfKey::random();
        let token = key.token_for("cookie-a", "session-1");
        assert!(key.verify("cookie-a", "session-1", &token));
        assert!(!key.verify("cookie-b", "session-1", &token));
        assert!(!key.verify("cookie-a", "session-2", &token));
        assert!(!key.verify("cookie-a", "", &token));
        assert!(!key.verify("", "", &key.token_for("", "")));
        assert!(!CsrfKey::random().verify("cookie-a", "session-1", &token));
    }
}
