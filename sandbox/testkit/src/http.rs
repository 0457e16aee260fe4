//! A keep-alive HTTP/1.1 client on one connection, for servers that answer
//! before they read a request's body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderValue};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// What came back on one connection: the early answer, and the answer to
/// the request sent after it on the same connection, or why none came.
#[derive(Debug)]
pub struct EarlyAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub next: Result<StatusCode, String>,
}

impl EarlyAnswer {
    /// Whether the early answer told the client not to reuse the connection.
    pub fn says_close(&self) -> bool {
        self.headers
            .get(CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
    }
}

/// Sends `first` on a new connection to `addr` with its body held back
/// until the answer's head has arrived, then the body, then `next` on the
/// same connection, as a keep-alive client does when a server answers
/// before the body reached it.
pub async fn answer_before_body(
    addr: SocketAddr,
    first: Request<Bytes>,
    next: Request<()>,
) -> EarlyAnswer {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the server");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let (mut parts, body) = first.into_parts();
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    insert_host(&mut parts.headers, addr);
    let (release, held) = tokio::sync::oneshot::channel::<()>();
    let late = futures_util::stream::once(async move {
        let _ = held.await;
        Ok::<_, Infallible>(Frame::data(body))
    });
    let request = Request::from_parts(parts, BoxBody::new(StreamBody::new(late)));
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("no answer in 10 s: the server waits for the body instead of answering early")
        .expect("the first answer");
    let _ = release.send(());
    let (head, body) = response.into_parts();
    let _ = body.collect().await;
    let next = async {
        sender.ready().await.map_err(|e| e.to_string())?;
        let (mut parts, ()) = next.into_parts();
        insert_host(&mut parts.headers, addr);
        let request = Request::from_parts(parts, BoxBody::new(Empty::<Bytes>::new()));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(response.status())
    };
    let next = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .unwrap_or_else(|_| Err("no answer to the next request in 10 s".into()));
    EarlyAnswer {
        status: head.status,
        headers: head.headers,
        next,
    }
}

fn insert_host(headers: &mut HeaderMap, addr: SocketAddr) {
    if let Ok(v) = HeaderValue::from_str(&addr.to_string()) {
        headers.insert(HOST, v);
    }
}
