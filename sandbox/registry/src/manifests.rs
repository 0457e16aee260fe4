//! Manifests and indexes: `GET`/`HEAD`/`PUT`/`DELETE` by tag or digest,
//! and the referrers API.
//!
//! A pushed document is stored as the exact bytes received, after its
//! structure parsed, its digest matched the URL (when the URL names one)
//! and every blob and child manifest it references was found in this
//! namespace. Its store names are the membership `repo@digest` (a GC root)
//! and, when pushed by tag, `repo:tag`.

use std::collections::BTreeSet;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errdefs::ErrorKind;
use futures_util::StreamExt;
use serde::Serialize;
use store::{Digest, Expected};

use crate::context::{Call, insert_digest, parse_digest};
use crate::documents::{self, Descriptor, MAX_MANIFEST_SIZE, is_index};
use crate::error::{Code, Error, Result};
use crate::names::ManifestRef;
use crate::state::Registry;
use crate::upstream::{Upstream, upstream_repository};

fn unknown(name: &str, reference: &ManifestRef) -> Error {
    let what = match reference {
        ManifestRef::Tag(t) => format!("{name}:{t}"),
        ManifestRef::Digest(d) => format!("{name}@{d}"),
    };
    Error::protocol(
        Code::ManifestUnknown,
        format!("manifest {what} is not in this registry"),
    )
}

/// The digests every name of repository `name` points to, with the tags.
fn repository_names(registry: &Registry, name: &str) -> Result<Vec<store::Tag>> {
    let key = registry.naming().repository_key(name)?;
    Ok(registry
        .store()
        .list(registry.namespace())?
        .into_iter()
        .filter(|t| t.reference.name() == key)
        .collect())
}

/// Resolves `reference` in repository `name` to a manifest digest.
fn resolve(registry: &Registry, name: &str, reference: &ManifestRef) -> Result<Digest> {
    let store_ref = registry.naming().reference(name, reference)?;
    match registry.store().resolve(registry.namespace(), &store_ref) {
        Ok(d) => Ok(d),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // The hub names only tags: a child of a tagged index is
            // reachable by digest too.
            if let ManifestRef::Digest(d) = reference
                && registry.inner.blobs.is_none()
                && registry.reachable()?.contains(d)
            {
                return Ok(d.clone());
            }
            Err(unknown(name, reference))
        }
        Err(e) => Err(e.into()),
    }
}

/// The hub's answer for a manifest the catalog lacks: a tag is checked
/// with the upstream each time (tags move; a `HEAD` when a copy is kept,
/// the manifest is fetched only when the tag moved), falling back to what
/// was fetched before when the upstream fails; a digest is served from
/// what was fetched before when it can be (digests do not move).
async fn pull_through(
    registry: &Registry,
    upstream: &Upstream,
    name: &str,
    reference: &ManifestRef,
) -> Result<Digest> {
    let repository = upstream_repository(name).ok_or_else(|| unknown(name, reference))?;
    let mirror = registry.mirror()?;
    let store_ref = registry.naming().reference(name, reference)?;
    let cached = {
        let (store, mirror, store_ref) =
            (registry.store().clone(), mirror.clone(), store_ref.clone());
        tokio::task::spawn_blocking(move || store.resolve(&mirror, &store_ref).ok()).await?
    };
    if let Some(digest) = &cached {
        match reference {
            ManifestRef::Digest(_) => return Ok(digest.clone()),
            // The kept copy is current when the tag still points to it.
            ManifestRef::Tag(tag) => match upstream.tag_digest(&repository, tag).await {
                Ok(Some(current)) if current == *digest => return Ok(digest.clone()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, name, "upstream failed; serving the copy fetched before");
                    return Ok(digest.clone());
                }
            },
        }
    }
    let (digest, bytes) = match upstream.manifest(&repository, reference).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return Err(Error::protocol(
                Code::ManifestUnknown,
                format!(
                    "{name} is not in the catalog, and upstream {} has no {repository} {}",
                    upstream.url(),
                    match reference {
                        ManifestRef::Tag(t) => format!("tag {t}"),
                        ManifestRef::Digest(d) => format!("manifest {d}"),
                    }
                ),
            ));
        }
        Err(e) => match cached {
            Some(digest) => {
                tracing::warn!(error = %e, name, "upstream failed; serving the copy fetched before");
                return Ok(digest);
            }
            None => return Err(e),
        },
    };
    let store = registry.store().clone();
    let member = registry
        .naming()
        .reference(name, &ManifestRef::Digest(digest.clone()))?;
    let kept = digest.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        store.write_blob(&bytes[..], Expected::digest(kept.clone()))?;
        store.tag(&mirror, &member, &kept)?;
        store.tag(&mirror, &store_ref, &kept)?;
        Ok(())
    })
    .await??;
    tracing::info!(name, %digest, upstream = %upstream.url(), "pulled a manifest through");
    Ok(digest)
}

