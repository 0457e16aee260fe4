//! Dockerfile bytes → [`Node`]s, as BuildKit v0.8's line parser reads them.
//!
//! - Directives (`# escape=`` ` ``, `# syntax=…`) count only at the very
//!   top, before any other line; `escape` picks the continuation and
//!   escape character (`\` or `` ` ``).
//! - A line whose first non-blank character is `#` is a comment, also in
//!   the middle of a continued instruction; blank lines there are skipped.
//! - A line ending in the escape character (trailing blanks allowed)
//!   continues on the next one.
//! - The first word is the instruction (any case), then `--name=value`
//!   flags for the instructions that take them, then the arguments.

use thiserror::Error;

/// A Dockerfile larger than this is refused before it is read.
pub const MAX_DOCKERFILE: usize = 1 << 20;
/// Instructions one Dockerfile may hold.
pub const MAX_INSTRUCTIONS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("dockerfile parse error line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("the Dockerfile is {0} bytes, more than the {MAX_DOCKERFILE} allowed")]
    TooLarge(usize),
    #[error("the Dockerfile has more than {MAX_INSTRUCTIONS} instructions")]
    TooManyInstructions,
    #[error("the Dockerfile is not UTF-8 text")]
    NotText,
    #[error("file with no instructions")]
    Empty,
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Lower case: `from`, `run`, …
    pub instruction: String,
    /// `--name=value` flags, in order (`--chown=1:1` → (`chown`, `1:1`)).
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// The instruction's text, continuations joined, as `Step N/M` shows it.
    pub original: String,
    /// 1-based lines it started and ended on.
    pub start_line: usize,
    pub end_line: usize,
}

/// An instruction's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// The text after the instruction and its flags, unsplit.
    Shell(String),
    /// A JSON list of strings: `["nginx", "-g", "daemon off;"]`.
    Exec(Vec<String>),
}

/// The parsed file: its nodes and the escape character in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub nodes: Vec<Node>,
    pub escape: char,
}

/// Instructions whose arguments may be a JSON list.
const EXEC_FORM: &[&str] = &["add", "cmd", "copy", "entrypoint", "run", "shell", "volume"];

/// Instructions whose leading `--name=value` words are flags.
const TAKES_FLAGS: &[&str] = &["add", "copy", "from", "healthcheck", "run"];

pub fn parse(bytes: &[u8]) -> Result<Dockerfile, ParseError> {
    if bytes.len() > MAX_DOCKERFILE {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotText)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let (escape, first) = directives(&lines)?;
    let mut nodes = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = String::new();
        let mut piece = line;
        loop {
            match continued(piece, escape) {
                Some(head) => {
                    joined.push_str(head);
                    i += 1;
                    // Comments and blank lines inside a continuation are skipped.
                    while i < lines.len()
                        && (lines[i].trim().is_empty() || lines[i].trim_start().starts_with('#'))
                    {
                        i += 1;
                    }
                    match lines.get(i) {
                        Some(next) => piece = next,
                        None => break,
                    }
                }
                None => {
                    joined.push_str(piece);
                    break;
                }
            }
        }
        let end = i.min(lines.len() - 1);
        i += 1;
        if nodes.len() >= MAX_INSTRUCTIONS {
            return Err(ParseError::TooManyInstructions);
        }
        nodes.push(node(joined.trim(), start + 1, end + 1)?);
    }
    if nodes.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(Dockerfile { nodes, escape })
}

/// The escape character and the index of the first line after the
/// directives.
fn directives(lines: &[&str]) -> Result<(char, usize), ParseError> {
    let mut escape = '\\';
    let mut seen = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix('#') else {
            return Ok((escape, i));
        };
        let Some((name, value)) = rest.split_once('=') else {
            return Ok((escape, i));
        };
        let name = name.trim().to_ascii_lowercase();
        if !matches!(name.as_str(), "escape" | "syntax") {
            return Ok((escape, i));
        }
        if seen.contains(&name) {
            return Err(ParseError::Line {
                line: i + 1,
                message: format!("only one {name} parser directive can be used"),
            });
        }
        if name == "escape" {
            escape = match value.trim() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(ParseError::Line {
                        line: i + 1,
                        message: format!("invalid ESCAPE '{other}'. Must be ` or \\"),
                    });
                }
            };
        }
        seen.push(name);
    }
    Ok((escape, lines.len()))
}

