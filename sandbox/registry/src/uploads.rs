//! Blob uploads: monolithic (`POST` then `PUT`, or one `POST ?digest=`),
//! chunked (`PATCH` with `Content-Range`, in order), status (`GET`),
//! cancel (`DELETE`) and cross-repository mount (`POST ?mount=&from=`).
//!
//! An upload is a store ingestion under the ref `registry/<namespace>/<uuid>`:
//! its bytes are on disk as they arrive, invisible until the final `PUT`
//! checked the digest, and the store hashes them as they are written: in
//! sha256, or in the algorithm the `POST` named (`?digest=` or
//! `?digest-algorithm=`); a final digest in another algorithm has the
//! store read the bytes once more. The
//! writer of an upload stays open in this process between requests (so a
//! chunk does not re-read what came before); after a restart, or a
//! `kill -9`, the next request resumes the ingestion from disk, and the
//! client learns where it stands from the `Range` header.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errdefs::ErrorKind;
use store::content::{ContentError, Expected, IngestManager, Ingester, Writer};
use store::{Algorithm, Digest};

use crate::context::{Call, append, insert_digest, lock, parse_digest};
use crate::error::{Code, Error, Result};
use crate::names::check_name;
use crate::state::{Registry, Slot, hold, holds};

/// Writers idle this long are closed (their bytes stay on disk, resumable).
const IDLE: Duration = Duration::from_secs(15 * 60);

fn ingest_ref(registry: &Registry, uuid: &str) -> String {
    format!("registry/{}/{uuid}", registry.namespace())
}

fn unknown(uuid: &str) -> Error {
    Error::protocol(
        Code::BlobUploadUnknown,
        format!(
            "upload {:?} is unknown: it was finished, cancelled or never started",
            uuid.chars().take(80).collect::<String>()
        ),
    )
}

/// The slot of an existing upload (one started by an earlier process is
/// found on disk).
async fn slot(registry: &Registry, uuid: &str) -> Result<Arc<tokio::sync::Mutex<Slot>>> {
    let canonical = uuid::Uuid::parse_str(uuid)
        .map(|u| u.hyphenated().to_string())
        .ok()
        .filter(|c| c == uuid)
        .ok_or_else(|| unknown(uuid))?;
    if let Some(slot) = lock(&registry.inner.uploads.live).get(&canonical) {
        return Ok(slot.clone());
    }
    let ingest = ingest_ref(registry, &canonical);
    let store = registry.store().clone();
    let on_disk = tokio::task::spawn_blocking(move || -> Result<bool> {
        Ok(store
            .content()
            .ingests()?
            .iter()
            .any(|i| i.ingest_ref == ingest))
    })
    .await??;
    if !on_disk {
        return Err(unknown(uuid));
    }
    let mut live = lock(&registry.inner.uploads.live);
    Ok(live
        .entry(canonical)
        .or_insert_with(|| {
            Arc::new(tokio::sync::Mutex::new(Slot {
                writer: None,
                touched: Instant::now(),
                done: false,
            }))
        })
        .clone())
}

/// Opens (or resumes) the writer of `uuid`, hashing in `algorithm`.
async fn open_writer(registry: &Registry, uuid: &str, algorithm: Algorithm) -> Result<Writer> {
    let store = registry.store().clone();
    let ingest = ingest_ref(registry, uuid);
    let expected = Expected::hashed_in(algorithm);
    Ok(tokio::task::spawn_blocking(move || store.content().writer(&ingest, expected)).await??)
}

/// `Range: 0-<last byte>` of an upload holding `offset` bytes.
fn insert_range(headers: &mut HeaderMap, offset: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("0-{}", offset.saturating_sub(1))) {
        headers.insert(header::RANGE, v);
    }
}

