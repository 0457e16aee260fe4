//! Regular expressions in checks: compiled, with a memory bound, when the
//! course loads. A leaf: the schema reader makes them and every check type
//! holds them.

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Serialize, Serializer};

/// A regular expression that compiled when the course loaded; serializes as
/// its source text.
#[derive(Clone)]
pub struct Pattern(Regex);

/// Bounds the memory a hostile pattern can make the compiler use.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

impl Pattern {
    pub(crate) fn new(source: &str) -> Result<Pattern, regex::Error> {
        RegexBuilder::new(source)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(Pattern)
    }

    /// The compiled expression, for the grader to match with.
    pub fn regex(&self) -> &Regex {
        &self.0
    }

    /// The source text, as written in the lesson.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.as_str())
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
