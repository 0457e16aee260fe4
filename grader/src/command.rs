//! `command`: run something in the node, then compare its exit code and
//! output.

use std::time::Duration;

use course::{CommandCheck, Pattern, Run};
use host::SandboxHost;

use crate::{Evaluate, Verdict, host_failure, quote};

impl Evaluate for CommandCheck {
    fn evaluate(&self, host: &dyn SandboxHost, lab: &str) -> Verdict {
        let argv = match &self.run {
            Run::Shell(script) => vec!["sh".to_owned(), "-c".to_owned(), script.clone()],
            Run::Argv(argv) => argv.clone(),
        };
        let out = match host.exec(lab, &argv, Duration::from_secs(self.timeout_secs)) {
            Ok(out) => out,
            Err(e) => return host_failure(&e),
        };
        let code = match (out.status.code, out.status.signal) {
            (Some(code), _) => code,
            (None, Some(signal)) => {
                return Verdict::Fail(format!("the command was killed by signal {signal}"));
            }
            (None, None) => -1,
        };
        if code != i32::from(self.exit) {
            let said = last_line(&out.stderr).or_else(|| last_line(&out.stdout));
            return Verdict::Fail(match said {
                Some(line) => format!(
                    "the command exited with {code}, expected {}: {}",
                    self.exit,
                    quote(&line, 120)
                ),
                None => format!("the command exited with {code}, expected {}", self.exit),
            });
        }
        for (stream, bytes, pattern) in [
            ("output", &out.stdout, &self.stdout),
            ("error output", &out.stderr, &self.stderr),
        ] {
            if let Some(pattern) = pattern
                && !matches(pattern, bytes)
            {
                return Verdict::Fail(format!(
                    "the command's {stream} does not match /{}/",
                    pattern.as_str()
                ));
            }
        }
        let shown = match &self.run {
            Run::Shell(script) => quote(script, 60),
            Run::Argv(argv) => quote(&argv.join(" "), 60),
        };
        let mut seen = format!("{shown} exited with {code}");
        for (stream, pattern) in [("printed", &self.stdout), ("reported", &self.stderr)] {
            if let Some(pattern) = pattern {
                seen.push_str(&format!(" and {stream} what /{}/ asks", pattern.as_str()));
            }
        }
        Verdict::Pass(seen)
    }
}

fn matches(pattern: &Pattern, bytes: &[u8]) -> bool {
    pattern.regex().is_match(&String::from_utf8_lossy(bytes))
}

fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned)
}
