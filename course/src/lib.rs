//! Loads, validates and renders a layerlab course.
//!
//! A course is a directory with one folder per lesson; the folder name
//! (lower-cased) is the lesson's slug, and the course is ordered by slug:
//!
//! ```text
//! lessons/
//!   01-what-is-a-container/
//!     lesson.md        YAML front matter between `---` lines, then Markdown
//!     assets/…         images and files the lesson links to
//! ```
//!
//! The body starts below the title (pages show `title` themselves) and links
//! to its files as `assets/…` and to other lessons as `../slug/`; both are
//! checked and rewritten to `/lessons/{slug}/assets/…` and `/lessons/{slug}`.
//! A fenced block whose info string has the word `run` (```` ```bash run ````)
//! renders as `<div class="code-run"><pre><code class="language-bash">…</code></pre>
//! <button type="button" class="run-button" data-command="…" aria-label="Run …">Run</button></div>`
//! (the label is the command on one line, for screen readers).
//!
//! Principal types: [`Course`] (the ordered lessons), [`Lesson`] (front matter
//! values plus the rendered body), [`Task`] and [`Check`] (what the grader
//! evaluates: [`CheckKind`] is one variant per check type), and
//! [`Diagnostics`] (every problem found, printed `file:line: message`).
//!
//! ```no_run
//! let course = match course::Course::load("lessons") {
//!     Ok(course) => course,
//!     Err(problems) => panic!("{problems}"),
//! };
//! let lesson = course.lesson("01-what-is-a-container").expect("bundled lesson");
//! let page_body: &str = &lesson.html;                 // sanitized HTML
//! let outlines: Vec<_> = course.outlines();            // for GET /api/lessons
//! let asset = lesson.asset("diagram.svg");             // for /lessons/{slug}/assets/…
//! let content_type = asset.as_deref().map(course::content_type);
//! # let _ = (page_body, outlines, content_type);
//! ```
//!
//! Invariants:
//! - Loading never stops at the first problem: it reports every one it can
//!   find, with the line inside lesson.md (front matter lines included).
//! - Nothing read from a course directory can make this crate panic, read
//!   outside the course directory, or put script into [`Lesson::html`]: the
//!   author's Markdown and HTML pass through ammonia, and only the code and
//!   run blocks this crate generates are added after sanitizing.
//! - [`Lesson::asset`] only returns regular, non-hidden files whose real path
//!   is inside the lesson folder.
//!
//! Boundary: this crate knows nothing of HTTP, databases or sandboxes. It
//! parses and validates checks; the grader evaluates them.

#![deny(missing_docs)]

mod assets;
pub mod checks;
mod diagnostics;
mod lesson;
mod markdown;
mod schema;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

pub use assets::{AssetError, content_type};
pub use checks::{
    Check, CheckKind, CommandCheck, ContainerCheck, ContainerState, EnvRule, FileCheck, HttpCheck,
    ImageCheck, LayerCount, MadeBy, MountRule, Pattern, PortRule, RegistryCheck, Run, Words,
};
pub use diagnostics::{Diagnostic, Diagnostics};
pub use lesson::{
    DEFAULT_NODE_IMAGE, Hint, Lesson, LessonOutline, Limits, NodeSpec, Task, TaskOutline,
};

/// The parser of one lesson file, reachable for the fuzz targets in
/// `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    use std::collections::BTreeSet;
    use std::path::Path;

    use crate::{Diagnostics, Lesson};

    /// `text` as the lesson.md of the lesson `slug` in the folder `dir`, as
    /// [`crate::Course::load`] reads it; `slugs` are the course's lessons.
    pub fn lesson(
        text: &str,
        dir: &Path,
        slug: &str,
        slugs: &BTreeSet<String>,
    ) -> (Option<Lesson>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let file = Path::new(slug).join("lesson.md");
        let lesson = crate::parse_lesson(text, dir.to_path_buf(), &file, slug, slugs, &mut diags);
        (lesson, diags)
    }
}

/// More folders than any course needs; bounds the work a hostile directory
/// can cause.
const MAX_LESSONS: usize = 500;

/// A loaded course: lessons in slug order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Course {
    /// Sorted by slug, which is the order students take them in.
    pub lessons: Vec<Lesson>,
}

impl Course {
    /// Loads every lesson under `dir`; any problem at all fails the load and
    /// returns the complete list.
    pub fn load(dir: impl AsRef<Path>) -> Result<Course, Diagnostics> {
        let (course, diags) = Course::load_partial(dir);
        if diags.is_empty() {
            Ok(course)
        } else {
            Err(diags)
        }
    }

    /// Loads what can be loaded: lessons with problems are left out and
    /// their problems returned, so a server can keep serving the rest.
    pub fn load_partial(dir: impl AsRef<Path>) -> (Course, Diagnostics) {
        // Absolute, so `Lesson::dir` stays valid whatever the caller's
        // working directory does later.
        let dir = fs::canonicalize(dir.as_ref()).unwrap_or_else(|_| dir.as_ref().to_path_buf());
        let dir = dir.as_path();
        let mut diags = Diagnostics::default();
        let folders = lesson_folders(dir, &mut diags);
        let slugs: BTreeSet<String> = folders.keys().cloned().collect();
        let mut lessons = Vec::with_capacity(folders.len());
        for (slug, names) in &folders {
            let Some((first, others)) = names.split_first() else {
                continue;
            };
            for other in others {
                diags.push(
                    other,
                    None,
                    format!("folder `{other}` has the same slug `{slug}` as folder `{first}`: rename one of them"),
                );
            }
            let before = diags.len();
            let lesson = load_lesson(dir, first, slug, &slugs, &mut diags);
            if let Some(lesson) = lesson.filter(|_| diags.len() == before && others.is_empty()) {
                lessons.push(lesson);
            }
        }
        if folders.is_empty() && diags.is_empty() {
            diags.push(
                ".",
                None,
                "no lessons found: add a folder with a lesson.md".into(),
            );
        }
        diags.sort();
        tracing::debug!(dir = %dir.display(), lessons = lessons.len(), problems = diags.len(), "course loaded");
        (Course { lessons }, diags)
    }

