//! Reading typed values out of a [`yaml::Node`] tree while collecting every
//! problem instead of stopping at the first.
//!
//! Hand-written rather than serde-derived: serde stops at the first error and
//! has no notion of source lines, and `lessons check` must list every unknown
//! key, missing key and wrong type with its line in one run.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::diagnostics::Diagnostics;
use crate::yaml::{Node, Value};

/// Collects diagnostics for one lesson.md, translating YAML lines to file lines.
pub(crate) struct Reader<'d> {
    diags: &'d mut Diagnostics,
    file: PathBuf,
    /// Lines before the YAML text in lesson.md (the opening `---`).
    line_offset: usize,
}

/// The keys of one mapping, after unknown and duplicate keys were reported.
pub(crate) struct Fields<'n> {
    /// YAML line of the mapping, where a missing key is reported.
    line: usize,
    what: String,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'d> Reader<'d> {
    pub fn new(diags: &'d mut Diagnostics, file: &Path, line_offset: usize) -> Self {
        Reader {
            diags,
            file: file.to_path_buf(),
            line_offset,
        }
    }

    /// Reports at a YAML line.
    pub fn error(&mut self, yaml_line: usize, message: impl Into<String>) {
        self.diags.push(
            self.file.clone(),
            Some(yaml_line + self.line_offset),
            message.into(),
        );
    }

    pub fn file_line(&self, yaml_line: usize) -> usize {
        yaml_line + self.line_offset
    }

    /// Checks that `node` is a mapping whose keys are all in `allowed`,
    /// reporting unknown and duplicate keys; unknown keys are left out of the
    /// result so the rest of the mapping can still be read.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.error(
                node.line,
                format!(
                    "{what} must be a mapping of `key: value` lines, found {}",
                    node.describe()
                ),
            );
            return None;
        };
        let mut fields = Fields {
            line: node.line,
            what: what.to_string(),
            entries: Vec::with_capacity(entries.len()),
        };
        for (key, value) in entries {
            let Some(name) = key.scalar() else {
                self.error(
                    key.line,
                    format!("keys in {what} must be words, found {}", key.describe()),
                );
                continue;
            };
            if !allowed.contains(&name) {
                self.error(
                    key.line,
                    format!(
                        "unknown key `{}` in {what} (expected one of: {})",
                        crate::yaml::truncate(name, 40),
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            if let Some(first) = fields.entries.iter().find(|(k, _)| *k == name) {
                let first_line = self.file_line(first.1.line);
                self.error(
                    key.line,
                    format!(
                        "duplicate key `{name}` in {what} (first at line {first_line}): keep one"
                    ),
                );
                continue;
            }
            fields.entries.push((name, value));
        }
        Some(fields)
    }

    /// Any non-null scalar reads as a string: `title: 2024` is a fine title.
    pub fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.error(
                    node.line,
                    format!("`{key}` must be text, found {}", node.describe()),
                );
                None
            }
        }
    }

    pub fn uint(&mut self, node: &Node, key: &str, range: RangeInclusive<u64>) -> Option<u64> {
        let parsed = match &node.value {
            Value::Scalar { text, plain: true } => text.parse::<u64>().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            Some(n) => {
                self.error(
                    node.line,
                    format!(
                        "`{key}` must be between {} and {}, found {n}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            None => {
                self.error(
                    node.line,
                    format!("`{key}` must be a whole number, found {}", node.describe()),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar { text, plain: true }
                if matches!(text.as_str(), "true" | "True" | "TRUE") =>
            {
                Some(true)
            }
            Value::Scalar { text, plain: true }
                if matches!(text.as_str(), "false" | "False" | "FALSE") =>
            {
                Some(false)
            }
            _ => {
                self.error(
                    node.line,
                    format!("`{key}` must be true or false, found {}", node.describe()),
                );
                None
            }
        }
    }

    pub fn list<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.error(
                    node.line,
                    format!(
                        "`{key}` must be a list (lines starting with `- `), found {}",
                        node.describe()
                    ),
                );
                None
            }
        }
    }

    /// A string that must also compile as a regular expression.
    pub fn pattern(&mut self, node: &Node, key: &str) -> Option<crate::checks::Pattern> {
        let text = self.string(node, key)?;
        match crate::checks::Pattern::new(&text) {
            Ok(p) => Some(p),
            Err(regex::Error::CompiledTooBig(limit)) => {
                self.error(
                    node.line,
                    format!("`{key}` is too large once compiled (over {limit} bytes): simplify the pattern"),
                );
                None
            }
            Err(e) => {
                // The regex crate's message spans several lines with a caret
                // drawing; the last line is the one that names the problem.
                let detail = e.to_string();
                let reason = detail.lines().last().unwrap_or("invalid").trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason);
                self.error(
                    node.line,
                    format!("`{key}` is not a valid regular expression: {reason}"),
                );
                None
            }
        }
    }
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    pub fn required(&self, reader: &mut Reader<'_>, key: &str) -> Option<&'n Node> {
        let found = self.get(key);
        if found.is_none() {
            reader.error(
                self.line,
                format!("missing required key `{key}` in {}", self.what),
            );
        }
        found
    }

    /// The keys present, in source order.
    pub fn keys(&self) -> impl Iterator<Item = (&'n str, &'n Node)> + '_ {
        self.entries.iter().copied()
    }

    pub fn line(&self) -> usize {
        self.line
    }
}

/// A value that was present but invalid; its problem is already reported.
pub(crate) struct Invalid;

/// Turns "absent / invalid / valid" (`None` / `Some(None)` / `Some(Some(v))`)
/// into something `?` can short-circuit on after every key was read.
pub(crate) fn optional<T>(parsed: Option<Option<T>>) -> Result<Option<T>, Invalid> {
    match parsed {
        None => Ok(None),
        Some(Some(v)) => Ok(Some(v)),
        Some(None) => Err(Invalid),
    }
}
