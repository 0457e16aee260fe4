//! `layerlab`: the one binary of the platform.
//!
//! `main` parses the command line (all of it lives in [`cli`]), sets up
//! logging and hands over to one function per subcommand in [`commands`].
//! The work itself lives in the library crates and in the modules below.

mod auth;
mod bundled;
mod catalog;
mod cli;
mod commands;
mod db;
mod grading;
mod http;
mod labs;
mod live_course;
mod metrics;
mod templates;

use clap::Parser;

fn main() -> std::process::ExitCode {
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