/// Media types listed in `Accept` headers, parameters dropped.
fn accepted(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The manifest a client gets for `digest`: the document itself, or, when
/// the client's `Accept` rules out indexes, the index's entry for this
/// host's platform (what distribution does for old clients).
fn negotiate(
    registry: &Registry,
    digest: Digest,
    accept: &[String],
) -> Result<(Digest, Vec<u8>, String)> {
    let bytes = registry.store().read_blob(&digest, MAX_MANIFEST_SIZE)?;
    let doc = documents::parse(&digest, &bytes, None)?;
    let acceptable = |mt: &str| accept.is_empty() || accept.iter().any(|a| a == mt || a == "*/*");
    if acceptable(&doc.media_type) || !is_index(&doc.media_type) {
        return Ok((digest, bytes, doc.media_type));
    }
    let arch = store::manifests::host_architecture();
    let child = doc
        .manifests
        .iter()
        .find(|m| {
            m.platform.as_ref().is_some_and(|p| {
                p.get("os").and_then(|v| v.as_str()) == Some("linux")
                    && p.get("architecture").and_then(|v| v.as_str()) == Some(arch)
            }) && acceptable(&m.media_type)
        })
        .ok_or_else(|| {
            Error::protocol(
                Code::ManifestUnknown,
                format!(
                    "{digest} is an index ({}), which the client does not accept, and it has no linux/{arch} manifest it accepts",
                    doc.media_type
                ),
            )
        })?;
    let child_digest = child.digest()?;
    let bytes = registry
        .store()
        .read_blob(&child_digest, MAX_MANIFEST_SIZE)?;
    let child_doc = documents::parse(&child_digest, &bytes, None)?;
    Ok((child_digest, bytes, child_doc.media_type))
}

pub(crate) async fn get(
    registry: &Registry,
    name: &str,
    reference: &ManifestRef,
    call: Call,
) -> Result<Response> {
    let accept = accepted(&call.headers);
    let local = {
        let (registry, name, reference) = (registry.clone(), name.to_owned(), reference.clone());
        tokio::task::spawn_blocking(move || resolve(&registry, &name, &reference)).await?
    };
    let digest = match (local, registry.upstream()) {
        (Ok(digest), _) => digest,
        (Err(e), Some(upstream)) if e.code() == Code::ManifestUnknown => {
            pull_through(registry, upstream, name, reference).await?
        }
        (Err(e), _) => return Err(e),
    };
    let (digest, bytes, media_type) = {
        let (registry, name, reference) = (registry.clone(), name.to_owned(), reference.clone());
        tokio::task::spawn_blocking(move || {
            negotiate(&registry, digest, &accept).map_err(|e| match e {
                Error::Store(s) if s.kind() == ErrorKind::NotFound => unknown(&name, &reference),
                other => other,
            })
        })
        .await??
    };
    let len = bytes.len() as u64;
    let body = if call.method == Method::HEAD {
        axum::body::Body::empty()
    } else {
        axum::body::Body::from(bytes)
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    insert_digest(h, &digest);
    Ok(response)
}

pub(crate) async fn put(
    registry: &Registry,
    name: &str,
    reference: &ManifestRef,
    call: Call,
) -> Result<Response> {
    let limit = registry.config().max_manifest_size;
    let declared = call
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared
        && size > limit
    {
        return Err(Error::TooLarge { size, limit });
    }
    let content_type = call
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut bytes = Vec::new();
    let mut stream = call.body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Body(e.to_string()))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                size: bytes.len() as u64,
                limit,
            });
        }
    }
    let digest = reference.digest_of(&bytes);
    if let ManifestRef::Digest(expected) = reference
        && *expected != digest
    {
        return Err(Error::protocol(
            Code::DigestInvalid,
            format!("the manifest's bytes have digest {digest}, not {expected}"),
        ));
    }
    let doc = documents::parse(&digest, &bytes, content_type.as_deref())?;
    let registry2 = registry.clone();
    let name2 = name.to_owned();
    let reference2 = reference.clone();
    let digest2 = digest.clone();
    let subject = doc.subject.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let (registry, name) = (registry2, name2);
        for blob in doc.blobs()? {
            if !registry.holds_blob(Some(&name), &blob)? {
                return Err(Error::protocol(
                    Code::ManifestBlobUnknown,
                    format!(
                        "blob {blob} is not in repository {name}; push it there (or mount it) before the manifest"
                    ),
                ));
            }
        }
        for child in doc.children()? {
            let member = registry
                .naming()
                .reference(&name, &ManifestRef::Digest(child.clone()))?;
            if registry
                .store()
                .resolve(registry.namespace(), &member)
                .is_err()
            {
                return Err(Error::protocol(
                    Code::ManifestBlobUnknown,
                    format!(
                        "manifest {child} is not in repository {name}; push it before the index"
                    ),
                ));
            }
        }
        registry
            .store()
            .write_blob(&bytes[..], Expected::digest(digest2.clone()))?;
        let member = registry
            .naming()
            .reference(&name, &ManifestRef::Digest(digest2.clone()))?;
        registry
            .store()
            .tag(registry.namespace(), &member, &digest2)?;
        if let ManifestRef::Tag(_) = reference2 {
            let tag = registry.naming().reference(&name, &reference2)?;
            registry.store().tag(registry.namespace(), &tag, &digest2)?;
        }
        Ok(())
    })
    .await??;
    tracing::debug!(name, %digest, "manifest pushed");
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/{name}/manifests/{digest}")) {
        h.insert(header::LOCATION, v);
    }
    insert_digest(h, &digest);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    if let Some(subject) = subject
        && let Ok(v) = HeaderValue::from_str(&subject.digest)
    {
        h.insert("OCI-Subject", v);
    }
    Ok(response)
}

