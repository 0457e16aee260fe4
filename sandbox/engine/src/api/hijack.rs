//! Attach and exec streams: the CLI sends `Connection: Upgrade` and
//! `Upgrade: tcp` and expects status 101, after which the connection is a
//! raw byte stream in both directions: output framed with stdcopy headers,
//! or raw for a TTY; the client's input; a half-close when its stdin ends.
//!
//! Everything that can fail is checked before the upgrade, so such errors
//! keep their status; after it, errors are only text in the stream. A
//! terminal behind such a stream takes its size from `resize` ([`resize_tty`]).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::error::{ApiError, ApiResult};
use super::query::Query;

/// The stream a handler gets once the client switched protocols.
pub(crate) type Hijacked = TokioIo<hyper::upgrade::Upgraded>;

/// Answers 101 and runs `serve` on the upgraded connection in a task of
/// its own; the task ends when `serve` does.
pub(crate) fn upgrade<F, Fut>(mut request: Request, serve: F) -> Response
where
    F: FnOnce(Hijacked) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "client did not take the upgraded stream"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("content-type", "application/vnd.docker.raw-stream")
        .header("connection", "Upgrade")
        .header("upgrade", "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

/// The client side of a hijacked stream, split for reading and writing.
pub(crate) fn split<S: AsyncRead + AsyncWrite>(
    stream: S,
) -> (tokio::io::ReadHalf<S>, tokio::io::WriteHalf<S>) {
    tokio::io::split(stream)
}

/// Watches a TTY's input for the detach sequence (ctrl-p ctrl-q by
/// default); returns how many bytes of `input` to forward and whether the
/// sequence completed. Keys held back because they may start the
/// sequence are returned by the next call when it does not complete.
pub(crate) struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    /// `spec` is Docker's form (`ctrl-p,ctrl-q`, `a,ctrl-x`); empty means
    /// the default.
    pub fn parse(spec: &str) -> Result<DetachKeys, String> {
        let spec = if spec.is_empty() {
            "ctrl-p,ctrl-q"
        } else {
            spec
        };
        let mut keys = Vec::new();
        for key in spec.split(',') {
            let k = key.trim();
            match k.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => {
                    let c = c.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => keys.push(c - b'a' + 1),
                        b'@' => keys.push(0),
                        b'[' => keys.push(27),
                        b'\\' => keys.push(28),
                        b']' => keys.push(29),
                        b'^' => keys.push(30),
                        b'_' => keys.push(31),
                        _ => return Err(format!("Invalid detach keys ({spec}) provided")),
                    }
                }
                None if k.len() == 1 => keys.push(k.as_bytes()[0]),
                _ => return Err(format!("Invalid detach keys ({spec}) provided")),
            }
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    /// Splits `input` into what to forward now; `true` when detaching.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// `resize` of a container or an exec: the terminal, if it has one (still),
/// takes the query's size.
pub(crate) fn resize_tty(pty: Option<Arc<runtime::Pty>>, query: &Query) -> ApiResult {
    let (rows, cols) = query.window_size()?;
    if let Some(pty) = pty {
        pty.resize(runtime::WindowSize { cols, rows })
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_end_an_attach_and_other_input_passes() {
        let mut d = DetachKeys::parse("").unwrap();
        assert_eq!(d.feed(b"ls\n"), (b"ls\n".to_vec(), false));
        assert_eq!(d.feed(&[0x10]), (vec![], false));
        assert_eq!(d.feed(b"x"), (vec![0x10, b'x'], false));
        assert_eq!(d.feed(&[b'a', 0x10, 0x11, b'z']), (vec![b'a'], true));
        let mut custom = DetachKeys::parse("a,ctrl-x").unwrap();
        assert_eq!(custom.feed(b"ba\x18"), (b"b".to_vec(), true));
        assert!(DetachKeys::parse("ctrl-1").is_err());
        assert!(DetachKeys::parse("ab").is_err());
    }
}
