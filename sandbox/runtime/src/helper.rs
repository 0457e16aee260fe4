//! The re-executed helper's entry point. A multi-threaded caller must never
//! fork or clone itself, so every namespace operation runs in a fresh,
//! single-threaded exec of the caller's own binary with a hidden subcommand.
//!
//! The binary that embeds this crate calls [`main_if_requested`] first thing
//! in `main`, before starting any thread or async runtime:
//!
//! ```no_run
//! runtime::helper::main_if_requested();
//! // ... the normal program (CLI parsing, tokio, ...)
//! ```

use std::path::PathBuf;

/// argv[1] that runs the create helper: `<exe> __layerlab-runtime-create <config.json> [<ready-fd>]`.
pub const CREATE: &str = "__layerlab-runtime-create";
/// argv[1] that runs the exec helper:
/// `<exe> __layerlab-runtime-exec --state-dir DIR [--cwd D] [--uid N] [--gid N] [--env K=V]... [--tty COLSxROWS] ID -- CMD...`.
pub const EXEC: &str = "__layerlab-runtime-exec";
/// argv[1] that runs the layer helper: `<exe> __layerlab-runtime-layer <config.json> <channel-fd>`.
pub const LAYER: &str = "__layerlab-runtime-layer";

/// Runs the helper and exits if argv asks for it; returns otherwise.
pub fn main_if_requested() {
    let mut raw = std::env::args_os().skip(1);
    let Some(first) = raw.next() else { return };
    if first != CREATE && first != EXEC && first != LAYER {
        return;
    }
    // Helper arguments are ours or validated UTF-8 from the library; refuse
    // anything else rather than panic in `std::env::args`.
    let Ok(rest) = raw
        .map(|a| a.into_string())
        .collect::<Result<Vec<String>, _>>()
    else {
        eprintln!("layerlab: helper arguments must be UTF-8");
        std::process::exit(125);
    };
    let mut args = rest.into_iter();
    match first.to_str() {
        Some(CREATE) => {
            let config: PathBuf = args.next().unwrap_or_default().into();
            let ready_fd = args.next().and_then(|a| a.parse().ok());
            std::process::exit(crate::process::create::main(&config, ready_fd))
        }
        Some(EXEC) => std::process::exit(crate::process::exec::main(args)),
        Some(LAYER) => {
            let config: PathBuf = args.next().unwrap_or_default().into();
            match args.next().and_then(|a| a.parse().ok()) {
                Some(fd) => std::process::exit(crate::process::layer::main(&config, fd)),
                None => {
                    eprintln!("layerlab: the layer helper needs its channel descriptor");
                    std::process::exit(125);
                }
            }
        }
        _ => {}
    }
}
