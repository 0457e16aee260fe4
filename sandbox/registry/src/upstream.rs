//! Pull-through for the hub: what the catalog lacks is fetched from an
//! upstream registry (Docker Hub, a mirror, a registry of the school) and
//! kept in the store, so the next pull, or a pull while the upstream is
//! down, is served locally.
//!
//! Fetched manifests are named in their own namespace (`hub-upstream`), so
//! the catalog's names stay what `layerlab images build` made them and the
//! store's GC keeps what was fetched. Upstream answers are untrusted:
//! a manifest is size-limited, parsed, and checked against the digest that
//! was asked for; a blob needs a declared size and is ingested with its
//! digest and size verified before anything is served or named.
//!
//! Anonymous pulls only. Docker Hub answers them with a bearer-token
//! challenge, which is followed: the token service named in the challenge
//! hands out a pull token for the repository.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use reqwest::{StatusCode, Url, header};
use store::content::{Expected, IngestManager, Ingester};
use store::{Digest, Store};

use crate::context::{append, lock};
use crate::documents::{self, MAX_MANIFEST_SIZE};
use crate::error::{Error, Result};
use crate::names::ManifestRef;

/// The manifest types asked for, most capable first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest blob fetched: the declared size is checked before a byte is
/// stored, and the store stops a body that runs past its declared size.
const MAX_BLOB: u64 = 16 << 30;

/// An upstream registry the hub pulls through from.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: Url,
    client: reqwest::Client,
    /// Blob fetches in flight: a class pulling one new image at once
    /// fetches each layer once, the others wait for it.
    fetching: Arc<Mutex<HashMap<Digest, Arc<Fetch>>>>,
    /// Pull tokens by repository, with when they stop being good, so one
    /// image's requests share a token instead of each earning its own.
    tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

/// Tokens kept at most; past that the expired ones go, then all.
const MAX_TOKENS: usize = 1024;

/// One blob fetch; `Some(found)` once it ended without an error.
type Fetch = tokio::sync::Mutex<Option<bool>>;

