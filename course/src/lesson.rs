//! One lesson: its front matter (title, node, tasks) and rendered body.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checks::Check;
use crate::diagnostics::Diagnostics;
use crate::schema::{Reader, optional};
use crate::yaml::{self, Node};

/// The image every node uses unless a lesson asks for another.
pub const DEFAULT_NODE_IMAGE: &str = "workstation";

const FRONT_MATTER_KEYS: &[&str] = &["title", "summary", "duration", "node", "tasks"];
const MAX_POINTS: u64 = 1000;

/// A lesson as the server shows it and the grader reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lesson {
    /// The folder name, lower-cased: URL segment and API id.
    pub slug: String,
    /// From `title`, required.
    pub title: String,
    /// One or two sentences for the course overview.
    pub summary: Option<String>,
    /// From `duration` ("15 min", "1h 30min"); `None` when not given.
    pub duration_minutes: Option<u32>,
    /// The machine a lab session for this lesson starts.
    pub node: NodeSpec,
    /// In the order the lesson lists them.
    pub tasks: Vec<Task>,
    /// Rendered and sanitized body, ready to insert into a page.
    pub html: String,
    /// The lesson folder on disk, for [`Lesson::asset`]; never sent to clients.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The student's machine for this lesson.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSpec {
    /// Catalog image the node is made from; [`DEFAULT_NODE_IMAGE`] unless given.
    pub image: String,
    /// Resources for the whole session (node and its containers).
    pub limits: Limits,
    /// Shell script run in the node once it is up, before the student's
    /// terminal opens.
    pub setup: Option<String>,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            image: DEFAULT_NODE_IMAGE.to_string(),
            limits: Limits::default(),
            setup: None,
        }
    }
}

/// Per-lesson resource limits; `None` leaves the platform default.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    /// From `memory` (`512m`, `1g`), in bytes.
    pub memory_bytes: Option<u64>,
    /// Most processes at once.
    pub pids: Option<u32>,
    /// CPU share in cores (`0.5`, `2`).
    pub cpus: Option<f64>,
}

/// Something the student does, graded by its checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Unique within the lesson; used in `/api/sessions/{id}/tasks/{task}/check`.
    pub id: String,
    /// One line saying what to do.
    pub title: String,
    /// Earned when every check passes, minus the cost of revealed hints.
    pub points: u32,
    /// In the order they are revealed.
    pub hints: Vec<Hint>,
    /// All must pass for the task to pass; never empty.
    pub checks: Vec<Check>,
}

/// Help a student can ask for, at a price.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hint {
    /// Shown when the student asks for the hint; plain text in which
    /// backticks mark commands, as in the lesson body.
    pub text: String,
    /// Points taken off the task when the hint is revealed.
    pub cost: u32,
}

/// What a student may see of a lesson before working on it: no hint texts
/// (they cost points) and no checks (they give answers away).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LessonOutline<'a> {
    /// See [`Lesson::slug`].
    pub slug: &'a str,
    /// See [`Lesson::title`].
    pub title: &'a str,
    /// See [`Lesson::summary`].
    pub summary: Option<&'a str>,
    /// See [`Lesson::duration_minutes`].
    pub duration_minutes: Option<u32>,
    /// The tasks, without what would give answers away.
    pub tasks: Vec<TaskOutline<'a>>,
}

/// A task as [`LessonOutline`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskOutline<'a> {
    /// See [`Task::id`].
    pub id: &'a str,
    /// See [`Task::title`].
    pub title: &'a str,
    /// See [`Task::points`].
    pub points: u32,
    /// The cost of each hint, in order.
    pub hint_costs: Vec<u32>,
}

impl Lesson {
    /// The student-safe view of this lesson.
    pub fn outline(&self) -> LessonOutline<'_> {
        LessonOutline {
            slug: &self.slug,
            title: &self.title,
            summary: self.summary.as_deref(),
            duration_minutes: self.duration_minutes,
            tasks: self
                .tasks
                .iter()
                .map(|t| TaskOutline {
                    id: &t.id,
                    title: &t.title,
                    points: t.points,
                    hint_costs: t.hints.iter().map(|h| h.cost).collect(),
                })
                .collect(),
        }
    }

    /// The task behind `/api/sessions/{id}/tasks/{task}/check`.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// The front matter's values, before the body is rendered.
pub(crate) struct FrontMatter {
    pub title: String,
    pub summary: Option<String>,
    pub duration_minutes: Option<u32>,
    pub node: NodeSpec,
    pub tasks: Vec<Task>,
}

/// Where the YAML is inside lesson.md.
pub(crate) struct Split<'a> {
    pub yaml: &'a str,
    /// Lines before the YAML (the opening `---`), to turn YAML lines into
    /// file lines.
    pub yaml_offset: usize,
    pub body: &'a str,
    /// 1-based line of the body's first line.
    pub body_line: usize,
}

