//! How a build fails: the one error `dispatch` and `copy` share, kept in a
//! leaf so neither needs the other for it.

use thiserror::Error;

use crate::backend::BackendError;
use crate::parser::ParseError;
use crate::shell;

/// Why a build stopped.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The Dockerfile does not parse: an answer before the build starts.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A step failed; `code` is a RUN's exit status.
    #[error("{message}")]
    Failed { message: String, code: Option<i64> },
}

impl BuildError {
    pub fn failed(message: impl Into<String>) -> BuildError {
        BuildError::Failed {
            message: message.into(),
            code: None,
        }
    }
}

impl From<BackendError> for BuildError {
    fn from(e: BackendError) -> BuildError {
        BuildError::failed(e.0)
    }
}

impl From<shell::LexError> for BuildError {
    fn from(e: shell::LexError) -> BuildError {
        BuildError::failed(e.to_string())
    }
}
