//! `http`: send a request inside the node's network and look at the answer.

use std::collections::BTreeMap;

use serde::Serialize;

use super::pattern::Pattern;
use super::spec::{CheckSpec, shorten};
use crate::schema::{Reader, optional};
use crate::yaml::{Node, Value};

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Passes when the response has the status, headers and body given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCheck {
    /// `http://` or `https://` URL, resolved from inside the node.
    pub url: String,
    /// Upper-case request method; `GET` unless given.
    pub method: String,
    /// Exact status expected; `None` accepts any 2xx.
    pub status: Option<u16>,
    /// Header name (lower-cased) to a substring its value must contain.
    pub header: BTreeMap<String, String>,
    /// Substring the response body must contain.
    pub body_contains: Option<String>,
    /// Pattern that must match somewhere in the response body.
    pub body_regex: Option<Pattern>,
}

impl CheckSpec for HttpCheck {
    fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Self> {
        let f = reader.fields(
            node,
            "`http` check",
            &[
                "url",
                "method",
                "status",
                "header",
                "body_contains",
                "body_regex",
            ],
        )?;
        let url = f.required(reader, "url").and_then(|n| {
            let url = reader.string(n, "url")?;
            let valid = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len()
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                reader.error(
                    n.line,
                    format!(
                        "`url` must be an http:// or https:// URL without spaces, found `{}`",
                        shorten(&url)
                    ),
                );
                return None;
            }
            Some(url)
        });
        let method = optional(f.get("method").map(|n| {
            let m = reader.string(n, "method")?;
            if !METHODS.contains(&m.as_str()) {
                reader.error(
                    n.line,
                    format!(
                        "`method` must be one of {}, found `{}`",
                        METHODS.join(", "),
                        shorten(&m)
                    ),
                );
                return None;
            }
            Some(m)
        }));
        let status = optional(f.get("status").map(|n| reader.uint(n, "status", 100..=599)));
        let header = optional(f.get("header").map(|n| parse_headers(reader, n)));
        let body_contains = optional(
            f.get("body_contains")
                .map(|n| reader.string(n, "body_contains")),
        );
        let body_regex = optional(f.get("body_regex").map(|n| reader.pattern(n, "body_regex")));
        Some(HttpCheck {
            url: url?,
            method: method.ok()?.unwrap_or_else(|| "GET".to_string()),
            status: status.ok()?.and_then(|s| u16::try_from(s).ok()),
            header: header.ok()?.unwrap_or_default(),
            body_contains: body_contains.ok()?,
            body_regex: body_regex.ok()?,
        })
    }

    fn describe(&self) -> String {
        format!("http {} {}", self.method, shorten(&self.url))
    }
}

/// Header names are free-form keys, so they are validated as HTTP tokens
/// instead of against a list.
fn parse_headers(reader: &mut Reader<'_>, node: &Node) -> Option<BTreeMap<String, String>> {
    let Value::Map(entries) = &node.value else {
        reader.error(
            node.line,
            format!(
                "`header` must map header names to expected values, found {}",
                node.describe()
            ),
        );
        return None;
    };
    let mut headers = BTreeMap::new();
    let mut ok = true;
    for (key, value) in entries {
        let name = key.scalar().unwrap_or_default();
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            reader.error(
                key.line,
                format!("`{}` is not a valid HTTP header name", shorten(name)),
            );
            ok = false;
            continue;
        }
        match reader.string(value, "header") {
            Some(v) => {
                headers.insert(name.to_ascii_lowercase(), v);
            }
            None => ok = false,
        }
    }
    ok.then_some(headers)
}
