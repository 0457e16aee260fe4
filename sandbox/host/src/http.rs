//! HTTP into a node's network (DESIGN.md's `registry_get`, for any
//! request): the grader's `http` and `registry` checks ask a server that
//! runs inside the node, as the student's own `curl` would.
//!
//! The connection is made inside the node's network namespace (the
//! runtime's `connect_tcp`), so `localhost` is the node's loopback and
//! nothing on the host is reachable. Over that socket hyper speaks
//! HTTP/1.1 on a private single-threaded tokio runtime, on a thread of its
//! own so callers may be blocking threads of another runtime. The answer
//! comes from student code and is hostile: the whole exchange has one
//! deadline, headers are capped by hyper's read buffer, and the body is cut
//! at the caller's limit.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

pub use crate::error::HttpError;
use crate::error::Result;

/// Largest response head (status line and headers) read from a node.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A request to send into a node's network.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Host name or IP literal, resolved inside the node (`localhost` is
    /// the node's loopback).
    pub host: String,
    pub port: u16,
    /// Upper-case method (`GET`).
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For connecting, sending and reading the whole answer.
    pub timeout: Duration,
    /// Bytes of body kept; the rest is not read.
    pub max_body: usize,
}

impl HttpRequest {
    /// A `GET` with a 5 s deadline and a 1 MiB body limit.
    pub fn get(host: impl Into<String>, port: u16, path: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(5),
            max_body: 1 << 20,
        }
    }
}

/// What the node's server answered.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Names lower-cased, in the order received; values that are not
    /// UTF-8 are replaced lossily.
    pub headers: Vec<(String, String)>,
    /// At most `max_body` bytes.
    pub body: Vec<u8>,
    /// The server sent more than `max_body` bytes of body.
    pub truncated: bool,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An IP literal (`127.0.0.1`, `[::1]`) or `localhost`, else `None`.
pub(crate) fn literal_address(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// The first IPv4 address in `getent ahostsv4` output.
pub(crate) fn parse_getent(output: &str) -> Option<IpAddr> {
    output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find_map(|a| a.parse::<Ipv4Addr>().ok())
        .map(IpAddr::V4)
}

/// Checks what goes on the wire before anything is connected.
pub(crate) fn validate(request: &HttpRequest) -> Result<(), HttpError> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !token(&request.method) {
        return Err(HttpError::Invalid(format!(
            "method {:?} is not an HTTP token",
            request.method
        )));
    }
    if !request.path.starts_with('/') || request.path.parse::<http::Uri>().is_err() {
        return Err(HttpError::Invalid(format!(
            "path {:?} must start with / and be a valid URI path",
            request.path
        )));
    }
    if request.host.is_empty() || request.host.len() > 253 {
        return Err(HttpError::Invalid("host name is empty or too long".into()));
    }
    Ok(())
}

/// Sends `request` over `stream` (already connected inside the node) and
/// reads the answer, all before `deadline`.
pub(crate) fn exchange(
    stream: TcpStream,
    request: &HttpRequest,
    deadline: Instant,
) -> Result<HttpResponse, HttpError> {
    let timed_out = || HttpError::Timeout {
        host: request.host.clone(),
        port: request.port,
        timeout: request.timeout,
    };
    let protocol = |reason: String| HttpError::Protocol {
        host: request.host.clone(),
        port: request.port,
        reason,
    };
    let remaining = deadline
        .checked_duration_since(Instant::now())
        .ok_or_else(timed_out)?;
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str())
        .header(http::header::HOST, host_header(request))
        .header(http::header::USER_AGENT, "layerlab-grader");
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let http_request = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| HttpError::Invalid(e.to_string()))?;
    let max_body = request.max_body;
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| protocol(format!("cannot start the HTTP client: {e}")))?;
            rt.block_on(async move {
                let fut = async {
                    stream
                        .set_nonblocking(true)
                        .map_err(|e| protocol(e.to_string()))?;
                    let stream = tokio::net::TcpStream::from_std(stream)
                        .map_err(|e| protocol(e.to_string()))?;
                    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
                        .max_buf_size(MAX_HEAD_BYTES.max(8192))
                        .handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .map_err(|e| protocol(e.to_string()))?;
                    // The connection task ends with the runtime, whatever it
                    // was doing.
                    tokio::spawn(conn);
                    let response = sender
                        .send_request(http_request)
                        .await
                        .map_err(|e| protocol(e.to_string()))?;
                    let status = response.status().as_u16();
                    let headers = response
                        .headers()
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    let mut body = response.into_body();
                    let mut kept = Vec::new();
                    let mut truncated = false;
                    while let Some(frame) = body.frame().await {
                        let frame = frame.map_err(|e| protocol(e.to_string()))?;
                        if let Some(data) = frame.data_ref() {
                            let room = max_body - kept.len();
                            if data.len() > room {
                                kept.extend_from_slice(&data[..room]);
                                truncated = true;
                                break;
                            }
                            kept.extend_from_slice(data);
                        }
                    }
                    Ok(HttpResponse {
                        status,
                        headers,
                        body: kept,
                        truncated,
                    })
                };
                tokio::time::timeout(remaining, fut)
                    .await
                    .unwrap_or_else(|_| Err(timed_out()))
            })
        })
        .join()
        .unwrap_or_else(|_| Err(protocol("the HTTP client panicked".into())))
    })
}

fn host_header(request: &HttpRequest) -> String {
    if request.host.contains(':') && !request.host.starts_with('[') {
        format!("[{}]:{}", request.host, request.port)
    } else {
        format!("{}:{}", request.host, request.port)
    }
}
