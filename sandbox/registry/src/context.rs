//! What every handler shares: the request as handlers see it, and the
//! small helpers on digests, locks and bodies. A leaf: it reaches no other
//! module of the crate but the error table, so any module may use it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method};
use bytes::Bytes;
use futures_util::StreamExt;
use store::Digest;
use store::content::Writer;

use crate::error::{Code, Error, Result};

/// The request as the handlers see it.
pub(crate) struct Call {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: Body,
}

/// Locks a std mutex, recovering from a panic in another holder: every
/// value kept under these locks stays consistent between statements.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A digest named in a URL or query; a malformed one is the spec's
/// `DIGEST_INVALID`.
pub(crate) fn parse_digest(text: &str) -> Result<Digest> {
    text.parse().map_err(|e: store::digest::DigestError| {
        Error::protocol(Code::DigestInvalid, e.to_string())
    })
}

/// The `Docker-Content-Digest` header clients check a blob or manifest by.
pub(crate) fn insert_digest(headers: &mut HeaderMap, digest: &Digest) {
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("Docker-Content-Digest", v);
    }
}

/// Body chunks waiting for the disk, per upload. hyper hands over chunks
/// of up to a few hundred KiB, so a class of uploads at once holds a few
/// MiB each at most; the disk keeps up with a short queue.
const QUEUED_CHUNKS: usize = 4;

/// Appends the request body to `writer`. The writer comes back even when
/// the body broke off: what arrived stays part of the upload.
pub(crate) async fn append(writer: Writer, body: Body) -> Result<(Writer, Result<()>)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let task = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        let mut result = Ok(());
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = writer.write_all(&chunk) {
                result = Err(Error::Ingest(e));
                break;
            }
        }
        (writer, result)
    });
    let mut stream = body.into_data_stream();
    let mut body_result = Ok(());
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                body_result = Err(Error::Body(e.to_string()));
                break;
            }
        }
    }
    drop(tx);
    let (writer, write_result) = task.await?;
    Ok((writer, write_result.and(body_result)))
}