/// Separates front matter from body. `Err` carries the line and message.
pub(crate) fn split(text: &str) -> Result<Split<'_>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "---" {
        return Err((
            1,
            "no front matter: start lesson.md with a `---` line, then `title: …`, then another `---` line".into(),
        ));
    }
    let yaml_start = first.len();
    let mut pos = yaml_start;
    for (i, line) in lines.enumerate() {
        if matches!(line.trim_end(), "---" | "...") {
            return Ok(Split {
                yaml: &text[yaml_start..pos],
                yaml_offset: 1,
                body: &text[pos + line.len()..],
                body_line: i + 3,
            });
        }
        pos += line.len();
    }
    Err((
        1,
        "front matter never ends: add a `---` line after the last front matter key".into(),
    ))
}

pub(crate) fn parse_front_matter(
    diags: &mut Diagnostics,
    file: &Path,
    split: &Split<'_>,
) -> Option<FrontMatter> {
    let mut r = Reader::new(diags, file, split.yaml_offset);
    let root = match yaml::parse(split.yaml) {
        Ok(Some(root)) if !root.is_null() => root,
        Ok(_) => {
            r.error(1, "front matter is empty: add at least `title: …`");
            return None;
        }
        Err(e) => {
            r.error(e.line, format!("invalid YAML: {}", e.message));
            return None;
        }
    };
    let f = r.fields(&root, "front matter", FRONT_MATTER_KEYS)?;
    let title = f
        .required(&mut r, "title")
        .and_then(|n| non_blank(&mut r, n, "title"));
    let summary = optional(f.get("summary").map(|n| non_blank(&mut r, n, "summary")));
    let duration = optional(f.get("duration").map(|n| parse_duration(&mut r, n)));
    let node = optional(f.get("node").map(|n| parse_node(&mut r, n)));
    let tasks = optional(f.get("tasks").map(|n| parse_tasks(&mut r, n)));
    Some(FrontMatter {
        title: title?,
        summary: summary.ok()?,
        duration_minutes: duration.ok()?,
        node: node.ok()?.unwrap_or_default(),
        tasks: tasks.ok()?.unwrap_or_default(),
    })
}

fn non_blank(r: &mut Reader<'_>, node: &Node, key: &str) -> Option<String> {
    let text = r.string(node, key)?;
    if text.trim().is_empty() {
        r.error(
            node.line,
            format!("`{key}` is blank: write something or remove the key"),
        );
        return None;
    }
    Some(text.trim().to_string())
}

/// Accepts what people write on a syllabus: `15`, `15 min`, `20 minutes`,
/// `1h`, `1 hour 30 min`.
fn parse_duration(r: &mut Reader<'_>, node: &Node) -> Option<u32> {
    let text = r.string(node, "duration")?;
    match duration_minutes(&text) {
        Some(minutes) if (1..=24 * 60).contains(&minutes) => Some(minutes),
        _ => {
            r.error(
                node.line,
                format!(
                    "`duration` must look like `15 min` or `1h 30min` (at most a day), found `{}`",
                    yaml::truncate(&text, 40)
                ),
            );
            None
        }
    }
}

fn duration_minutes(text: &str) -> Option<u32> {
    let mut rest = text.trim();
    if let Ok(n) = rest.parse::<u32>() {
        return Some(n);
    }
    let mut total: u32 = 0;
    let mut seen = false;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u32 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let letters = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let factor = match rest[..letters].to_ascii_lowercase().as_str() {
            "h" | "hr" | "hrs" | "hour" | "hours" => 60,
            "m" | "min" | "mins" | "minute" | "minutes" => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(factor)?)?;
        rest = rest[letters..].trim_start();
        seen = true;
    }
    seen.then_some(total)
}

fn parse_node(r: &mut Reader<'_>, node: &Node) -> Option<NodeSpec> {
    let f = r.fields(node, "`node`", &["image", "limits", "setup"])?;
    let image = optional(f.get("image").map(|n| {
        let image = r.string(n, "image")?;
        let valid = image.len() <= 255
            && image.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && image
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/:@-".contains(&b));
        if !valid {
            r.error(
                n.line,
                format!("`image` `{}` is not an image name: use lowercase letters, digits and . _ / : @ -", yaml::truncate(&image, 40)),
            );
            return None;
        }
        Some(image)
    }));
    let limits = optional(f.get("limits").map(|n| parse_limits(r, n)));
    let setup = optional(f.get("setup").map(|n| r.string(n, "setup")));
    Some(NodeSpec {
        image: image
            .ok()?
            .unwrap_or_else(|| DEFAULT_NODE_IMAGE.to_string()),
        limits: limits.ok()?.unwrap_or_default(),
        setup: setup.ok()?,
    })
}

