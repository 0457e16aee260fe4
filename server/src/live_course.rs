//! The course the server shows, swapped whole when its folder changes
//! (`serve --watch`, for authors): a request reads one consistent course,
//! and a reload that fails keeps the last good course and shows its
//! problems (`file:line: message`) on the pages until they are fixed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use course::{Course, Lesson};

/// How often a watched folder is looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// A course folder deeper or larger than this is not walked further; the
/// course loader refuses such folders anyway.
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 20_000;

pub struct LiveCourse {
    loaded: RwLock<Loaded>,
    /// Whether the folder is watched, so pages offer to reload.
    watched: bool,
}

#[derive(Clone)]
struct Loaded {
    course: Arc<Course>,
    /// The last reload's problems; empty when it succeeded.
    problems: Arc<Vec<String>>,
    /// Bumped on every reload, successful or not.
    version: u64,
}

/// One lesson of the course as it was when it was looked up.
pub struct LessonRef {
    course: Arc<Course>,
    index: usize,
}

impl Deref for LessonRef {
    type Target = Lesson;
    fn deref(&self) -> &Lesson {
        &self.course.lessons[self.index]
    }
}

impl LiveCourse {
    pub fn new(course: Course, watched: bool) -> LiveCourse {
        LiveCourse {
            loaded: RwLock::new(Loaded {
                course: Arc::new(course),
                problems: Arc::new(Vec::new()),
                version: 0,
            }),
            watched,
        }
    }

    fn loaded(&self) -> Loaded {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn course(&self) -> Arc<Course> {
        self.loaded().course
    }

    pub fn lesson(&self, slug: &str) -> Option<LessonRef> {
        let course = self.course();
        let index = course.lessons.iter().position(|l| l.slug == slug)?;
        Some(LessonRef { course, index })
    }

    /// What kept the last change of the folder from loading.
    pub fn problems(&self) -> Arc<Vec<String>> {
        self.loaded().problems
    }

    /// `Some(version)` when the folder is watched: pages poll it and
    /// reload when it moves.
    pub fn version(&self) -> Option<u64> {
        self.watched.then(|| self.loaded().version)
    }

    /// Loads `dir` again whenever a file in it changes, until the server
    /// stops.
    pub fn watch(self: &Arc<Self>, dir: PathBuf) {
        let live = self.clone();
        tokio::spawn(async move {
            let mut seen = fingerprint_blocking(dir.clone()).await;
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let now = fingerprint_blocking(dir.clone()).await;
                if now == seen {
                    continue;
                }
                seen = now;
                let from = dir.clone();
                match tokio::task::spawn_blocking(move || Course::load(&from)).await {
                    Ok(result) => live.swap(result, &dir),
                    Err(e) => tracing::warn!(error = %e, "the course reload failed"),
                }
            }
        });
    }

    fn swap(&self, result: Result<Course, course::Diagnostics>, dir: &Path) {
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        loaded.version += 1;
        match result {
            Ok(course) => {
                tracing::info!(lessons = course.lessons.len(), dir = %dir.display(), "course reloaded");
                loaded.course = Arc::new(course);
                loaded.problems = Arc::new(Vec::new());
            }
            Err(diagnostics) => {
                let problems: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
                tracing::warn!(problems = problems.len(), dir = %dir.display(), "the changed course has problems; still showing the last good one");
                loaded.problems = Arc::new(problems);
            }
        }
    }
}

async fn fingerprint_blocking(dir: PathBuf) -> u64 {
    tokio::task::spawn_blocking(move || fingerprint(&dir))
        .await
        .unwrap_or_default()
}

/// A hash of every path under `dir` with its size and modification time:
/// it changes when a file is written, added, removed or renamed. Links
/// are not followed.
pub fn fingerprint(dir: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    let mut entries = 0;
    while let Some((folder, depth)) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut children: Vec<_> = read.flatten().map(|e| e.path()).collect();
        children.sort();
        for path in children {
            entries += 1;
            if entries > MAX_ENTRIES {
                return hasher.finish();
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            path.hash(&mut hasher);
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
            if meta.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            }
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn the_fingerprint_moves_with_every_change_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("01-a")).unwrap();
        std::fs::write(dir.path().join("01-a/lesson.md"), "one").unwrap();
        let first = fingerprint(dir.path());
        assert_eq!(fingerprint(dir.path()), first, "nothing changed");
        std::fs::write(dir.path().join("01-a/lesson.md"), "one more").unwrap();
        let written = fingerprint(dir.path());
        assert_ne!(written, first, "a file was written");
        std::fs::rename(dir.path().join("01-a"), dir.path().join("01-b")).unwrap();
        assert_ne!(fingerprint(dir.path()), written, "a folder was renamed");
    }
}
