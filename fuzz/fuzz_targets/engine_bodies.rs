//! What a lab's `docker` CLI sends the engine: the JSON bodies of container
//! create, exec create and exec start, the `X-Registry-Auth` header of push
//! and pull, and query strings (`filters`, a resize's size, a build's tags,
//! build args and labels).
//!
//! The first byte picks the input; the rest is the body, header or query.

#![no_main]

use engine::api::fuzzing;
use engine::api::types::{CreateBody, ExecCreate, ExecStart};
use engine::distribution::Credentials;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            if let Ok(body) = serde_json::from_slice::<CreateBody>(bytes) {
                let _ = fuzzing::check_create(&body);
            }
        }
        1 => {
            let _ = serde_json::from_slice::<ExecCreate>(bytes);
        }
        2 => {
            let _ = serde_json::from_slice::<ExecStart>(bytes);
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                if let Some(credentials) = Credentials::from_header(Some(text)) {
                    assert!(!credentials.username.is_empty());
                }
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return;
            };
            if let Ok(uri) = format!("/build?{text}").parse::<http::Uri>() {
                let _ = fuzzing::query(&uri);
            }
        }
    }
});
