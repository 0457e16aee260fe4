//! Request and response bodies as the handlers read and write them: JSON
//! (size-capped, Go's trailing newline), and archives streamed between the
//! connection and a blocking thread, never held in memory whole.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio_stream::StreamExt as _;

use super::error::{ApiError, ApiResult};
use crate::Engine;
use crate::error::Error;

/// Request bodies the engine reads into memory (JSON) are cut here; an
/// image or build context streams and has its own limits.
pub(crate) const MAX_JSON_BODY: usize = 1 << 20;

/// JSON answer with Go's encoder's trailing newline.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    body.push(b'\n');
    (
        status,
        [("content-type", "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// Reads a JSON request body of at most [`MAX_JSON_BODY`]; an empty body is
/// the type's default, as Docker treats it.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned + Default>(
    request: Request,
) -> ApiResult<T> {
    let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BODY)
        .await
        .map_err(|_| {
            ApiError::bad_request(format!(
                "request body is over {} MiB or broken",
                MAX_JSON_BODY >> 20
            ))
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

/// The `Name` of a `{"Name": …, "Driver": …}` create body (networks,
/// volumes), whose driver must be `driver` or empty.
pub(crate) async fn read_create(request: Request, kind: &str, driver: &str) -> ApiResult<String> {
    #[derive(serde::Deserialize, Default)]
    #[serde(default, rename_all = "PascalCase")]
    struct Create {
        name: String,
        driver: String,
    }
    let body: Create = read_json(request).await?;
    if !body.driver.is_empty() && body.driver != driver {
        return Err(Error::NotImplemented(format!(
            "{kind} driver {:?} is not available in a lab; use {driver}",
            body.driver
        ))
        .into());
    }
    Ok(body.name)
}

/// Runs `work` on a blocking thread with the request's body as a reader,
/// fed as it arrives, so an archive (`load`, `import`, `cp` into a stopped
/// container) is never held in memory whole.
pub(crate) async fn with_body<T: Send + 'static>(
    engine: &Arc<Engine>,
    request: Request,
    work: impl FnOnce(&Engine, crate::streams::ChannelReader) -> crate::error::Result<T>
    + Send
    + 'static,
) -> crate::error::Result<T> {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let worker = engine.blocking(move |e| work(e, crate::streams::ChannelReader::new(rx)));
    let feeder = async move {
        let mut body = request.into_body().into_data_stream();
        while let Some(Ok(chunk)) = body.next().await {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(worker, feeder).0
}

/// A response streaming the tar that `write` produces on a blocking thread;
/// an error midway ends the stream early, as with dockerd.
pub(crate) fn tar_stream(
    write: impl FnOnce(crate::streams::ChannelWriter) -> crate::error::Result<()> + Send + 'static,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write(crate::streams::ChannelWriter::new(tx)) {
            tracing::debug!(error = %e, "a tar stream ended early");
        }
    });
    let body = axum::body::Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>),
    );
    Response::builder()
        .header("content-type", "application/x-tar")
        .body(body)
        .unwrap_or_default()
}