fn parse_limits(r: &mut Reader<'_>, node: &Node) -> Option<Limits> {
    let f = r.fields(node, "`node.limits`", &["memory", "pids", "cpus"])?;
    let memory = optional(f.get("memory").map(|n| {
        let text = r.string(n, "memory")?;
        let bytes = memory_bytes(&text).filter(|b| (1 << 20..=64 << 30).contains(b));
        if bytes.is_none() {
            r.error(
                n.line,
                format!(
                    "`memory` must be a size between 1m and 64g like `512m` or `1g`, found `{}`",
                    yaml::truncate(&text, 40)
                ),
            );
        }
        bytes
    }));
    let pids = optional(f.get("pids").map(|n| r.uint(n, "pids", 1..=100_000)));
    let cpus = optional(f.get("cpus").map(|n| {
        let text = r.string(n, "cpus")?;
        let cpus = text.parse::<f64>().ok().filter(|c| *c > 0.0 && *c <= 64.0);
        if cpus.is_none() {
            r.error(
                n.line,
                format!(
                    "`cpus` must be a number above 0 and at most 64, like 0.5 or 2, found `{}`",
                    yaml::truncate(&text, 40)
                ),
            );
        }
        cpus
    }));
    Some(Limits {
        memory_bytes: memory.ok()?,
        pids: pids.ok()?.and_then(|p| u32::try_from(p).ok()),
        cpus: cpus.ok()?,
    })
}

/// Docker's convention: suffixes are binary multiples, case does not matter.
fn memory_bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..split].parse().ok()?;
    let factor: u64 = match text[split..].trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Task ids appear in URLs: the same alphabet as slugs.
pub(crate) fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn parse_tasks(r: &mut Reader<'_>, node: &Node) -> Option<Vec<Task>> {
    let items = r.list(node, "tasks")?;
    let mut tasks = Vec::with_capacity(items.len());
    let mut ok = true;
    // (id, YAML line) of every task seen, valid or not, so duplicates are
    // reported even when the first copy had other problems.
    let mut ids: Vec<(String, usize)> = Vec::new();
    for item in items {
        match parse_task(r, item, &mut ids) {
            Some(task) => tasks.push(task),
            None => ok = false,
        }
    }
    ok.then_some(tasks)
}

fn parse_task(r: &mut Reader<'_>, node: &Node, ids: &mut Vec<(String, usize)>) -> Option<Task> {
    let f = r.fields(node, "task", &["id", "title", "points", "hints", "checks"])?;
    let id = f.required(r, "id").and_then(|n| {
        let id = r.string(n, "id")?;
        if !is_slug(&id) {
            r.error(n.line, format!("task id `{}` must use lowercase letters, digits and dashes", yaml::truncate(&id, 40)));
            return None;
        }
        if let Some((_, first)) = ids.iter().find(|(seen, _)| *seen == id) {
            let first = r.file_line(*first);
            r.error(n.line, format!("duplicate task id `{id}` (first at line {first}): task ids must be unique within a lesson"));
            return None;
        }
        ids.push((id.clone(), n.line));
        Some(id)
    });
    let title = f
        .required(r, "title")
        .and_then(|n| non_blank(r, n, "title"));
    let points = f
        .required(r, "points")
        .and_then(|n| r.uint(n, "points", 0..=MAX_POINTS));
    let hints = optional(f.get("hints").map(|n| parse_hints(r, n)));
    let checks = f.required(r, "checks").and_then(|n| {
        let items = r.list(n, "checks")?;
        if items.is_empty() {
            r.error(
                n.line,
                "`checks` is empty: a task needs at least one check to be gradable",
            );
            return None;
        }
        let parsed: Vec<Option<Check>> = items.iter().map(|c| Check::parse(r, c)).collect();
        parsed.into_iter().collect::<Option<Vec<_>>>()
    });
    let (points, hints) = (
        u32::try_from(points?).ok()?,
        hints.ok()?.unwrap_or_default(),
    );
    let cost = hints.iter().fold(0u32, |sum, h| sum.saturating_add(h.cost));
    if cost > points {
        let line = f.get("hints").map_or(f.line(), |n| n.line);
        r.error(
            line,
            format!(
                "hints cost {cost} points in total, more than the task's {points}: lower the costs"
            ),
        );
        return None;
    }
    Some(Task {
        id: id?,
        title: title?,
        points,
        hints,
        checks: checks?,
    })
}

fn parse_hints(r: &mut Reader<'_>, node: &Node) -> Option<Vec<Hint>> {
    let items = r.list(node, "hints")?;
    let parsed: Vec<Option<Hint>> = items
        .iter()
        .map(|item| {
            let f = r.fields(item, "hint", &["text", "cost"])?;
            let text = f.required(r, "text").and_then(|n| non_blank(r, n, "text"));
            let cost = optional(f.get("cost").map(|n| r.uint(n, "cost", 0..=MAX_POINTS)));
            Some(Hint {
                text: text?,
                cost: u32::try_from(cost.ok()?.unwrap_or(0)).ok()?,
            })
        })
        .collect();
    parsed.into_iter().collect()
}
