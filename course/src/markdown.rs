//! Lesson bodies: Markdown to sanitized HTML, with run buttons, heading
//! anchors and lesson-relative URLs rewritten.
//!
//! Order matters for safety. The author's Markdown (and any raw HTML in it)
//! is rendered and then sanitized by ammonia; code blocks are rendered by us
//! and spliced in only after sanitizing, through placeholders made of a
//! private-use character that is scrubbed from the author's text first. So
//! the `data-command` buttons exist exactly where a `run` block was written,
//! and an author's own `<button data-command=…>` is stripped like any other
//! unknown markup.
//!
//! Only Markdown links and images are checked and rewritten; URLs inside an
//! author's raw HTML are sanitized but left as written.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use percent_encoding::percent_decode_str;
use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};
use pulldown_cmark_escape::{escape_html, escape_html_body_text};

use crate::assets;
use crate::diagnostics::Diagnostics;

/// Marks a spliced block: `\u{E000}<index>\u{E000}`.
const SENTINEL: char = '\u{E000}';

/// html5ever, under ammonia, takes time quadratic in element nesting (8000
/// nested lists take seconds), so depth and raw tags are bounded before
/// sanitizing. Real lessons stay far below both.
const MAX_DEPTH: usize = 64;
const MAX_RAW_TAGS: usize = 2000;

/// What rendering a body needs to know about its surroundings.
pub(crate) struct Context<'a> {
    pub slug: &'a str,
    /// Every lesson slug in the course, for checking lesson links.
    pub slugs: &'a BTreeSet<String>,
    pub lesson_dir: &'a Path,
    /// lesson.md relative to the course directory, for diagnostics.
    pub file: &'a Path,
    /// Line of the body's first line inside lesson.md.
    pub body_line: usize,
}

pub(crate) fn render(body: &str, cx: &Context<'_>, diags: &mut Diagnostics) -> String {
    let body = body.replace(SENTINEL, "\u{FFFD}");
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(body.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |offset: usize| cx.body_line + line_starts.partition_point(|&s| s <= offset) - 1;

    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let mut events: Vec<Event<'_>> = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut code: Option<(Option<String>, String)> = None;
    let mut heading: Option<(usize, Vec<Event<'_>>)> = None;
    let mut heading_ids: HashMap<String, usize> = HashMap::new();
    let (mut depth, mut deepest, mut raw_tags) = (0usize, (0usize, 0usize), 0usize);

    for (event, range) in Parser::new_ext(&body, options).into_offset_iter() {
        let line = line_of(range.start);
        match &event {
            Event::Start(_) => {
                depth += 1;
                if depth > deepest.0 {
                    deepest = (depth, line);
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Html(html) | Event::InlineHtml(html) => {
                raw_tags += html
                    .as_bytes()
                    .windows(2)
                    .filter(|w| w[0] == b'<' && w[1].is_ascii_alphabetic())
                    .count();
            }
            _ => {}
        }
        let event = match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let info = match kind {
                    CodeBlockKind::Fenced(info) => Some(info.to_string()),
                    CodeBlockKind::Indented => None,
                };
                code = Some((info, String::new()));
                continue;
            }
            Event::Text(text) if code.is_some() => {
                if let Some((_, buf)) = code.as_mut() {
                    buf.push_str(&text);
                }
                continue;
            }
            Event::End(TagEnd::CodeBlock) => {
                let Some((info, text)) = code.take() else {
                    continue;
                };
                blocks.push(code_block(info.as_deref(), &text));
                Event::Html(format!("{SENTINEL}{}{SENTINEL}", blocks.len() - 1).into())
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: resolve_url(&dest_url, line, cx, diags).into(),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: resolve_url(&dest_url, line, cx, diags).into(),
                title,
                id,
            }),
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some((level as usize, Vec::new()));
                continue;
            }
            Event::End(TagEnd::Heading(level)) => {
                let Some((_, inner)) = heading.take() else {
                    continue;
                };
                let id = unique_id(&mut heading_ids, &heading_text(&inner));
                events.push(Event::Start(Tag::Heading {
                    level,
                    id: Some(CowStr::from(id)),
                    classes: Vec::new(),
                    attrs: Vec::new(),
                }));
                events.extend(inner);
                Event::End(TagEnd::Heading(level))
            }
            other => other,
        };
        match heading.as_mut() {
            Some((_, inner)) => inner.push(event),
            None => events.push(event),
        }
    }

    if deepest.0 > MAX_DEPTH {
        let message = format!(
            "Markdown nested {} levels deep here, more than the {MAX_DEPTH} allowed: flatten the lists and quotes",
            deepest.0
        );
        diags.push(cx.file, Some(deepest.1), message);
        return String::new();
    }
    if raw_tags > MAX_RAW_TAGS {
        let message = format!(
            "{raw_tags} raw HTML tags, more than the {MAX_RAW_TAGS} allowed: write the content in Markdown"
        );
        diags.push(cx.file, Some(cx.body_line), message);
        return String::new();
    }

    let mut raw = String::with_capacity(body.len() * 2);
    html::push_html(&mut raw, events.into_iter());
    let clean = sanitizer().clean(&raw).to_string();
    splice(&clean, &blocks)
}

