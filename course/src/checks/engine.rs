//! What the `image` and `container` checks share: rules about a Docker
//! config (environment, command words) and the names they look up in the
//! lab's engine.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::pattern::Pattern;
use super::spec::shorten;
use crate::schema::Reader;
use crate::yaml::{Node, Value};

/// Docker's own bounds on a reference's length.
const MAX_NAME: usize = 255;

// A name as `docker` accepts it on the command line: an optional registry
// host, a lowercase path, then a tag or a digest; or an image ID (prefix).
static IMAGE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?/)?",
        r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*",
        r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha(256|512):[a-f0-9]{64,128})?",
        r"|(sha256:)?[a-f0-9]{4,64})$"
    ))
    .expect("static pattern")
});

// Docker's container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
static CONTAINER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$").expect("static pattern"));

/// One rule about an environment: `NAME=value` must be set to exactly that
/// value, a bare `NAME` set to anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvRule {
    /// The variable.
    pub name: String,
    /// Its value; any when absent.
    pub value: Option<String>,
}

impl EnvRule {
    /// Whether an environment in Docker's `NAME=value` list obeys the rule.
    pub fn holds(&self, env: &[String]) -> bool {
        env.iter().any(|entry| {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            name == self.name && self.value.as_deref().is_none_or(|want| want == value)
        })
    }
}

impl std::fmt::Display for EnvRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={value}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A rule about a command (`Cmd`, `Entrypoint`, a container's command):
/// exactly these words, or a pattern over the words joined by spaces.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Words {
    /// These words, in this order (exec form).
    Exactly(Vec<String>),
    /// A pattern that matches somewhere in the words joined by spaces.
    Matching(Pattern),
}

impl Words {
    /// Whether a command's words obey the rule.
    pub fn holds(&self, words: &[String]) -> bool {
        match self {
            Words::Exactly(want) => want == words,
            Words::Matching(pattern) => pattern.regex().is_match(&words.join(" ")),
        }
    }
}

/// A list of strings; a single string is a list of one.
pub(crate) fn strings(reader: &mut Reader<'_>, node: &Node, key: &str) -> Option<Vec<String>> {
    if let Value::Scalar { .. } = node.value {
        return reader.string(node, key).map(|s| vec![s]);
    }
    let items = reader.list(node, key)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match reader.string(item, key) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub(crate) fn env_rules(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<EnvRule>> {
    let entries = strings(reader, node, "env")?;
    let mut rules = Vec::with_capacity(entries.len());
    for entry in entries {
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (entry.clone(), None),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            reader.error(
                node.line,
                format!(
                    "`env` entry `{}` is not NAME=value or NAME",
                    shorten(&entry)
                ),
            );
            return None;
        }
        rules.push(EnvRule { name, value });
    }
    Some(rules)
}

/// A list means exactly these words; text is a regular expression.
pub(crate) fn words(reader: &mut Reader<'_>, node: &Node, key: &str) -> Option<Words> {
    match node.value {
        Value::Seq(_) => strings(reader, node, key).map(Words::Exactly),
        _ => reader.pattern(node, key).map(Words::Matching),
    }
}

pub(crate) fn image_name(reader: &mut Reader<'_>, node: &Node, key: &str) -> Option<String> {
    let name = reader.string(node, key)?;
    if name.len() <= MAX_NAME && IMAGE_NAME.is_match(&name) {
        return Some(name);
    }
    reader.error(
        node.line,
        format!(
            "`{key}` `{}` is not an image name: write it as for docker run, like nginx, app:v1 or localhost:5000/app:v1",
            shorten(&name)
        ),
    );
    None
}

pub(crate) fn container_name(reader: &mut Reader<'_>, node: &Node) -> Option<String> {
    let name = reader.string(node, "name")?;
    if name.len() <= MAX_NAME && CONTAINER_NAME.is_match(&name) {
        return Some(name.trim_start_matches('/').to_owned());
    }
    reader.error(
        node.line,
        format!(
            "`name` `{}` is not a container name: letters, digits and _ . - only",
            shorten(&name)
        ),
    );
    None
}

/// Docker's `PORT[/PROTOCOL]`, normalized to `80/tcp`.
pub(crate) fn port(text: &str) -> Option<(u16, &'static str)> {
    let (number, protocol) = match text.split_once('/') {
        Some((n, "tcp")) => (n, "tcp"),
        Some((n, "udp")) => (n, "udp"),
        Some((n, "sctp")) => (n, "sctp"),
        Some(_) => return None,
        None => (text, "tcp"),
    };
    match number.parse::<u16>() {
        Ok(n) if n > 0 && number.bytes().all(|b| b.is_ascii_digit()) => Some((n, protocol)),
        _ => None,
    }
}