/// The line without its continuation mark, if it ends in one.
fn continued(line: &str, escape: char) -> Option<&str> {
    line.trim_end().strip_suffix(escape)
}

fn node(text: &str, start_line: usize, end_line: usize) -> Result<Node, ParseError> {
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(w, r)| (w, r.trim_start()));
    let instruction = word.to_ascii_lowercase();
    let mut rest = rest;
    let mut flags = Vec::new();
    if TAKES_FLAGS.contains(&instruction.as_str()) {
        while let Some(flag) = rest.strip_prefix("--") {
            let (word, tail) = flag
                .split_once(char::is_whitespace)
                .map_or((flag, ""), |(w, t)| (w, t.trim_start()));
            let (name, value) = word.split_once('=').unwrap_or((word, ""));
            if name.is_empty() {
                break;
            }
            flags.push((name.to_ascii_lowercase(), value.to_owned()));
            rest = tail;
        }
    }
    let args = if EXEC_FORM.contains(&instruction.as_str()) && rest.starts_with('[') {
        match serde_json::from_str::<serde_json::Value>(rest) {
            Ok(serde_json::Value::Array(items)) => Args::Exec(
                items
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(ParseError::Line {
                            line: start_line,
                            message: format!(
                                "{} expects a JSON list of strings, not {other}",
                                instruction.to_uppercase()
                            ),
                        }),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            // Not JSON after all: the shell form, as Docker reads it.
            _ => Args::Shell(rest.to_owned()),
        }
    } else {
        Args::Shell(rest.to_owned())
    };
    Ok(Node {
        instruction,
        flags,
        args,
        original: text.to_owned(),
        start_line,
        end_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(text: &str) -> Vec<Node> {
        parse(text.as_bytes()).expect("parses").nodes
    }

    #[test]
    fn continuations_comments_and_forms() {
        let n = nodes(
            "# syntax=docker/dockerfile:1\nFROM debian AS base\n\n# a comment\nRUN apt-get update && \\\n    # inside\n\n    apt-get install -y figlet\nCMD [\"figlet\", \"hi\"]\nCMD [\"broken\"\nCOPY --chown=1:2 --from=base a b\n",
        );
        assert_eq!(n.len(), 5);
        assert_eq!((n[0].instruction.as_str(), n[0].start_line), ("from", 2));
        assert_eq!(
            n[1].args,
            Args::Shell("apt-get update &&     apt-get install -y figlet".into())
        );
        assert_eq!((n[1].start_line, n[1].end_line), (5, 8));
        assert_eq!(n[2].args, Args::Exec(vec!["figlet".into(), "hi".into()]));
        assert_eq!(n[3].args, Args::Shell("[\"broken\"".into()));
        assert_eq!(
            n[4].flags,
            vec![
                ("chown".into(), "1:2".into()),
                ("from".into(), "base".into())
            ]
        );
        assert_eq!(n[4].args, Args::Shell("a b".into()));
    }

    #[test]
    fn the_escape_directive_changes_the_continuation() {
        let f = parse(b"# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\n").expect("parses");
        assert_eq!(f.escape, '`');
        assert_eq!(f.nodes[1].args, Args::Shell("dir c:\\   /w".into()));
        // After the first instruction, a directive is a comment.
        let f = parse(b"FROM x\n# escape=`\nRUN a \\\n b\n").expect("parses");
        assert_eq!((f.escape, f.nodes.len()), ('\\', 2));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, message) in [
            ("", "file with no instructions"),
            ("# only a comment\n", "file with no instructions"),
            ("# escape=x\nFROM a\n", "line 1: invalid ESCAPE 'x'"),
            (
                "# escape=`\n# escape=\\\nFROM a\n",
                "line 2: only one escape",
            ),
            (
                "FROM a\nRUN [\"a\", 1]\n",
                "line 2: RUN expects a JSON list of strings",
            ),
        ] {
            let e = parse(text.as_bytes()).expect_err(text).to_string();
            assert!(e.contains(message), "{text:?}: {e}");
        }
        assert!(matches!(parse(&[0xff, 0xfe]), Err(ParseError::NotText)));
        let huge = "RUN x\n".repeat(MAX_INSTRUCTIONS + 1);
        assert!(matches!(
            parse(huge.as_bytes()),
            Err(ParseError::TooManyInstructions)
        ));
    }
}