/// ammonia's defaults (no scripts, styles, event handlers, iframes, forms or
/// `javascript:` URLs) plus exactly what pulldown-cmark emits for GFM
/// extensions and what our heading anchors need.
fn sanitizer() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    b.add_tags(["input"])
        .add_tag_attributes("input", ["type", "checked", "disabled"])
        .add_tag_attributes("th", ["style"])
        .add_tag_attributes("td", ["style"])
        .add_tag_attributes("div", ["id"])
        .filter_style_properties(HashSet::from(["text-align"]))
        .add_allowed_classes("sup", ["footnote-reference", "footnote-definition-label"])
        .add_allowed_classes("div", ["footnote-definition"])
        .attribute_filter(|element, attribute, value| {
            // Task-list checkboxes only: a text field in a lesson page could
            // be dressed up to collect passwords.
            if element == "input" && attribute == "type" && value != "checkbox" {
                return Some("checkbox".into());
            }
            Some(value.into())
        });
    for h in ["h1", "h2", "h3", "h4", "h5", "h6"] {
        b.add_tag_attributes(h, ["id"]);
    }
    b
}

/// A fenced block whose info string has the word `run` gets a button that
/// types the command into the terminal; every other block is plain code.
fn code_block(info: Option<&str>, text: &str) -> String {
    let words: Vec<&str> = info
        .unwrap_or("")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let runnable = words.contains(&"run");
    let language = words
        .iter()
        .find(|w| **w != "run")
        .copied()
        .or(runnable.then_some("bash"))
        .filter(|l| {
            l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+-.#".contains(&b))
        });

    let mut out = String::new();
    if runnable {
        out.push_str("<div class=\"code-run\">");
    }
    out.push_str("<pre><code");
    if let Some(language) = language {
        out.push_str(" class=\"language-");
        push_escaped(&mut out, language);
        out.push('"');
    }
    out.push('>');
    // Writing into a String cannot fail.
    let _ = escape_html_body_text(&mut out, text);
    out.push_str("</code></pre>");
    if runnable {
        let command = text.strip_suffix('\n').unwrap_or(text);
        out.push_str("<button type=\"button\" class=\"run-button\" data-command=\"");
        push_escaped(&mut out, command);
        // Screen readers name each button by its command, on one line.
        out.push_str("\" aria-label=\"Run ");
        push_escaped(
            &mut out,
            &command.split_whitespace().collect::<Vec<_>>().join(" "),
        );
        out.push_str("\">Run</button></div>");
    }
    out.push('\n');
    out
}