fn session_response(status: StatusCode, name: &str, uuid: &str, offset: u64) -> Response {
    let mut response = status.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/{name}/blobs/uploads/{uuid}")) {
        h.insert(header::LOCATION, v);
    }
    insert_range(h, offset);
    if let Ok(v) = HeaderValue::from_str(uuid) {
        h.insert("Docker-Upload-UUID", v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/{name}/blobs/{digest}")) {
        h.insert(header::LOCATION, v);
    }
    insert_digest(h, digest);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// `Content-Range: <start>-<end>` of a chunk, checked against the upload's
/// offset and the body's declared length.
pub(crate) fn check_chunk(headers: &HeaderMap, offset: u64) -> Result<()> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(());
    };
    let bad = |why: String| Error::protocol(Code::RangeInvalid, why);
    let text = value.to_str().unwrap_or_default();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let (start, end) = text
        .split_once('-')
        .and_then(|(s, e)| Some((s.trim().parse::<u64>().ok()?, e.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| bad(format!("Content-Range {value:?} is not <start>-<end>")))?;
    if start != offset || end < start {
        return Err(bad(format!(
            "chunk {start}-{end} does not continue the upload, which has {offset} bytes; send the chunk starting at {offset}"
        )));
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = length
        && length != end - start + 1
    {
        return Err(bad(format!(
            "Content-Range {start}-{end} is {} bytes but Content-Length is {length}",
            end - start + 1
        )));
    }
    Ok(())
}

/// `POST /v2/<name>/blobs/uploads/`: mount, monolithic upload, or a new
/// upload session.
pub(crate) async fn start(registry: &Registry, name: &str, call: Call) -> Result<Response> {
    if let Some(mount) = call.query.get("mount") {
        let digest = parse_digest(mount)?;
        // Without `from`, any repository of this registry may lend it.
        let from = call.query.get("from").map(String::as_str);
        if let Some(from) = from {
            check_name(from)?;
        }
        if holds(registry, from, &digest).await? {
            hold(registry, name, digest.clone()).await?;
            return Ok(blob_created(name, &digest));
        }
        // Not mountable: the spec asks for a plain upload session instead.
    }
    let digest = call
        .query
        .get("digest")
        .map(|d| parse_digest(d))
        .transpose()?;
    let algorithm = match (&digest, call.query.get("digest-algorithm")) {
        (Some(digest), _) => digest.algorithm(),
        (None, Some(name)) => name.parse().map_err(|e: store::digest::DigestError| {
            Error::protocol(Code::DigestInvalid, e.to_string())
        })?,
        (None, None) => Algorithm::Sha256,
    };
    evict_idle(registry);
    let uuid = uuid::Uuid::new_v4().hyphenated().to_string();
    let writer = open_writer(registry, &uuid, algorithm).await?;
    if let Some(digest) = digest {
        let (writer, appended) = append(writer, call.body).await?;
        return commit(registry, name, &uuid, writer, appended, &digest).await;
    }
    lock(&registry.inner.uploads.live).insert(
        uuid.clone(),
        Arc::new(tokio::sync::Mutex::new(Slot {
            writer: Some(writer),
            touched: Instant::now(),
            done: false,
        })),
    );
    Ok(session_response(StatusCode::ACCEPTED, name, &uuid, 0))
}

/// Closes writers nobody has used for [`IDLE`]; their uploads stay resumable.
fn evict_idle(registry: &Registry) {
    let mut live = lock(&registry.inner.uploads.live);
    live.retain(|_, slot| match slot.try_lock() {
        Ok(s) => s.touched.elapsed() < IDLE,
        Err(_) => true,
    });
}

async fn abort(registry: &Registry, uuid: &str) {
    lock(&registry.inner.uploads.live).remove(uuid);
    let store = registry.store().clone();
    let ingest = ingest_ref(registry, uuid);
    let result = tokio::task::spawn_blocking(move || store.content().abort(&ingest)).await;
    if let Ok(Err(e)) = result
        && e.kind() != ErrorKind::NotFound
    {
        tracing::warn!(uuid, error = %e, "cannot remove an upload's bytes");
    }
}

/// Publishes the upload if the body arrived whole and its digest is
/// `digest`; otherwise discards it.
async fn commit(
    registry: &Registry,
    name: &str,
    uuid: &str,
    writer: Writer,
    appended: Result<()>,
    digest: &Digest,
) -> Result<Response> {
    if let Err(e) = appended {
        drop(writer);
        abort(registry, uuid).await;
        return Err(e);
    }
    let size = writer.offset();
    let expected = digest.clone();
    let info = match tokio::task::spawn_blocking(move || writer.commit_as(expected)).await? {
        Ok(info) => info,
        Err(store::Error::Content(ContentError::DigestMismatch { actual, .. })) => {
            abort(registry, uuid).await;
            return Err(Error::protocol(
                Code::DigestInvalid,
                format!(
                    "the {size} bytes uploaded have digest {actual}, not {digest}; the upload was discarded"
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    lock(&registry.inner.uploads.live).remove(uuid);
    hold(registry, name, info.digest.clone()).await?;
    tracing::debug!(digest = %info.digest, size = info.size, "blob pushed");
    Ok(blob_created(name, &info.digest))
}

/// Takes the writer of a locked slot, opening it if this process has not yet.
async fn take_writer(registry: &Registry, uuid: &str, slot: &mut Slot) -> Result<Writer> {
    if slot.done {
        return Err(unknown(uuid));
    }
    slot.touched = Instant::now();
    match slot.writer.take() {
        Some(w) => Ok(w),
        // Resumed from disk: the algorithm the POST named is not known
        // here any more, and a final digest in another one costs a re-read.
        None => open_writer(registry, uuid, Algorithm::Sha256).await,
    }
}

/// `PATCH`: appends a chunk.
pub(crate) async fn patch(
    registry: &Registry,
    name: &str,
    uuid: &str,
    call: Call,
) -> Result<Response> {
    let slot = slot(registry, uuid).await?;
    let mut slot = slot.lock().await;
    let writer = take_writer(registry, uuid, &mut slot).await?;
    if let Err(e) = check_chunk(&call.headers, writer.offset()) {
        let offset = writer.offset();
        slot.writer = Some(writer);
        let mut response = e.into_response();
        insert_range(response.headers_mut(), offset);
        return Ok(response);
    }
    let (writer, appended) = append(writer, call.body).await?;
    let offset = writer.offset();
    slot.writer = Some(writer);
    appended?;
    Ok(session_response(StatusCode::ACCEPTED, name, uuid, offset))
}

/// `PUT ?digest=`: the optional last chunk, then the digest check and commit.
pub(crate) async fn finish(
    registry: &Registry,
    name: &str,
    uuid: &str,
    call: Call,
) -> Result<Response> {
    let slot = slot(registry, uuid).await?;
    let mut slot = slot.lock().await;
    let digest = call
        .query
        .get("digest")
        .ok_or_else(|| {
            Error::protocol(
                Code::DigestInvalid,
                "PUT needs ?digest=<algorithm>:<hex>, e.g. sha256:…",
            )
        })
        .and_then(|d| parse_digest(d))?;
    let writer = take_writer(registry, uuid, &mut slot).await?;
    if let Err(e) = check_chunk(&call.headers, writer.offset()) {
        slot.writer = Some(writer);
        return Err(e);
    }
    let (writer, appended) = append(writer, call.body).await?;
    slot.done = true;
    commit(registry, name, uuid, writer, appended, &digest).await
}

/// `GET`: where the upload stands.
pub(crate) async fn status(registry: &Registry, name: &str, uuid: &str) -> Result<Response> {
    let slot = slot(registry, uuid).await?;
    let mut slot = slot.lock().await;
    let writer = take_writer(registry, uuid, &mut slot).await?;
    let offset = writer.offset();
    slot.writer = Some(writer);
    Ok(session_response(StatusCode::NO_CONTENT, name, uuid, offset))
}

/// `DELETE`: cancels the upload and drops its bytes.
pub(crate) async fn cancel(registry: &Registry, uuid: &str) -> Result<Response> {
    let slot = slot(registry, uuid).await?;
    let mut slot = slot.lock().await;
    if slot.done {
        return Err(unknown(uuid));
    }
    slot.done = true;
    slot.writer = None;
    abort(registry, uuid).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
