//! Docker's JSON-lines progress stream (pull, push, load, build): one JSON
//! record per frame, each ending in `\r\n`, with `status`, `id`,
//! `progressDetail`, `stream`, `aux` or `errorDetail`. Once the first
//! record is out the status is 200 for good, so later failures travel as
//! an `errorDetail` record, which the CLI prints and turns into its exit
//! status.

use axum::body::Body;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;

/// The writing end; the response streams what is sent.
///
/// Unbounded: a pull or push sends a few records per layer, and the work
/// never waits on the client (it runs in blocking and async code alike).
#[derive(Clone)]
pub(crate) struct Progress {
    tx: mpsc::UnboundedSender<Value>,
}

impl Progress {
    /// A writer and the 200 response that streams its records.
    pub fn channel() -> (Progress, Response) {
        let (tx, rx) = mpsc::unbounded_channel::<Value>();
        let frames = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|record| {
            let mut line = serde_json::to_vec(&record).unwrap_or_default();
            line.extend_from_slice(b"\r\n");
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
        });
        let response = Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(frames))
            .unwrap_or_default();
        (Progress { tx }, response)
    }

    /// Sends one record; a client that left is not an error for the work,
    /// which finishes anyway (as dockerd's pulls do).
    fn send(&self, record: Value) {
        if self.tx.send(record).is_err() {
            tracing::debug!("progress client left");
        }
    }

    /// The client stopped reading (the CLI was interrupted).
    pub fn client_left(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn status(&self, status: &str) {
        self.send(json!({ "status": status }));
    }

    pub fn layer(&self, id: &str, status: &str) {
        self.send(json!({ "status": status, "progressDetail": {}, "id": id }));
    }

    /// A final record for the CLI (`docker push` prints the digest from it).
    pub fn aux(&self, aux: Value) {
        self.send(json!({ "progressDetail": {}, "aux": aux }));
    }

    /// Text for the client's output (`docker build`'s lines).
    pub fn stream(&self, text: &str) {
        self.send(json!({ "stream": text }));
    }

    /// A failure whose `code` becomes the CLI's exit status.
    pub fn error_with_code(&self, message: &str, code: i64) {
        self.send(json!({
            "errorDetail": { "code": code, "message": message },
            "error": message,
        }));
    }

    pub fn error(&self, message: &str) {
        self.send(json!({
            "errorDetail": { "message": message },
            "error": message,
        }));
    }
}

impl crate::distribution::Report for Progress {
    fn layer(&self, id: &str, status: &str) {
        Progress::layer(self, id, status);
    }

    fn status(&self, status: &str) {
        Progress::status(self, status);
    }
}
