//! Docker's classic builder (`docker build` as dockerd 20.10 runs it) for a
//! lab's engine. Today this crate holds the Dockerfile language, as
//! BuildKit's v0.8 front end (which moby 20.10 vendors) reads it:
//!
//! - [`parser`] turns bytes into [`parser::Node`]s: the `escape` and
//!   `syntax` directives, comments, line continuations, the instruction
//!   word, its `--flags` and its arguments (exec form when they are a JSON
//!   list of strings), with the lines each came from. It does not reject
//!   an instruction it does not know; that is [`instructions`]' job.
//! - [`shell`] is the word lexer: quotes, the escape character and
//!   `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}`.
//! - [`instructions`] types each node (FROM, RUN, COPY, …), with errors in
//!   Docker's words: `dockerfile parse error line 3: unknown instruction:
//!   RUNN`.
//! - [`dockerignore`] decides which paths of a context `.dockerignore`
//!   leaves out, by Docker's pattern rules.
//! - [`context`] unpacks the context the CLI sends (through the store's
//!   hostile-tar defences, bounded), reads its Dockerfile and applies
//!   `.dockerignore`.
//! - [`history`] writes each step's `created_by` line (its history line
//!   and cache key) as dockerd does.
//!
//! - [`dispatch`] runs the steps against a [`backend::Backend`] (the
//!   lab's engine, or a recorder in tests), each step's result an image
//!   whose `container_config` is its cache key; [`copy`] finds, sums and
//!   rewrites COPY and ADD sources; [`error`] is how a build fails;
//!   [`config`] is Docker's run config;
//!   [`progress`] the events the engine turns into the build stream.
//!
//! Everything here reads hostile input: sizes are bounded
//! ([`parser::MAX_DOCKERFILE`], [`parser::MAX_INSTRUCTIONS`]) and no input
//! makes it panic.

pub mod backend;
pub mod config;
pub mod context;
pub mod copy;
pub mod dispatch;
pub mod dockerignore;
pub mod error;
pub mod history;
pub mod instructions;
pub mod parser;
pub mod progress;
pub mod shell;
