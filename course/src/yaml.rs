//! A small YAML tree that remembers the line of every node.
//!
//! Built by hand from `saphyr-parser` events because the ready-made loaders
//! either forget positions or fold mappings into hash maps, and front matter
//! diagnostics need both: the line of each key and the duplicates a hash map
//! would silently drop. The builder also refuses aliases (the "billion laughs"
//! expansion) and caps nesting so a hostile file cannot exhaust the stack when
//! the tree is walked or dropped.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Deeper than any sane front matter; bounds recursion in the schema walker
/// and in `Drop`.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// 1-based line inside the YAML text (not inside lesson.md).
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `plain` scalars get YAML 1.2 core-schema typing (`10` is a number,
    /// `true` a boolean); quoted and block scalars are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in source order, duplicates kept so they can be reported.
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax problem: the parser stops at the first one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlError {
    pub line: usize,
    pub message: String,
}

impl Node {
    /// The scalar text when this is a scalar, whatever its resolved type.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if is_null(text))
    }

    /// How this node reads to an author: used in "found …" messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Scalar { text, plain } => {
                if *plain && is_null(text) {
                    "nothing".to_string()
                } else {
                    format!("`{}`", truncate(text, 40))
                }
            }
        }
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

pub(crate) fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &text[..i])),
        None => Cow::Borrowed(text),
    }
}

enum Frame {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(Node, Node)>, Option<Node>),
}

/// Parses one YAML document; `Ok(None)` when the text holds no document.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError {
            line: e.marker().line().max(1),
            message: e.info().to_string(),
        })?;
        let line = span.start.line().max(1);
        let node = match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err(YamlError {
                        line,
                        message: "more than one YAML document: keep a single mapping between the `---` lines".into(),
                    });
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(YamlError {
                    line,
                    message: "YAML aliases (`*name`) are not supported: write the value out".into(),
                });
            }
            Event::Scalar(text, style, _, tag) => {
                if tag.is_some() {
                    return Err(tag_error(line));
                }
                Node {
                    line,
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                }
            }
            Event::SequenceStart(_, ref tag) | Event::MappingStart(_, ref tag) => {
                if tag.is_some() {
                    return Err(tag_error(line));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        line,
                        message: format!(
                            "nesting deeper than {MAX_DEPTH} levels: flatten the front matter"
                        ),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(line, Vec::new())
                } else {
                    Frame::Map(line, Vec::new(), None)
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(line, items)) => Node {
                    line,
                    value: Value::Seq(items),
                },
                Some(Frame::Map(line, entries, _)) => Node {
                    line,
                    value: Value::Map(entries),
                },
                None => continue,
            },
        };
        match stack.last_mut() {
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
            None => root = Some(node),
        }
    }
    Ok(root)
}

fn tag_error(line: usize) -> YamlError {
    YamlError {
        line,
        message: "YAML tags (`!name`) are not supported: write a plain value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_source() {
        let node = parse("title: x\ntasks:\n  - id: a\n").unwrap().unwrap();
        let Value::Map(entries) = &node.value else {
            panic!("not a map: {node:?}")
        };
        assert_eq!(entries[0].0.line, 1);
        assert_eq!(entries[1].0.line, 2);
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("not a seq")
        };
        let Value::Map(task) = &items[0].value else {
            panic!("not a map")
        };
        assert_eq!(task[0].0.line, 3);
    }

    #[test]
    fn hostile_nesting_is_refused_without_overflowing() {
        let flow = "[".repeat(100_000);
        assert!(
            parse(&flow).is_err(),
            "100000 nested flow lists must be refused"
        );
        let block = format!("{}x", "- ".repeat(40));
        let err = parse(&block).unwrap_err();
        assert!(err.message.contains("nesting deeper"), "{err:?}");
    }

    #[test]
    fn aliases_are_refused() {
        let err = parse("a: &x [1, 2]\nb: *x\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("aliases"), "{err:?}");
    }
}