impl Upstream {
    /// An upstream at `base` (`https://registry-1.docker.io`, or any
    /// `http(s)://host[:port]` registry).
    pub fn new(base: &str) -> Result<Upstream> {
        let base = Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::Config(format!(
                    "upstream {base:?} is not a registry URL; write it like https://registry-1.docker.io"
                ))
            })?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("layerlab-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot make an HTTP client: {e}")))?;
        Ok(Upstream {
            base,
            client,
            fetching: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// The upstream's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> Error {
        Error::Upstream(format!("upstream {} did not answer: {e}", self.base))
    }

    /// `method` on `/v2/<repository>/<tail>`, with the repository's pull
    /// token when one was earned, following a bearer-token challenge once.
    async fn request(
        &self,
        method: reqwest::Method,
        repository: &str,
        tail: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response> {
        let path = format!("/v2/{repository}/{tail}");
        let url = self
            .base
            .join(&path)
            .map_err(|e| Error::Upstream(format!("bad upstream path {path:?}: {e}")))?;
        let send = |token: Option<String>| {
            let mut request = self.client.request(method.clone(), url.clone());
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let kept = lock(&self.tokens)
            .get(repository)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(token, _)| token.clone());
        let response = send(kept).await.map_err(|e| self.unreachable(e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(challenge) = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(BearerChallenge::parse)
        else {
            return Err(Error::Upstream(format!(
                "upstream {} wants a login, which the hub does not have",
                self.base
            )));
        };
        let (token, lasts) = self.token(&challenge).await?;
        {
            let mut tokens = lock(&self.tokens);
            if tokens.len() >= MAX_TOKENS {
                let now = Instant::now();
                tokens.retain(|_, (_, until)| now < *until);
                if tokens.len() >= MAX_TOKENS {
                    tokens.clear();
                }
            }
            tokens.insert(
                repository.to_owned(),
                (token.clone(), Instant::now() + lasts),
            );
        }
        send(Some(token)).await.map_err(|e| self.unreachable(e))
    }

    /// `GET` of `path`: the answer when it succeeded, `None` when the
    /// upstream does not have it, an error for anything else.
    async fn found(
        &self,
        repository: &str,
        tail: &str,
        accept: Option<&str>,
    ) -> Result<Option<reqwest::Response>> {
        let response = self
            .request(reqwest::Method::GET, repository, tail, accept)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(response)),
            s => Err(Error::Upstream(format!(
                "upstream {} answered {s} for {repository} {tail}",
                self.base
            ))),
        }
    }

    /// An anonymous token from the challenge's token service, and how long
    /// to use it.
    async fn token(&self, challenge: &BearerChallenge) -> Result<(String, Duration)> {
        let mut url = Url::parse(&challenge.realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::Upstream(format!(
                    "upstream {} named a token service that is not a URL: {:?}",
                    self.base, challenge.realm
                ))
            })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            if let Some(scope) = &challenge.scope {
                query.append_pair("scope", scope);
            }
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            return Err(Error::Upstream(format!(
                "the token service of upstream {} answered {}",
                self.base,
                response.status()
            )));
        }
        let body = read_limited(response, 64 * 1024).await?;
        let token: Token = serde_json::from_slice(&body).map_err(|e| {
            Error::Upstream(format!(
                "the token service of upstream {} sent no token: {e}",
                self.base
            ))
        })?;
        // The token spec's default life is 60 s; leave a margin for the
        // requests in flight when it runs out.
        let lasts = Duration::from_secs(token.expires_in.unwrap_or(60).saturating_sub(10));
        let value = token.token.or(token.access_token).ok_or_else(|| {
            Error::Upstream(format!(
                "the token service of upstream {} sent no token",
                self.base
            ))
        })?;
        Ok((value, lasts))
    }

    /// What tag `tag` of `repository` points to upstream now, asked with
    /// `HEAD`, which Docker Hub does not count against its pull limits;
    /// `None` when the upstream lacks the tag or does not say.
    pub(crate) async fn tag_digest(&self, repository: &str, tag: &str) -> Result<Option<Digest>> {
        let response = self
            .request(
                reqwest::Method::HEAD,
                repository,
                &format!("manifests/{tag}"),
                Some(ACCEPT),
            )
            .await?;
        if !response.status().is_success() {
            return Ok(None);
        }
        Ok(response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// The manifest `repository` `reference` upstream, checked; `None`
    /// when the upstream does not have it.
    pub(crate) async fn manifest(
        &self,
        repository: &str,
        reference: &ManifestRef,
    ) -> Result<Option<(Digest, Vec<u8>)>> {
        let tail = match reference {
            ManifestRef::Tag(tag) => tag.clone(),
            ManifestRef::Digest(digest) => digest.to_string(),
        };
        let Some(response) = self
            .found(repository, &format!("manifests/{tail}"), Some(ACCEPT))
            .await?
        else {
            return Ok(None);
        };
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(response, MAX_MANIFEST_SIZE).await?;
        let digest = reference.digest_of(&bytes);
        if let ManifestRef::Digest(asked) = reference
            && *asked != digest
        {
            return Err(Error::Upstream(format!(
                "upstream {} sent a manifest with digest {digest} for {asked}; it was not kept",
                self.base
            )));
        }
        documents::parse(&digest, &bytes, content_type.as_deref()).map_err(|e| {
            Error::Upstream(format!(
                "upstream {} sent {repository}:{tail} as something that is not a manifest: {e}",
                self.base
            ))
        })?;
        Ok(Some((digest, bytes)))
    }

    /// Fetches blob `digest` of `repository` into `store`;
    /// `false` when the upstream does not have it. The fetch runs in a task
    /// of its own: a client that goes away does not stop a fetch others
    /// wait for, and the layer is kept for the next pull.
    pub(crate) async fn blob(
        &self,
        store: &Store,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool> {
        let (upstream, store) = (self.clone(), store.clone());
        let (repository, digest) = (repository.to_owned(), digest.clone());
        tokio::spawn(async move { upstream.blob_once(&store, &repository, &digest).await }).await?
    }

    /// One fetch of a blob at a time; those who ask meanwhile share it.
    async fn blob_once(&self, store: &Store, repository: &str, digest: &Digest) -> Result<bool> {
        let fetch = lock(&self.fetching)
            .entry(digest.clone())
            .or_default()
            .clone();
        let mut outcome = fetch.lock().await;
        if let Some(found) = *outcome {
            return Ok(found);
        }
        let result = self.fetch_blob(store, repository, digest).await;
        // After an error the next waiter tries for itself.
        if let Ok(found) = result {
            *outcome = Some(found);
        }
        lock(&self.fetching).remove(digest);
        result
    }

    async fn fetch_blob(&self, store: &Store, repository: &str, digest: &Digest) -> Result<bool> {
        let Some(response) = self
            .found(repository, &format!("blobs/{digest}"), None)
            .await?
        else {
            return Ok(false);
        };
        let size = response.content_length().ok_or_else(|| {
            Error::Upstream(format!(
                "upstream {} did not say how large blob {digest} is",
                self.base
            ))
        })?;
        if size > MAX_BLOB {
            return Err(Error::Upstream(format!(
                "upstream {} offers blob {digest} of {size} bytes, more than the {MAX_BLOB} the hub takes",
                self.base
            )));
        }
        let ingest = format!("hub-upstream/{}", uuid::Uuid::new_v4());
        let expected = Expected::exact(digest.clone(), size);
        let writer = {
            let (store, ingest) = (store.clone(), ingest.clone());
            tokio::task::spawn_blocking(move || store.content().writer(&ingest, expected)).await??
        };
        let (writer, appended) = append(writer, Body::from_stream(response.bytes_stream())).await?;
        let committed = match appended {
            Ok(()) => tokio::task::spawn_blocking(move || writer.commit())
                .await?
                .map_err(|e| e.to_string()),
            Err(e) => {
                drop(writer);
                Err(e.to_string())
            }
        };
        if let Err(e) = committed {
            let store = store.clone();
            let _ = tokio::task::spawn_blocking(move || store.content().abort(&ingest)).await;
            return Err(Error::Upstream(format!(
                "blob {digest} from upstream {} was not kept: {e}",
                self.base
            )));
        }
        Ok(true)
    }
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::Upstream(format!("the upstream's answer broke off: {e}")))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(Error::Upstream(format!(
                "the upstream's answer is larger than the {limit} bytes allowed"
            )));
        }
    }
    Ok(bytes)
}

/// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BearerChallenge {
    pub(crate) realm: String,
    pub(crate) service: Option<String>,
    pub(crate) scope: Option<String>,
}

impl BearerChallenge {
    /// Parameters are `key="value"` pairs separated by commas; a quoted
    /// value may hold commas (scopes do: `repository:a:pull,push`).
    pub(crate) fn parse(value: &str) -> Option<BearerChallenge> {
        let (scheme, rest) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let (mut realm, mut service, mut scope) = (None, None, None);
        let mut rest = rest.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (val, tail) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"')?;
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => after.split_once(',').unwrap_or((after, "")),
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(val.to_owned()),
                "service" => service = Some(val.to_owned()),
                "scope" => scope = Some(val.to_owned()),
                _ => {}
            }
            rest = tail.trim_start().trim_start_matches(',').trim_start();
        }
        Some(BearerChallenge {
            realm: realm?,
            service,
            scope,
        })
    }
}

/// Hub names are Docker Hub's: `busybox` is `library/busybox` upstream.
/// Names under another registry's domain are not the upstream's to serve.
pub(crate) fn upstream_repository(name: &str) -> Option<String> {
    let reference = store::Reference::parse(name).ok()?;
    (reference.registry() == "docker.io").then(|| reference.repository().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_and_others_do_not() {
        let hub = BearerChallenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            hub,
            Some(BearerChallenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        let commas =
            BearerChallenge::parse(r#"bearer scope="repository:a:pull,push", realm="http://t/""#)
                .expect("parses");
        assert_eq!(commas.scope.as_deref(), Some("repository:a:pull,push"));
        assert_eq!(commas.realm, "http://t/");
        for other in [
            r#"Basic realm="x""#,
            "Bearer",
            r#"Bearer service="no realm""#,
            r#"Bearer realm="unterminated"#,
        ] {
            assert_eq!(BearerChallenge::parse(other), None, "{other}");
        }
    }

    #[test]
    fn hub_names_map_to_docker_hub_repositories() {
        assert_eq!(
            upstream_repository("busybox").as_deref(),
            Some("library/busybox")
        );
        assert_eq!(
            upstream_repository("library/busybox").as_deref(),
            Some("library/busybox")
        );
        assert_eq!(upstream_repository("team/app").as_deref(), Some("team/app"));
        assert_eq!(upstream_repository("quay.io/team/app"), None);
        assert_eq!(upstream_repository("localhost/app"), None);
    }

    #[test]
    fn upstream_urls_must_be_http() {
        assert!(Upstream::new("https://registry-1.docker.io").is_ok());
        assert!(Upstream::new("http://127.0.0.1:5000").is_ok());
        for bad in ["registry-1.docker.io", "ftp://x", "file:///etc", ""] {
            assert!(Upstream::new(bad).is_err(), "{bad}");
        }
    }
}
