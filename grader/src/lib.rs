//! Evaluates the checks of a lesson's tasks against a lab's node,
//! through the [`host::SandboxHost`] seam only.
//!
//! # Principal types
//! - [`grade`] runs every check of a [`course::Task`] and returns a
//!   [`TaskResult`]; [`evaluate`] runs one [`course::Check`] into a
//!   [`CheckResult`] (`{name, passed, message}`, what the API returns).
//! - One module per check type, each implementing [`Evaluate`] for the
//!   course crate's struct of that type: `command` (run in the node),
//!   `file` (read in the node), `http` and `registry` (HTTP into the node's
//!   network with [`host::SandboxHost::http`]), `image` and `container`
//!   (the node's Docker engine as [`host::SandboxHost::engine_image`] and
//!   [`host::SandboxHost::engine_containers`] read it). A new check type is one
//!   variant of [`course::CheckKind`] plus one module here; the match in
//!   [`evaluate`] makes the compiler ask for it.
//!
//! # Invariants
//! - Nothing of the lesson or the node runs on the host: commands run in
//!   the node through `exec`, files are read there, HTTP is sent from
//!   inside the node's network namespace (the host's own 127.0.0.1 is not
//!   reachable).
//! - Every check has a deadline (the `command` check's `timeout`, else
//!   [`DEFAULT_TIMEOUT`]); a check that hangs fails with "timed out after
//!   N s" instead of holding its caller.
//! - Whatever the node answers is hostile: output and bodies are size
//!   capped, parsed without panicking, and quoted shortened in messages.
//!
//! # Messages
//! A passing check says what was seen. A failing one shows the author's
//! `fail` text when the lesson gives one, else the grader's own reason; a
//! check that could not run (timeout, node gone) always shows the grader's
//! reason, since the author's text would blame the student.
//!
//! Every function blocks; call it from a blocking thread.

mod command;
mod container;
mod file;
mod http;
mod image;
mod registry;

use std::time::Duration;

use host::SandboxHost;
use serde::{Deserialize, Serialize};

/// Deadline of checks that have no `timeout` of their own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one check, as the API and the page show it (and as
/// attempts are stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub message: String,
}

/// The outcome of a task: passed when every check passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskResult {
    pub passed: bool,
    pub checks: Vec<CheckResult>,
}

/// What a check module decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Passed; says what was seen.
    Pass(String),
    /// The node is not in the wanted state yet; says why.
    Fail(String),
    /// The check could not be evaluated (timed out, node gone); says why.
    Broken(String),
}

/// Implemented by each check type's struct of the course crate.
pub trait Evaluate {
    /// Looks at the node of lab `lab` and decides.
    fn evaluate(&self, host: &dyn SandboxHost, lab: &str) -> Verdict;
}

/// Runs every check of `task` in order (all of them, so the student sees
/// each message).
pub fn grade(host: &dyn SandboxHost, lab: &str, task: &course::Task) -> TaskResult {
    let checks: Vec<CheckResult> = task.checks.iter().map(|c| evaluate(host, lab, c)).collect();
    TaskResult {
        passed: !checks.is_empty() && checks.iter().all(|c| c.passed),
        checks,
    }
}

/// Runs one check.
pub fn evaluate(host: &dyn SandboxHost, lab: &str, check: &course::Check) -> CheckResult {
    use course::CheckKind;
    let verdict = match &check.kind {
        CheckKind::Command(c) => c.evaluate(host, lab),
        CheckKind::File(c) => c.evaluate(host, lab),
        CheckKind::Http(c) => c.evaluate(host, lab),
        CheckKind::Registry(c) => c.evaluate(host, lab),
        CheckKind::Image(c) => c.evaluate(host, lab),
        CheckKind::Container(c) => c.evaluate(host, lab),
    };
    tracing::debug!(lab, check = check.name(), ?verdict, "check evaluated");
    let (passed, message) = match verdict {
        Verdict::Pass(m) => (true, m),
        Verdict::Fail(m) => (false, check.fail.clone().unwrap_or(m)),
        Verdict::Broken(m) => (false, m),
    };
    CheckResult {
        name: check.name().to_owned(),
        passed,
        message,
    }
}

/// How a failure of the host reads to a student: timeouts with the
/// seconds waited, the rest as the host words it.
pub(crate) fn host_failure(e: &host::Error) -> Verdict {
    match e {
        host::Error::Timeout { timeout, .. } => Verdict::Broken(timed_out(*timeout)),
        host::Error::Http(host::HttpError::Timeout { timeout, .. }) => {
            Verdict::Broken(timed_out(*timeout))
        }
        host::Error::Http(host::HttpError::Invalid(_)) => Verdict::Broken(e.to_string()),
        // Nothing listening, a name the node cannot resolve, a broken
        // answer: the student's server is not there yet.
        host::Error::Http(e) => Verdict::Fail(e.to_string()),
        host::Error::NotFound(_) | host::Error::WrongState { .. } => Verdict::Broken(
            "the lab machine is not running; start the lab again and re-check".into(),
        ),
        e => {
            tracing::warn!(error = %e, "check could not run");
            Verdict::Broken("the check could not run on the lab machine; try again".into())
        }
    }
}

pub(crate) fn timed_out(timeout: Duration) -> String {
    let secs = timeout.as_secs_f64();
    if secs.fract() == 0.0 {
        format!("timed out after {} s", timeout.as_secs())
    } else {
        format!("timed out after {secs:.1} s")
    }
}

/// Quotes hostile text in a message: one line, at most `max` characters.
pub(crate) fn quote(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("\"{cut}…\"")
    } else {
        format!("\"{flat}\"")
    }
}

#[cfg(test)]
mod tests;