/// By tag: removes the tag. By digest: removes the manifest from the
/// repository with every tag pointing to it.
pub(crate) async fn delete(
    registry: &Registry,
    name: &str,
    reference: &ManifestRef,
) -> Result<Response> {
    let registry = registry.clone();
    let name = name.to_owned();
    let reference = reference.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let doomed: Vec<store::Reference> = match &reference {
            ManifestRef::Tag(_) => {
                let tag = registry.naming().reference(&name, &reference)?;
                match registry.store().resolve(registry.namespace(), &tag) {
                    Ok(_) => vec![tag],
                    Err(_) => Vec::new(),
                }
            }
            ManifestRef::Digest(d) => repository_names(&registry, &name)?
                .into_iter()
                .filter(|t| t.digest == *d)
                .map(|t| t.reference)
                .collect(),
        };
        if doomed.is_empty() {
            return Err(unknown(&name, &reference));
        }
        for r in doomed {
            match registry.store().untag(registry.namespace(), &r) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    })
    .await??;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Serialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=…]`: an index of the
/// repository's manifests whose `subject` is `digest`.
pub(crate) async fn referrers(
    registry: &Registry,
    name: &str,
    digest: &str,
    filter: Option<String>,
) -> Result<Response> {
    let subject = parse_digest(digest)?;
    let registry = registry.clone();
    let name = name.to_owned();
    let filter2 = filter.clone();
    let manifests = tokio::task::spawn_blocking(move || -> Result<Vec<Descriptor>> {
        let digests: BTreeSet<Digest> = repository_names(&registry, &name)?
            .into_iter()
            .map(|t| t.digest)
            .collect();
        let mut out = Vec::new();
        for d in digests {
            let Ok(bytes) = registry.store().read_blob(&d, MAX_MANIFEST_SIZE) else {
                continue;
            };
            let Ok(doc) = documents::parse(&d, &bytes, None) else {
                continue;
            };
            let points_here = doc
                .subject
                .as_ref()
                .is_some_and(|s| s.digest == subject.to_string());
            let artifact_type = doc.effective_artifact_type();
            if !points_here
                || filter2
                    .as_ref()
                    .is_some_and(|f| Some(f) != artifact_type.as_ref())
            {
                continue;
            }
            out.push(Descriptor {
                media_type: doc.media_type.clone(),
                digest: d.to_string(),
                size: bytes.len() as u64,
                artifact_type,
                annotations: doc.annotations.clone(),
                urls: None,
                platform: None,
            });
        }
        Ok(out)
    })
    .await??;
    let index = Index {
        schema_version: 2,
        media_type: store::media_types::OCI_INDEX,
        manifests,
    };
    let bytes = serde_json::to_vec(&index).map_err(|e| Error::Body(e.to_string()))?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(store::media_types::OCI_INDEX),
    );
    if filter.is_some() {
        h.insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
