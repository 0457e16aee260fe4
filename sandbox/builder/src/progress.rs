//! What a build reports as it goes; the engine turns each event into one
//! record of Docker's JSON build stream.

/// One event of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Text for the client's standard output (`Step 1/5 : FROM debian`,
    /// ` ---> Using cache`, a RUN's standard output).
    Stream(String),
    /// A RUN's standard error, which the client shows in red.
    Stderr(String),
    /// A pull's status line (`Pulling from library/debian`).
    Status(String),
    /// The image a stage ended with (`{"aux":{"ID":"sha256:…"}}`).
    ImageId(String),
}
