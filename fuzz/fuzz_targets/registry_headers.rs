//! The registry's header parsers: `Range` on blob reads, `Content-Range` on
//! chunked uploads, the upstream's `WWW-Authenticate: Bearer` challenge,
//! `Authorization: Basic` credentials, and the `/v2/…` path router.
//!
//! The first byte picks the parser; the next eight are a blob size or an
//! upload offset; the rest is the header value.

#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use registry::fuzzing;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let selector = data[0];
    let number = u64::from_le_bytes(data[1..9].try_into().expect("eight bytes"));
    // Small sizes are where the edge cases are; keep most of them small.
    let number = if selector & 0x80 == 0 {
        number % 4096
    } else {
        number
    };
    let value = &data[9..];
    match selector % 5 {
        0 => range(value, number),
        1 => content_range(value, number),
        2 => {
            if let Ok(text) = std::str::from_utf8(value) {
                if let Some((realm, _, _)) = fuzzing::bearer_challenge(text) {
                    // Values are cut from the header, never made up.
                    assert!(text.contains(realm.as_str()));
                }
            }
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(value) {
                let _ = fuzzing::basic_credentials(text);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(value) {
                let _ = fuzzing::route(text);
            }
        }
    }
});

/// A range served lies inside the blob.
fn range(value: &[u8], size: u64) {
    let Ok(header) = HeaderValue::from_bytes(value) else {
        return;
    };
    if let Ok(Some((start, end))) = fuzzing::range(Some(&header), size) {
        assert!(
            start <= end,
            "{header:?} on {size} bytes gave {start}-{end}"
        );
        assert!(end < size, "{header:?} on {size} bytes gave {start}-{end}");
    }
}

/// A chunk accepted continues the upload at `offset`; its length, when
/// given, matches. The value splits into `Content-Range` and an optional
/// `Content-Length` at the first newline.
fn content_range(value: &[u8], offset: u64) {
    let (range, length) = match value.iter().position(|&b| b == b'\n') {
        Some(i) => (&value[..i], Some(&value[i + 1..])),
        None => (value, None),
    };
    let Ok(range) = HeaderValue::from_bytes(range) else {
        return;
    };
    let length = match length.map(HeaderValue::from_bytes) {
        None => None,
        Some(Ok(length)) => Some(length),
        Some(Err(_)) => return,
    };
    let _ = fuzzing::content_range(range, length, offset);
}