    /// The lesson behind `/lessons/{slug}`.
    pub fn lesson(&self, slug: &str) -> Option<&Lesson> {
        self.lessons.iter().find(|l| l.slug == slug)
    }

    /// What `GET /api/lessons` returns: titles, summaries and tasks without
    /// hint texts or checks.
    pub fn outlines(&self) -> Vec<LessonOutline<'_>> {
        self.lessons.iter().map(Lesson::outline).collect()
    }
}

/// Every problem in the course at `dir`; empty when it loads cleanly. This is
/// what `layerlab lessons check DIR` prints.
pub fn check(dir: impl AsRef<Path>) -> Diagnostics {
    Course::load_partial(dir).1
}

impl Lesson {
    /// The file to serve for `/lessons/{slug}/assets/{rel}`, or `None` when
    /// `rel` is not a plain relative path (`..`, absolute, hidden parts), does
    /// not exist, is not a regular file, or leads outside the lesson folder
    /// through a symlink. Serve it with [`content_type`]; SVG can carry
    /// script, so send assets with `Content-Security-Policy: sandbox`.
    pub fn asset(&self, rel: &str) -> Option<PathBuf> {
        match assets::lookup(&self.dir, &self.dir.join("assets"), rel) {
            Ok(path) => Some(path),
            Err(e) => {
                tracing::debug!(slug = %self.slug, error = %e, "asset refused");
                None
            }
        }
    }
}

/// Slug → folder names mapping to it (more than one is a conflict).
fn lesson_folders(dir: &Path, diags: &mut Diagnostics) -> BTreeMap<String, Vec<String>> {
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            diags.push(
                ".",
                None,
                format!("cannot read the course folder `{}`: {e}", dir.display()),
            );
            return folders;
        }
    };
    let mut names: Vec<(String, fs::FileType)> = Vec::new();
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            diags.push(
                entry.file_name().to_string_lossy().into_owned(),
                None,
                "folder name is not valid UTF-8: rename it with lowercase letters, digits and dashes".into(),
            );
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        names.push((name, file_type));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, file_type) in names {
        if file_type.is_symlink() {
            diags.push(
                &name,
                None,
                "is a symbolic link: lesson folders must be real folders inside the course".into(),
            );
            continue;
        }
        if !file_type.is_dir() {
            continue; // README.md and the like live beside the lessons
        }
        let slug = name.to_lowercase();
        if !lesson::is_slug(&slug) {
            diags.push(
                &name,
                None,
                format!("folder name `{name}` is not a valid slug: use lowercase letters, digits and dashes"),
            );
            continue;
        }
        if folders.len() >= MAX_LESSONS && !folders.contains_key(&slug) {
            diags.push(
                ".",
                None,
                format!("more than {MAX_LESSONS} lessons: split the course"),
            );
            break;
        }
        folders.entry(slug).or_default().push(name);
    }
    folders
}

fn load_lesson(
    course_dir: &Path,
    folder: &str,
    slug: &str,
    slugs: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Lesson> {
    let dir = course_dir.join(folder);
    let file = Path::new(folder).join("lesson.md");
    assets::scan(&dir, Path::new(folder), diags);
    let path = match assets::lookup(&dir, &dir, "lesson.md") {
        Ok(path) => path,
        Err(AssetError::NotFound(_)) => {
            diags.push(
                folder,
                None,
                "lesson folder has no lesson.md: add one or move the folder out".into(),
            );
            return None;
        }
        // The scan already reported escaping links and special files.
        Err(_) => return None,
    };
    let mut bytes = Vec::new();
    let read = File::open(&path)
        .and_then(|f| f.take(assets::MAX_LESSON_BYTES + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        diags.push(&file, None, format!("cannot read lesson.md: {e}"));
        return None;
    }
    if bytes.len() as u64 > assets::MAX_LESSON_BYTES {
        return None; // reported by the scan
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            diags.push(
                &file,
                Some(line),
                "not valid UTF-8 (first bad byte on this line): save lesson.md as UTF-8".into(),
            );
            return None;
        }
    };
    parse_lesson(text, dir, &file, slug, slugs, diags)
}

/// One lesson.md's text (`file` in messages, in the folder `dir`) parsed
/// and rendered: front matter, tasks and checks, and the sanitized body.
fn parse_lesson(
    text: &str,
    dir: PathBuf,
    file: &Path,
    slug: &str,
    slugs: &BTreeSet<String>,
    diags: &mut Diagnostics,
) -> Option<Lesson> {
    let split = match lesson::split(text) {
        Ok(split) => split,
        Err((line, message)) => {
            diags.push(file, Some(line), message);
            return None;
        }
    };
    let front = lesson::parse_front_matter(diags, file, &split);
    let cx = markdown::Context {
        slug,
        slugs,
        lesson_dir: &dir,
        file,
        body_line: split.body_line,
    };
    let html = markdown::render(split.body, &cx, diags);
    let front = front?;
    Some(Lesson {
        slug: slug.to_string(),
        title: front.title,
        summary: front.summary,
        duration_minutes: front.duration_minutes,
        node: front.node,
        tasks: front.tasks,
        html,
        dir,
    })
}
