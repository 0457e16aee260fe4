//! Accounts and their secrets: password hashing, name rules, login rate
//! limits and CSRF tokens. HTTP wiring lives in `http::session`.

pub mod csrf;
pub mod limits;
pub mod password;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("user names are 2 to 32 characters long")]
    Length,
    #[error(
        "user names use lowercase letters, digits, '.', '_' and '-' only, and start with a letter or digit"
    )]
    Characters,
}

/// Checks a login name and returns it in its canonical (lowercase) form.
pub fn normalize_name(name: &str) -> Result<String, NameError> {
    let name = name.trim().to_ascii_lowercase();
    if !(2..=32).contains(&name.chars().count()) {
        return Err(NameError::Length);
    }
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    let starts_well = name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !starts_well || !name.chars().all(allowed) {
        return Err(NameError::Characters);
    }
    Ok(name)
}

/// Most characters of a client-supplied name a log line shows.
const LOGGED_NAME_CHARS: usize = 64;

/// A client-supplied name as the logs show it: escaped, so a newline
/// cannot start a forged line, and cut to [`LOGGED_NAME_CHARS`].
pub fn loggable(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(LOGGED_NAME_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(LOGGED_NAME_CHARS).is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_names_are_escaped_and_cut() {
        assert_eq!(loggable("alice"), "alice");
        assert_eq!(loggable("a\nINFO forged"), "a\\nINFO forged");
        let long = loggable(&"x".repeat(20_000));
        assert_eq!(long.chars().count(), LOGGED_NAME_CHARS + 1);
    }

    #[test]
    fn names_are_normalized_or_rejected() {
        assert_eq!(normalize_name(" Alice ").as_deref(), Ok("alice"));
        assert_eq!(normalize_name("bob.smith_2").as_deref(), Ok("bob.smith_2"));
        assert_eq!(normalize_name("a"), Err(NameError::Length));
        assert_eq!(normalize_name(&"x".repeat(33)), Err(NameError::Length));
        assert_eq!(normalize_name("-bob"), Err(NameError::Characters));
        assert_eq!(normalize_name("bob smith"), Err(NameError::Characters));
        assert_eq!(normalize_name("bob/../x"), Err(NameError::Characters));
        assert_eq!(normalize_name("bøb"), Err(NameError::Characters));
    }
}
