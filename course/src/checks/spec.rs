//! What every check type shares: the trait the parser calls, and the
//! shortening of derived names. The check modules use it; it uses none of
//! them.

use crate::schema::Reader;
use crate::yaml::Node;

/// What every check type provides to the parser.
pub(crate) trait CheckSpec: Sized {
    /// Reads the value under the type key, reporting every problem.
    fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Self>;
    /// A short human description, used when the author gives no `name`.
    fn describe(&self) -> String;
}

/// Keeps derived check names short enough for a results table.
pub(crate) fn shorten(text: &str) -> String {
    crate::yaml::truncate(text, 60).into_owned()
}
