//! Answers sent before the request's body was read, made safe for
//! keep-alive clients.
//!
//! A handler may answer without reading the body (an upload chunk refused
//! for its range, a manifest declared too large, a form refused before it
//! is parsed). hyper then stops reading the request; when it has already
//! written the answer's head it closes the connection afterwards without
//! having said `Connection: close`, and a client that sends its next
//! request on that connection gets an EOF. [`drain_unread`] sees every body
//! a handler dropped unread: a rest of known, small size is read to its end
//! after the answer (the connection stays usable); any other rest gets
//! `Connection: close` on the answer, which hyper honours and clients obey.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};

use crate::context::lock;

/// The largest unread rest read to its end after an early answer: a
/// refused upload chunk or form, not a whole layer.
pub const DRAIN_LIMIT: u64 = 1 << 20;

/// How long that read may take; a client that stalls longer loses the
/// connection, which it cannot have reused meanwhile.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Where a body dropped unread is left for the middleware.
type Leftover = Arc<Mutex<Option<Body>>>;

/// The request's body as handlers see it: itself, until it is dropped
/// before its end.
struct Watched {
    inner: Body,
    leftover: Leftover,
    ended: bool,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // A broken body ends the connection anyway: nothing to drain.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.ended && !self.inner.is_end_stream() {
            *lock(&self.leftover) = Some(std::mem::take(&mut self.inner));
        }
    }
}

/// Middleware: reads what a handler left of the request's body, or closes
/// the connection after the answer (see the module doc).
pub async fn drain_unread(request: Request, next: Next) -> Response {
    // Reading the body would ask a client that waits for `100 Continue`
    // to send what nobody wants.
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let leftover = Leftover::default();
    let request = request.map(|inner| {
        Body::new(Watched {
            inner,
            leftover: leftover.clone(),
            ended: false,
        })
    });
    let mut response = next.run(request).await;
    let Some(unread) = lock(&leftover).take() else {
        return response;
    };
    let small = unread.size_hint().upper().is_some_and(|n| n <= DRAIN_LIMIT);
    if small && !expects_continue {
        tokio::spawn(drain(unread));
    } else {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads `body` to its end, for at most [`DRAIN_TIME`].
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let read = async { while let Some(Ok(_)) = stream.next().await {} };
    if tokio::time::timeout(DRAIN_TIME, read).await.is_err() {
        tracing::debug!("a request's unread body did not end in time; its connection closes");
    }
}
