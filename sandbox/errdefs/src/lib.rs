//! The few kinds of failure that every layerlab library reports, after
//! containerd's `errdefs`.
//!
//! Each library keeps its own error type with messages that say what went
//! wrong; callers branch only on its [`ErrorKind`], and each protocol edge
//! (the server's HTTP answers, the engine's Docker API, the registry's
//! distribution codes) turns kinds into its wire codes in one place. The
//! list holds only the kinds some library reports; add one when a caller
//! must tell a new case apart, not for a new message.
//!
//! This crate depends on nothing, so any crate may use it without pulling
//! in another's.

#![deny(missing_docs)]

/// What kind of failure an error is, and so what its caller may do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object named (session, sandbox, blob, image name, snapshot,
    /// lease) does not exist. The caller should check the name, or create
    /// the object first; retrying the same call will not help.
    NotFound,
    /// The object to create exists already. The caller should use the
    /// existing one, remove it first, or choose another name.
    AlreadyExists,
    /// The input is malformed, out of range or hostile (an id, a spec, a
    /// reference, a digest, a tar stream, a manifest, a command). The
    /// caller should fix the input; retrying it unchanged will fail again.
    InvalidArgument,
    /// The input is fine but the object is in a state that forbids the
    /// call (a stopped sandbox asked to run a command, a blob still in
    /// use). The caller should change that state first (start, stop,
    /// release) and then retry.
    FailedPrecondition,
    /// Something the call needs is busy or not answering for now (a writer
    /// holding a ref, a deadline passed, a connection refused). The caller
    /// may retry later, preferably with backoff.
    Unavailable,
    /// A limited resource of the host is used up (the pool of user
    /// namespace ranges). Retrying helps only once something is freed: the
    /// caller should stop or remove what it no longer needs, or an operator
    /// should enlarge the limit.
    ResourceExhausted,
    /// A failure of the host or a bug (I/O, a helper process, corrupt
    /// state). The caller cannot fix it: it should report it, with its
    /// detail logged rather than shown to end users.
    Internal,
}

/// An error that reports its [`ErrorKind`]: what generic code (a protocol
/// edge mapping errors to statuses) needs of each library's error type.
pub trait Kind {
    /// The kind of this failure.
    fn kind(&self) -> ErrorKind;
}
