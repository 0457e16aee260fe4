//! Push and pull against registries inside the lab (`localhost:5000`, a
//! registry container's address): the client side of the OCI distribution
//! protocol, over connections made in the lab's network, never the host's.
//!
//! Like dockerd with `localhost` and `127.0.0.0/8` as insecure
//! registries, it speaks plain HTTP; credentials from `docker login` come
//! with each request as basic auth. Everything a registry answers is
//! untrusted: documents are size-capped and parsed, blobs are written
//! through the store, which checks digest and size before they exist.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use store::manifests::{self, Document, MAX_DOCUMENT_SIZE};
use store::media_types;
use store::{Digest, Expected, Image, Reference, Store};

use crate::error::{Error, Result};

/// How long a connection may take to open.
const CONNECT: Duration = Duration::from_secs(10);

/// `docker login` credentials for one registry.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// From the CLI's `X-Registry-Auth` header: base64url JSON with
    /// `username` and `password`; anything else means none.
    pub fn from_header(value: Option<&str>) -> Option<Credentials> {
        use base64::Engine as _;
        let raw = value?.trim();
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let username = json["username"].as_str()?.to_owned();
        let password = json["password"].as_str().unwrap_or_default().to_owned();
        (!username.is_empty()).then_some(Credentials { username, password })
    }

    fn header(&self) -> String {
        use base64::Engine as _;
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// One registry, reached through the lab's network.
pub struct Registry {
    runtime: Arc<runtime::Runtime>,
    node: String,
    host: String,
    addr: SocketAddr,
    credentials: Option<Credentials>,
}

/// What a push or pull step reports, for the progress stream.
pub trait Report: Send + Sync {
    fn layer(&self, id: &str, status: &str);
    fn status(&self, status: &str);
}

/// A body of any kind, as requests in the lab send them.
pub(crate) type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An HTTP/1.1 connection to `addr` made in the lab's network (the node's
/// `node`), for one request after another; the error in Go's words, as
/// the CLI prints a dial failure.
pub(crate) async fn connect_in_lab(
    runtime: Arc<runtime::Runtime>,
    node: &str,
    addr: SocketAddr,
) -> std::result::Result<hyper::client::conn::http1::SendRequest<AnyBody>, String> {
    let node = node.to_owned();
    let stream = tokio::task::spawn_blocking(move || runtime.connect_tcp(&node, addr, CONNECT))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| match e {
            runtime::Error::Connect { source, .. } => format!("dial tcp {addr}: connect: {source}"),
            e => e.to_string(),
        })?;
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `host` or `host:port` of a URL as an address in the lab: an IP, or
/// `localhost` (the node); the lab has no names beyond those.
pub(crate) fn lab_address(host: &str, default_port: u16) -> Option<SocketAddr> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, port.parse().ok()?),
        None => (host, default_port),
    };
    let ip: IpAddr = match name {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

impl Registry {
    /// `host` is the reference's registry part (`localhost:5000`,
    /// `172.17.0.2:5000`); `node` the lab's node, whose network it is in.
    pub fn new(
        runtime: Arc<runtime::Runtime>,
        node: &str,
        host: &str,
        credentials: Option<Credentials>,
    ) -> Result<Registry> {
        let unreachable = || {
            Error::InvalidArgument(format!(
                "registry {host} is not reachable from this lab: use localhost:PORT (a published port) or a container's IP:PORT"
            ))
        };
        if !host.contains(':') {
            return Err(unreachable());
        }
        let addr = lab_address(host, 0).ok_or_else(unreachable)?;
        Ok(Registry {
            runtime,
            node: node.to_owned(),
            host: host.to_owned(),
            addr,
            credentials,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: AnyBody,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let mut sender = connect_in_lab(self.runtime.clone(), &self.node, self.addr)
            .await
            .map_err(|e| self.failed(&e))?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header(
                "user-agent",
                concat!("layerlab-engine/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(c) = &self.credentials {
            request = request.header("authorization", c.header());
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(body)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.failed(&e.to_string()))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::InvalidArgument(match &self.credentials {
                None => format!(
                    "no basic auth credentials: run `docker login {}` first",
                    self.host
                ),
                Some(_) => format!(
                    "unauthorized: the registry at {} refused these credentials; run `docker login {}` again",
                    self.host, self.host
                ),
            }));
        }
        Ok(response)
    }

    fn failed(&self, why: &str) -> Error {
        Error::InvalidArgument(format!(
            "Get \"http://{}/v2/\": {why}: is a registry listening there inside the lab?",
            self.host
        ))
    }

    fn empty() -> AnyBody {
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed()
    }

    async fn read_limited(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
        limit: u64,
    ) -> Result<Bytes> {
        let body = http_body_util::Limited::new(response.into_body(), limit as usize);
        body.collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| self.failed(&format!("reading the answer: {e}")))
    }

    /// `docker login`: whether the credentials open `/v2/`.
    pub async fn check_login(&self) -> Result<()> {
        let response = self.send(Method::GET, "/v2/", &[], Self::empty()).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "login attempt to http://{}/v2/ failed with status: {}",
                self.host,
                response.status()
            )))
        }
    }

    /// Pushes `image` (its blobs from `store`) as `reference`.
    pub async fn push(
        &self,
        store: &Store,
        image: &Image,
        reference: &Reference,
        report: &dyn Report,
    ) -> Result<()> {
        let repo = reference.repository();
        report.status(&format!(
            "The push refers to repository [{}]",
            reference.name()
        ));
        let mut blobs: Vec<(Digest, u64)> = image
            .layers
            .iter()
            .rev()
            .map(|l| (l.digest.clone(), l.size))
            .collect();
        for (digest, _) in &blobs {
            report.layer(&crate::images::short_id(digest), "Preparing");
        }
        let config_size = image.config_bytes.len() as u64;
        blobs.push((image.config_digest.clone(), config_size));
        for (digest, size) in &blobs {
            let id = crate::images::short_id(digest);
            let head = self
                .send(
                    Method::HEAD,
                    &format!("/v2/{repo}/blobs/{digest}"),
                    &[],
                    Self::empty(),
                )
                .await?;
            if head.status().is_success() {
                if digest != &image.config_digest {
                    report.layer(&id, "Layer already exists");
                }
                continue;
            }
            let started = self
                .send(
                    Method::POST,
                    &format!("/v2/{repo}/blobs/uploads/"),
                    &[],
                    Self::empty(),
                )
                .await?;
            let location = started
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .filter(|_| started.status() == StatusCode::ACCEPTED)
                .ok_or_else(|| self.refused("start an upload", started.status()))?;
            let path = location_path(location);
            let separator = if path.contains('?') { '&' } else { '?' };
            let file = tokio::fs::File::open(store.blob_path(digest)?)
                .await
                .map_err(|e| Error::state(store.root())(e))?;
            let frames =
                tokio_util::io::ReaderStream::new(file).map(|chunk| chunk.map(Frame::data));
            let length = size.to_string();
            let put = self
                .send(
                    Method::PUT,
                    &format!("{path}{separator}digest={digest}"),
                    &[
                        ("content-type", "application/octet-stream"),
                        ("content-length", &length),
                    ],
                    BodyExt::boxed(StreamBody::new(frames)),
                )
                .await?;
            if put.status() != StatusCode::CREATED {
                return Err(self.refused("take a blob", put.status()));
            }
            if digest != &image.config_digest {
                report.layer(&id, "Pushed");
            }
        }
        let tag = reference.tag().unwrap_or("latest");
        let length = image.manifest_bytes.len().to_string();
        let put = self
            .send(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{tag}"),
                &[
                    ("content-type", image.manifest_media_type.as_str()),
                    ("content-length", &length),
                ],
                Full::new(Bytes::from(image.manifest_bytes.clone()))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .await?;
        if put.status() != StatusCode::CREATED {
            return Err(self.refused("take the manifest", put.status()));
        }
        report.status(&format!(
            "{tag}: digest: {} size: {}",
            image.manifest_digest,
            image.manifest_bytes.len()
        ));
        Ok(())
    }

    fn refused(&self, what: &str, status: StatusCode) -> Error {
        Error::InvalidArgument(format!(
            "the registry at {} did not {what}: it answered {status}",
            self.host
        ))
    }

    /// Pulls `reference` into `store` and returns its manifest digest
    /// (the caller names it).
    pub async fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        report: &dyn Report,
    ) -> Result<Digest> {
        let repo = reference.repository();
        let wanted = reference
            .digest()
            .map(ToString::to_string)
            .or_else(|| reference.tag().map(str::to_owned))
            .unwrap_or_else(|| "latest".to_owned());
        let mut manifest = self.fetch_document(store, reference, repo, &wanted).await?;
        if let (Document::Index(index), _) = manifests::parse_document(
            &manifest.to_string(),
            &store.read_blob(&manifest, MAX_DOCUMENT_SIZE)?,
            None,
        )? {
            let chosen = manifests::for_this_host(&index).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "no matching manifest for linux/{} in the manifest list entries",
                    manifests::host_architecture()
                ))
            })?;
            let child = Digest::try_from(chosen.digest())
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            self.fetch_document(store, reference, repo, &child.to_string())
                .await?;
            manifest = child;
        }
        let bytes = store.read_blob(&manifest, MAX_DOCUMENT_SIZE)?;
        let (Document::Manifest(doc), _) =
            manifests::parse_document(&manifest.to_string(), &bytes, None)?
        else {
            return Err(Error::InvalidArgument(
                "nested manifest lists are not supported".into(),
            ));
        };
        // The config is fetched like a layer but, as dockerd does, only
        // layers get a progress line.
        let mut blobs = vec![(doc.config().digest().clone(), doc.config().size(), false)];
        blobs.extend(
            doc.layers()
                .iter()
                .map(|l| (l.digest().clone(), l.size(), true)),
        );
        for (digest, size, is_layer) in blobs {
            let digest =
                Digest::try_from(&digest).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            let id = crate::images::short_id(&digest);
            if store.blob_exists(&digest) {
                if is_layer {
                    report.layer(&id, "Already exists");
                }
                continue;
            }
            let response = self
                .send(
                    Method::GET,
                    &format!("/v2/{repo}/blobs/{digest}"),
                    &[],
                    Self::empty(),
                )
                .await?;
            if response.status() != StatusCode::OK {
                return Err(self.refused("serve a blob", response.status()));
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            let store = store.clone();
            let expected = Expected::exact(digest.clone(), size);
            let writer = tokio::task::spawn_blocking(move || {
                store.write_blob(crate::streams::ChannelReader::new(rx), expected)
            });
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| self.failed(&e.to_string()))?;
                if let Ok(data) = frame.into_data()
                    && tx.send(data).await.is_err()
                {
                    break;
                }
            }
            drop(tx);
            writer.await??;
            if is_layer {
                report.layer(&id, "Pull complete");
            }
        }
        Ok(manifest)
    }

    /// Fetches a manifest or index into the store, checked against the
    /// digest asked for (when a digest was asked for).
    async fn fetch_document(
        &self,
        store: &Store,
        reference: &Reference,
        repo: &str,
        wanted: &str,
    ) -> Result<Digest> {
        let accept = [
            media_types::OCI_MANIFEST,
            media_types::DOCKER_MANIFEST,
            media_types::OCI_INDEX,
            media_types::DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let response = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/manifests/{wanted}"),
                &[("accept", &accept)],
                Self::empty(),
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Error::ManifestUnknown(reference.familiar()));
        }
        if response.status() != StatusCode::OK {
            return Err(self.refused("serve the manifest", response.status()));
        }
        let bytes = self.read_limited(response, MAX_DOCUMENT_SIZE).await?;
        let digest = Digest::of(&bytes);
        if wanted.starts_with("sha256:") && digest.to_string() != wanted {
            return Err(Error::InvalidArgument(format!(
                "the registry at {} sent a manifest whose digest is {digest}, not {wanted}",
                self.host
            )));
        }
        // Parsed before it is kept: a registry's answer is untrusted.
        manifests::parse_document(&digest.to_string(), &bytes, None)?;
        Ok(store.write_blob_bytes(&bytes)?.digest)
    }
}

/// The path (and query) of an upload's `Location`, absolute or not.
fn location_path(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned()),
        None => location.to_owned(),
    }
}

use futures_util::StreamExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_cli_header() {
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"alice","password":"s3cret","serveraddress":"localhost:5000"}"#);
        let c = Credentials::from_header(Some(&header)).unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(c.header(), "Basic YWxpY2U6czNjcmV0");
        assert!(Credentials::from_header(Some("e30=")).is_none());
        assert!(Credentials::from_header(Some("!!")).is_none());
        assert!(Credentials::from_header(None).is_none());
    }

    #[test]
    fn upload_locations_become_paths() {
        assert_eq!(
            location_path("/v2/a/blobs/uploads/x?_state=1"),
            "/v2/a/blobs/uploads/x?_state=1"
        );
        assert_eq!(
            location_path("http://localhost:5000/v2/a/blobs/uploads/x"),
            "/v2/a/blobs/uploads/x"
        );
    }
}
