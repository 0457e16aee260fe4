//! Moving images in and out: OCI image layout (directory or tar) and the
//! `docker save` tar format. Archives are hostile input: every path is
//! checked, every blob's size and digest verified, documents size-bounded.

use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("invalid archive: {0}")]
    Invalid(String),
    #[error("archive refers to {0}, which it does not contain")]
    Missing(String),
}

impl TransferError {
    pub(crate) fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}
