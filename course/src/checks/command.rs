//! `command`: run something in the node, then compare exit code and output.

use serde::Serialize;

use super::pattern::Pattern;
use super::spec::{CheckSpec, shorten};
use crate::schema::{Reader, optional};
use crate::yaml::{Node, Value};

/// Long enough for `docker pull` of a catalog image, short enough that a
/// stuck check does not hold a grading request for minutes.
const MAX_TIMEOUT_SECS: u64 = 300;
const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// Passes when the command exits with `exit` and its output matches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandCheck {
    /// What to run in the node.
    pub run: Run,
    /// Seconds before the grader kills the command and fails the check.
    pub timeout_secs: u64,
    /// Expected exit status; 0 unless the author says otherwise.
    pub exit: u8,
    /// Must match somewhere in standard output.
    pub stdout: Option<Pattern>,
    /// Must match somewhere in standard error.
    pub stderr: Option<Pattern>,
}

/// How the command is given.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Run {
    /// A shell string, for `sh -c`.
    Shell(String),
    /// A program and its arguments, run without a shell.
    Argv(Vec<String>),
}

impl CheckSpec for CommandCheck {
    fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Self> {
        let f = reader.fields(
            node,
            "`command` check",
            &["run", "timeout", "exit", "stdout", "stderr"],
        )?;
        let run = f.required(reader, "run").and_then(|n| parse_run(reader, n));
        let timeout = f
            .get("timeout")
            .map(|n| reader.uint(n, "timeout", 1..=MAX_TIMEOUT_SECS));
        let exit = f.get("exit").map(|n| reader.uint(n, "exit", 0..=255));
        let stdout = optional(f.get("stdout").map(|n| reader.pattern(n, "stdout")));
        let stderr = optional(f.get("stderr").map(|n| reader.pattern(n, "stderr")));
        Some(CommandCheck {
            run: run?,
            timeout_secs: optional(timeout).ok()?.unwrap_or(DEFAULT_TIMEOUT_SECS),
            exit: optional(exit)
                .ok()?
                .map_or(Some(0), |e| u8::try_from(e).ok())?,
            stdout: stdout.ok()?,
            stderr: stderr.ok()?,
        })
    }

    fn describe(&self) -> String {
        let text = match &self.run {
            Run::Shell(s) => s.clone(),
            Run::Argv(argv) => argv.join(" "),
        };
        format!("command `{}`", shorten(&text))
    }
}

fn parse_run(reader: &mut Reader<'_>, node: &Node) -> Option<Run> {
    if let Value::Seq(items) = &node.value {
        if items.is_empty() {
            reader.error(
                node.line,
                "`run` is an empty list: give the program and its arguments",
            );
            return None;
        }
        let argv: Option<Vec<String>> = items.iter().map(|i| reader.string(i, "run")).collect();
        return argv.map(Run::Argv);
    }
    let shell = reader.string(node, "run")?;
    if shell.trim().is_empty() {
        reader.error(node.line, "`run` is empty: give the command to run");
        return None;
    }
    Some(Run::Shell(shell))
}
