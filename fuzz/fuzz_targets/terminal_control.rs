//! The browser terminal's control messages (text frames on the terminal
//! websocket: resize, pause, resume), as the server parses them before they
//! reach a PTY. No frame may panic the parser, and a resize it accepts is
//! one the PTY can take.

#![no_main]

use layerlab::labs::terminal::{Control, parse_control, valid_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Control::Resize(size)) = parse_control(text) {
        assert!((1..=1000).contains(&size.cols), "{text:?} gave {size:?}");
        assert!((1..=1000).contains(&size.rows), "{text:?} gave {size:?}");
    }
    // Terminal names come from the same socket's URL.
    if valid_name(text) {
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
});
