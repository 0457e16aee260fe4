//! `file`: look at a path in the node's file system. It is read by a small
//! script run in the node (never through the host's view of the node's
//! root), with the content cut at [`MAX_CONTENT`].

use course::FileCheck;
use host::SandboxHost;

use crate::{DEFAULT_TIMEOUT, Evaluate, Verdict, host_failure, quote};

/// Bytes of a file the `contains` and `regex` properties look at.
const MAX_CONTENT: usize = 1 << 20;

/// Prints `missing`, or `type|mode|owner|uid` and then (regular files) the
/// first bytes of the content. The path is `$1`, never part of the script.
const SCRIPT: &str = r#"if [ ! -e "$1" ] && [ ! -L "$1" ]; then echo missing; exit 0; fi
stat -L -c '%F|%a|%U|%u' -- "$1" || exit 3
if [ -f "$1" ]; then head -c "$2" -- "$1"; fi"#;

/// What the node said about the path.
#[derive(Debug, PartialEq)]
pub(crate) enum Seen {
    Missing,
    Present {
        kind: String,
        mode: u32,
        owner: String,
        uid: String,
        content: Option<Vec<u8>>,
    },
}

/// Parses the script's output; `None` when it is not what the script
/// prints (the node's `stat` misbehaving).
pub(crate) fn parse(out: &[u8]) -> Option<Seen> {
    if out == b"missing\n" {
        return Some(Seen::Missing);
    }
    let newline = out.iter().position(|b| *b == b'\n')?;
    let head = std::str::from_utf8(&out[..newline]).ok()?;
    let mut fields = head.split('|');
    let kind = fields.next()?.to_owned();
    let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
    let owner = fields.next()?.to_owned();
    let uid = fields.next()?.to_owned();
    let content = kind
        .starts_with("regular")
        .then(|| out[newline + 1..].to_vec());
    Some(Seen::Present {
        kind,
        mode,
        owner,
        uid,
        content,
    })
}

impl Evaluate for FileCheck {
    fn evaluate(&self, host: &dyn SandboxHost, lab: &str) -> Verdict {
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            SCRIPT.to_owned(),
            "sh".to_owned(),
            self.path.clone(),
            MAX_CONTENT.to_string(),
        ];
        let out = match host.exec(lab, &argv, DEFAULT_TIMEOUT) {
            Ok(out) => out,
            Err(e) => return host_failure(&e),
        };
        let Some(seen) = parse(&out.stdout) else {
            return Verdict::Broken(format!(
                "could not read {} in the node: {}",
                self.path,
                quote(&String::from_utf8_lossy(&out.stderr), 120)
            ));
        };
        judge(self, seen)
    }
}

/// The decision, apart from running the script, so it is testable on
/// its own.
pub(crate) fn judge(check: &FileCheck, seen: Seen) -> Verdict {
    let path = &check.path;
    let (kind, mode, owner, uid, content) = match seen {
        Seen::Missing if check.exists => return Verdict::Fail(format!("{path} does not exist")),
        Seen::Missing => return Verdict::Pass(format!("{path} does not exist")),
        Seen::Present { .. } if !check.exists => {
            return Verdict::Fail(format!("{path} exists but should not"));
        }
        Seen::Present {
            kind,
            mode,
            owner,
            uid,
            content,
        } => (kind, mode, owner, uid, content),
    };
    if let Some(want) = check.mode
        && want != mode
    {
        return Verdict::Fail(format!("{path} has mode {mode:04o}, expected {want:04o}"));
    }
    if let Some(want) = &check.owner
        && *want != owner
        && *want != uid
    {
        return Verdict::Fail(format!("{path} belongs to {owner}, expected {want}"));
    }
    if check.contains.is_some() || check.regex.is_some() {
        let Some(content) = content else {
            return Verdict::Fail(format!("{path} is a {kind}, not a regular file"));
        };
        let text = String::from_utf8_lossy(&content);
        if let Some(want) = &check.contains
            && !text.contains(want.as_str())
        {
            return Verdict::Fail(format!("{path} does not contain {}", quote(want, 60)));
        }
        if let Some(pattern) = &check.regex
            && !pattern.regex().is_match(&text)
        {
            return Verdict::Fail(format!("{path} does not match /{}/", pattern.as_str()));
        }
    }
    Verdict::Pass(verified(check, &kind, mode, &owner))
}

/// What a passing check saw, property by property, so the student reads
/// what was verified.
fn verified(check: &FileCheck, kind: &str, mode: u32, owner: &str) -> String {
    let mut seen = vec![format!("{} is a {kind}", check.path)];
    if check.mode.is_some() {
        seen.push(format!("with mode {mode:04o}"));
    }
    if check.owner.is_some() {
        seen.push(format!("owned by {owner}"));
    }
    if let Some(want) = &check.contains {
        seen.push(format!("containing {}", quote(want, 60)));
    }
    if let Some(pattern) = &check.regex {
        seen.push(format!("matching /{}/", pattern.as_str()));
    }
    seen.join(", ")
}
