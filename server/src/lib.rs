//! `layerlab`: the one binary of the platform, as a library so that tests
//! (and fuzz targets) can build its parts in process; `main.rs` only calls
//! [`main`].
//!
//! [`main`] parses the command line (all of it lives in [`cli`]), sets up
//! logging and hands over to one function per subcommand in [`commands`].
//! The work itself lives in the library crates and in the modules below.

pub mod auth;
pub mod bundled;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod db;
pub mod grading;
pub mod http;
pub mod labs;
pub mod live_course;
pub mod metrics;
pub mod templates;

use clap::Parser;

/// The whole program: what the binary's `main` runs.
pub fn main() -> std::process::ExitCode {
    // The sandbox helper is this binary re-executed with a hidden
    // subcommand; it must run before any thread exists.
    runtime::helper::main_if_requested();
    let cli = cli::Cli::parse();
    cli::init_logging(cli.global.log_format);
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole context chain on one line:
            // "what we were doing: why it failed".
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
