//! The labs' Debian package repository over HTTP, inside each lab: labs
//! have no egress, so `apt-get install figlet` in a container (or in the
//! node) is answered from the repository the catalog build prepared
//! (`images::packages`), read-only.
//!
//! One listener per lab, on [`PORT`] of every address of the node's
//! network namespace, so each network's gateway answers, those of networks
//! created later included; containers find it as [`HOST`], a line of their
//! `/etc/hosts` naming their own gateway. Only `GET` and `HEAD` of files
//! under `/debian/` are served; a path is checked segment by segment
//! before it touches the file system, and the last component is opened
//! without following a link, so no request reads outside the repository.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

/// The name containers reach the repository by.
pub const HOST: &str = "packages.layerlab.internal";
/// Its port. Not 80: a listener on the node's port 80 would make
/// `docker run -p 80:80` fail with "address already in use".
pub const PORT: u16 = 3142;
/// The URL prefix of the repository (`deb http://HOST:PORT/debian …`).
const PREFIX: &str = "/debian/";
/// Bytes read from a file at a time.
const READ_CHUNK: usize = 256 << 10;

/// Connections one lab may hold open at once; apt uses one or two.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new listener waits for the port of the engine it replaces.
const BIND_ATTEMPTS: u32 = 50;
const BIND_RETRY: Duration = Duration::from_millis(100);

/// The `/etc/hosts` line of a container whose network's gateway is `gateway`.
pub fn hosts_line(gateway: Ipv4Addr) -> (String, String) {
    (gateway.to_string(), HOST.to_owned())
}

/// Serves `root` in lab `lab`'s network until the task is aborted.
pub(crate) async fn serve(runtime: Arc<runtime::Runtime>, lab: String, root: PathBuf) {
    let Some(listener) = bind(&runtime, &lab).await else {
        return;
    };
    let root = Arc::new(root);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let root = root.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let root = root.clone();
                async move { Ok::<_, Infallible>(respond(&root, req.method(), req.uri().path()).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// The lab's listener. The engine this one replaces may still hold the
/// port for a moment, so a taken port is tried again for a while; if a
/// program in the node holds it, the lab goes without a repository.
async fn bind(runtime: &Arc<runtime::Runtime>, lab: &str) -> Option<tokio::net::TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT));
    for attempt in 1..=BIND_ATTEMPTS {
        let (rt, id) = (runtime.clone(), lab.to_owned());
        let bound = tokio::task::spawn_blocking(move || rt.listen_tcp(&id, addr)).await;
        let error = match bound {
            Ok(Ok(listener)) => match listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
            {
                Ok(listener) => return Some(listener),
                Err(e) => e.to_string(),
            },
            Ok(Err(runtime::Error::Listen { source, .. }))
                if source.kind() == std::io::ErrorKind::AddrInUse && attempt < BIND_ATTEMPTS =>
            {
                tokio::time::sleep(BIND_RETRY).await;
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(lab, port = PORT, error, "no package repository in this lab");
        return None;
    }
    None
}

/// The answer to `method path`: a file of `root`, or an empty error.
async fn respond(root: &Path, method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let file = match resolve(root, path) {
        Ok(file) => file,
        Err(code) => return status(code),
    };
    let opened = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&file)
        .await;
    let Ok(opened) = opened else {
        return status(StatusCode::NOT_FOUND);
    };
    let Ok(meta) = opened.metadata().await else {
        return status(StatusCode::NOT_FOUND);
    };
    if !meta.is_file() {
        return status(StatusCode::NOT_FOUND);
    }
    // Large reads: every read of a tokio file is a trip to a blocking
    // thread, and the default 4 KiB would make a package hundreds of them.
    let mut response = Response::new(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(opened, READ_CHUNK),
    ));
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, meta.len().into());
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

/// The file under `root` that the request path `path` names: 404 outside
/// the repository's prefix, 400 for a segment that is empty, `.`, `..`, or
/// has a character no repository file name has (after percent-decoding,
/// so `%2e%2e` is `..` and `%2f` a separator).
pub(crate) fn resolve(root: &Path, path: &str) -> Result<PathBuf, StatusCode> {
    let rest = path.strip_prefix(PREFIX).ok_or(StatusCode::NOT_FOUND)?;
    let decoded = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut file = root.to_owned();
    for segment in decoded.split('/') {
        let plain = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+~-:".contains(c));
        if !plain {
            return Err(StatusCode::BAD_REQUEST);
        }
        file.push(segment);
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_paths_resolve_beneath_the_root() {
        let root = Path::new("/srv/repo");
        for (path, file) in [
            (
                "/debian/dists/bookworm/InRelease",
                "/srv/repo/dists/bookworm/InRelease",
            ),
            (
                "/debian/pool/main/libc%2b%2b1_1%3a2.0~rc1_amd64.deb",
                "/srv/repo/pool/main/libc++1_1:2.0~rc1_amd64.deb",
            ),
        ] {
            assert_eq!(resolve(root, path), Ok(PathBuf::from(file)), "{path}");
        }
    }

    #[test]
    fn hostile_paths_are_refused_before_the_file_system() {
        let root = Path::new("/srv/repo");
        for path in [
            "/debian/../../etc/passwd",
            "/debian/dists/../../../etc/passwd",
            "/debian/%2e%2e/%2e%2e/etc/passwd",
            "/debian/%2E%2E%2f%2E%2E%2fetc%2fpasswd",
            "/debian/pool/..%2f..%2fetc/passwd",
            "/debian/./dists",
            "/debian//etc/passwd",
            "/debian/dists/",
            "/debian/",
            "/debian/a%00b",
            "/debian/a\\..\\b",
            "/debian/%ff",
        ] {
            assert_eq!(
                resolve(root, path),
                Err(StatusCode::BAD_REQUEST),
                "{path} was not refused"
            );
        }
        for path in ["/etc/passwd", "/../etc/passwd", "/", "/debianx/dists", ""] {
            assert_eq!(resolve(root, path), Err(StatusCode::NOT_FOUND), "{path}");
        }
    }

    #[tokio::test]
    async fn files_are_served_and_nothing_outside_or_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join("dists")).unwrap();
        std::fs::write(root.join("dists/Release"), "Suite: bookworm\n").unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("dists/link")).unwrap();

        let ok = respond(&root, &Method::GET, "/debian/dists/Release").await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[CONTENT_LENGTH], "16");
        let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"Suite: bookworm\n");

        for (method, path, code) in [
            (Method::GET, "/debian/dists/link", StatusCode::NOT_FOUND),
            (Method::GET, "/debian/dists", StatusCode::NOT_FOUND),
            (Method::GET, "/debian/dists/Packages", StatusCode::NOT_FOUND),
            (
                Method::GET,
                "/debian/%2e%2e/secret",
                StatusCode::BAD_REQUEST,
            ),
            (
                Method::POST,
                "/debian/dists/Release",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ] {
            let response = respond(&root, &method, path).await;
            assert_eq!(response.status(), code, "{method} {path}");
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            assert!(body.is_empty(), "{method} {path} gave a body");
        }
    }
}