/// Escapes for an attribute value, which needs quotes escaped too.
fn push_escaped(out: &mut String, text: &str) {
    // Writing into a String cannot fail.
    let _ = escape_html(&mut *out, text);
}

/// Replaces placeholders with their blocks; anything that looks like a
/// placeholder but does not name a block is dropped.
fn splice(html: &str, blocks: &[String]) -> String {
    let mut out = String::with_capacity(html.len() + blocks.iter().map(String::len).sum::<usize>());
    let mut parts = html.split(SENTINEL);
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut inside = true;
    for part in parts {
        if inside {
            if let Some(block) = part.parse::<usize>().ok().and_then(|i| blocks.get(i)) {
                out.push_str(block);
            }
        } else {
            out.push_str(part);
        }
        inside = !inside;
    }
    out
}

fn heading_text(events: &[Event<'_>]) -> String {
    let mut text = String::new();
    for event in events {
        if let Event::Text(t) | Event::Code(t) = event {
            text.push_str(t);
        }
    }
    text
}

/// GitHub-like anchors: lower-case words joined by dashes, numbered when a
/// heading repeats.
fn unique_id(seen: &mut HashMap<String, usize>, text: &str) -> String {
    let mut id = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            id.push(c);
        } else if (c.is_whitespace() || c == '-' || c == '_')
            && !id.ends_with('-')
            && !id.is_empty()
        {
            id.push('-');
        }
    }
    let mut id = id.trim_end_matches('-').to_string();
    if id.is_empty() {
        id.push_str("section");
    }
    let count = seen.entry(id.clone()).or_insert(0);
    *count += 1;
    if *count > 1 {
        id = format!("{id}-{count}");
    }
    id
}

/// Checks a link or image URL and rewrites the lesson-relative forms:
/// `assets/x` → `/lessons/{slug}/assets/x`, `../other/` → `/lessons/other`.
fn resolve_url(url: &str, line: usize, cx: &Context<'_>, diags: &mut Diagnostics) -> String {
    let mut report = |message: String| diags.push(cx.file, Some(line), message);
    let has_scheme = url.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    });
    if url.is_empty() || has_scheme || url.starts_with('#') || url.starts_with("//") {
        return url.to_string();
    }
    let split_at = url.find(['?', '#']).unwrap_or(url.len());
    let (path, suffix) = url.split_at(split_at);
    let path = path.strip_prefix("./").unwrap_or(path);

    if let Some(rest) = path.strip_prefix("assets/") {
        let decoded = percent_decode_str(rest).decode_utf8_lossy();
        if let Err(e) = assets::lookup(cx.lesson_dir, &cx.lesson_dir.join("assets"), &decoded) {
            report(format!("broken asset link `{url}`: {e}"));
        }
        return format!("/lessons/{}/assets/{rest}{suffix}", cx.slug);
    }
    if let Some(rest) = path.strip_prefix("../") {
        let target = rest.strip_suffix("lesson.md").unwrap_or(rest);
        let target = target.strip_suffix('/').unwrap_or(target);
        if target.contains('/') || target.is_empty() {
            report(format!(
                "link `{url}` leaves this lesson: link to another lesson as `../slug/` or to a file in `assets/`"
            ));
        } else if !cx.slugs.contains(target) {
            report(format!(
                "link `{url}` points to lesson `{target}`, which is not in the course"
            ));
        }
        return format!("/lessons/{target}{suffix}");
    }
    if let Some(rest) = path.strip_prefix("/lessons/") {
        let target = rest.split('/').next().unwrap_or("");
        if !target.is_empty() && !cx.slugs.contains(target) {
            report(format!(
                "link `{url}` points to lesson `{target}`, which is not in the course"
            ));
        }
        return url.to_string();
    }
    if !path.starts_with('/') {
        report(format!(
            "link `{url}` points to nothing in the course: use `assets/…`, `../other-lesson/` or a full URL"
        ));
    }
    url.to_string()
}
