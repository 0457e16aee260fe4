//! `.dockerignore`: which paths of a build context are left out, with the
//! rules of Docker's `fileutils.PatternMatcher` (20.10):
//!
//! - one pattern a line; blank lines and lines starting with `#` are
//!   skipped; a pattern is cleaned like a path and a leading `/` dropped;
//! - `*` matches within one path component, `?` one character, `[…]` a
//!   class, `\` escapes, and `**` any number of directories;
//! - `!pattern` brings back what an earlier pattern left out; the last
//!   pattern that matches a path decides;
//! - a pattern that matches a directory leaves out everything under it.

use regex::Regex;
use thiserror::Error;

/// Patterns one `.dockerignore` may hold.
pub const MAX_PATTERNS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IgnoreError {
    #[error("invalid .dockerignore pattern {pattern:?} on line {line}: {reason}")]
    Pattern {
        line: usize,
        pattern: String,
        reason: String,
    },
    #[error(".dockerignore has more than {MAX_PATTERNS} patterns")]
    TooMany,
}

#[derive(Debug)]
struct Pattern {
    regex: Regex,
    exclusion: bool,
}

/// The patterns of one `.dockerignore`.
#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if patterns.len() >= MAX_PATTERNS {
                return Err(IgnoreError::TooMany);
            }
            let (exclusion, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(raw);
            if cleaned.is_empty() {
                continue;
            }
            let regex = Regex::new(&to_regex(&cleaned)).map_err(|e| IgnoreError::Pattern {
                line: i + 1,
                pattern: line.to_owned(),
                reason: e.to_string(),
            })?;
            patterns.push(Pattern { regex, exclusion });
        }
        Ok(Ignore { patterns })
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut excluded = false;
        for p in &self.patterns {
            let hit = p.regex.is_match(&path) || parents.iter().any(|d| p.regex.is_match(d));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }
}

/// `./a//b/../c/` → `a/c`, with no leading `/` (Go's `filepath.Clean`,
/// then Docker's trim).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// A cleaned pattern as an anchored regular expression.
fn to_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    // `**/` is zero or more whole directories.
                    out.push_str("(.*/)?");
                    i += 1;
                } else {
                    out.push_str(".*");
                }
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '[' => {
                let end = chars[i + 1..].iter().position(|c| *c == ']');
                match end {
                    Some(len) => {
                        let class: String = chars[i + 1..i + 1 + len].iter().collect();
                        let class = class.strip_prefix('^').map_or_else(
                            || class.replace('\\', "\\\\"),
                            |rest| format!("^{}", rest.replace('\\', "\\\\")),
                        );
                        out.push('[');
                        out.push_str(&class);
                        out.push(']');
                        i += len + 1;
                    }
                    None => out.push_str("\\["),
                }
            }
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push_str(&regex::escape(&chars[i].to_string()));
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pattern|path|excluded` rows, one pattern file a row (`;` separates
    /// lines), as Docker decides them.
    const ROWS: &str = "*.md|README.md|true
*.md|docs/README.md|false
**/*.md|docs/README.md|true
**/*.md|README.md|true
docs|docs/a/b.txt|true
/docs|docs|true
./docs/|docs/x|true
node_modules|node_modules|true
*.log;!keep.log|keep.log|false
*.log;!keep.log|other.log|true
!keep.log;*.log|keep.log|true
a?c|abc|true
a?c|a/c|false
[a-c]x|bx|true
[^a-c]x|bx|false
# comment;x|# comment|false
tmp/**|tmp/a/b/c|true
tmp/**/z|tmp/z|true
tmp/**/z|tmp/a/b/z|true
\\*|*|true
a/../b|b|true";

    #[test]
    fn patterns_decide_as_dockers_do() {
        for row in ROWS.lines() {
            let mut fields = row.rsplitn(3, '|');
            let expected = fields.next().expect("expected") == "true";
            let path = fields.next().expect("path");
            let patterns = fields.next().expect("patterns").replace(';', "\n");
            let ignore = Ignore::parse(&patterns).expect(row);
            assert_eq!(ignore.excludes(path), expected, "{row}");
        }
    }

    #[test]
    fn hostile_files_are_bounded() {
        assert_eq!(
            Ignore::parse(&"a\n".repeat(MAX_PATTERNS + 1)).err(),
            Some(IgnoreError::TooMany)
        );
        // Unclosed classes and lone stars are literal or harmless, never a panic.
        for p in ["[", "[]", "\\", "****", "[\\]", "!", "!!x"] {
            let _ = Ignore::parse(p).map(|i| i.excludes("a/b"));
        }
    }
}
