//! Problems found while loading a course, reported as `file:line: message`.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One problem in a course directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Path relative to the course directory given to [`crate::Course::load`]
    /// (`01-intro/lesson.md`), or `.` for the course directory itself; kept
    /// relative so the output reads the same wherever the course lives.
    pub file: PathBuf,
    /// 1-based line in `file`, counting the front matter; `None` when the
    /// problem belongs to the file or folder as a whole.
    pub line: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found in a course, sorted by file then line; displays one
/// diagnostic per line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when the course loaded cleanly.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems, sorted by file then line.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub(crate) fn push(&mut self, file: impl Into<PathBuf>, line: Option<usize>, message: String) {
        self.0.push(Diagnostic {
            file: file.into(),
            line,
            message,
        });
    }

    /// Sorting makes the output stable whatever order the file system lists
    /// folders in; lines sort numerically because `line` is a number.
    pub(crate) fn sort(&mut self) {
        self.0.sort();
        self.0.dedup();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
