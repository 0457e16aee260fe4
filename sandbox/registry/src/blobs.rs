//! `GET`/`HEAD /v2/<name>/blobs/<digest>` (with a single `Range`) and
//! `DELETE`.

use std::io::{Read, Seek, SeekFrom};

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use errdefs::ErrorKind;
use futures_util::Stream;
use store::Digest;

use crate::context::{Call, insert_digest, lock, parse_digest};
use crate::error::{Code, Error, Result};
use crate::state::{Registry, holds};
use crate::upstream::upstream_repository;

fn unknown(name: &str, digest: &Digest) -> Error {
    Error::protocol(
        Code::BlobUnknown,
        format!("blob {digest} is not in repository {name}"),
    )
}

/// A `Range: bytes=a-b` request against a blob of `size` bytes; `None`
/// when the header is absent. One range only, as every client sends.
pub(crate) fn range(header: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(value) = header else {
        return Ok(None);
    };
    let bad = || {
        Error::protocol(
            Code::RangeInvalid,
            format!("range {value:?} is not within the blob's {size} bytes"),
        )
    };
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("bytes="))
        .ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end) = match (start.trim(), end.trim()) {
        // `bytes=-N`: the last N bytes.
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| bad())?;
            if n == 0 || size == 0 {
                return Err(bad());
            }
            (size.saturating_sub(n), size - 1)
        }
        (s, "") => (s.parse().map_err(|_| bad())?, size.saturating_sub(1)),
        (s, e) => {
            let e: u64 = e.parse().map_err(|_| bad())?;
            (s.parse().map_err(|_| bad())?, e.min(size.saturating_sub(1)))
        }
    };
    if start > end || start >= size {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

pub(crate) async fn get(
    registry: &Registry,
    name: &str,
    digest: &str,
    call: Call,
) -> Result<Response> {
    let digest = parse_digest(digest)?;
    // A blob this repository does not hold is not even opened.
    let local = if holds(registry, Some(name), &digest).await? {
        match registry.store().open_blob(&digest) {
            Ok(file) => Some(file),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let file = match local {
        Some(file) => file,
        None => {
            if !pull_through(registry, name, &digest).await? {
                return Err(unknown(name, &digest));
            }
            registry.store().open_blob(&digest)?
        }
    };
    let size = file
        .metadata()
        .map_err(|e| Error::Body(format!("cannot stat blob {digest}: {e}")))?
        .len();
    let range = match range(call.headers.get(header::RANGE), size) {
        Ok(r) => r,
        Err(e) => {
            let mut response = e.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let (status, start, len) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if call.method == Method::HEAD {
        Body::empty()
    } else {
        let mut file = file;
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .map_err(|e| Error::Body(format!("cannot seek in blob {digest}: {e}")))?;
        }
        Body::from_stream(chunks(file.take(len)))
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    insert_digest(h, &digest);
    if range.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// For the hub with an upstream: fetches a blob the catalog lacks (or
/// whose manifest was pulled through before its layers); `false` when
/// there is no upstream or it does not have the blob.
async fn pull_through(registry: &Registry, name: &str, digest: &Digest) -> Result<bool> {
    let (Some(upstream), Some(repository)) = (registry.upstream(), upstream_repository(name))
    else {
        return Ok(false);
    };
    let fetched = upstream.blob(registry.store(), &repository, digest).await?;
    if fetched {
        tracing::info!(name, %digest, upstream = %upstream.url(), "pulled a blob through");
    }
    Ok(fetched)
}

/// Bytes read from a blob at a time: large enough that the hand-off to a
/// blocking thread is a small part of each read.
const CHUNK: u64 = 512 * 1024;

/// The bytes of `reader` as a body stream, read [`CHUNK`] at a time on
/// tokio's blocking pool. Each read goes straight into the buffer that is
/// sent (`tokio::fs::File` would copy it once more through its own), and no
/// thread is held while a slow client drains the socket.
fn chunks(reader: std::io::Take<std::fs::File>) -> impl Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(CHUNK.min(reader.limit()) as usize);
            let result = (&mut reader).take(CHUNK).read_to_end(&mut buf);
            (reader, result.map(|_| buf))
        })
        .await;
        match read {
            Ok((_, Ok(buf))) if buf.is_empty() => None,
            Ok((reader, Ok(buf))) => Some((Ok(Bytes::from(buf)), Some(reader))),
            Ok((_, Err(e))) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    })
}

/// Drops the blob from repository `name`; the store frees its bytes at
/// the next GC if nothing else holds them.
pub(crate) async fn delete(registry: &Registry, name: &str, digest: &str) -> Result<Response> {
    let digest = parse_digest(digest)?;
    let registry2 = registry.clone();
    let (n, d) = (name.to_owned(), digest.clone());
    let removed = tokio::task::spawn_blocking(move || -> Result<bool> {
        let Some(links) = &registry2.inner.blobs else {
            return Ok(false);
        };
        lock(links).unlink(&n, &d)
    })
    .await??;
    if !removed {
        return Err(unknown(name, &digest));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, size: u64) -> Result<Option<(u64, u64)>> {
        range(Some(&HeaderValue::from_str(v).expect("header")), size)
    }

    #[test]
    fn ranges_inside_the_blob_are_served_and_others_refused() {
        assert_eq!(r("bytes=0-9", 100).ok().flatten(), Some((0, 9)));
        assert_eq!(r("bytes=90-", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(r("bytes=-10", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(r("bytes=95-200", 100).ok().flatten(), Some((95, 99)));
        for bad in [
            "bytes=100-",
            "bytes=9-0",
            "items=0-1",
            "bytes=a-b",
            "bytes=-0",
        ] {
            assert!(r(bad, 100).is_err(), "{bad}");
        }
        assert!(range(None, 5).expect("no header").is_none());
    }
}
