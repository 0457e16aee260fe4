//! What records are named and dated by, as Docker does: random IDs for
//! containers, exec instances, networks and volumes, the rule their
//! names follow, and RFC 3339 times.
//! A leaf every module may use.

use std::fs;
use std::time::SystemTime;

/// 64 random hex digits, as Docker's IDs.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This moment in RFC 3339 with nanoseconds, as Docker's `Created`.
pub fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Docker's rule for the names of containers, volumes and networks:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (here at most 128 characters).
pub fn valid_object_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}
