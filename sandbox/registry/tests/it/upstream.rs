//! The hub pulling through from an upstream registry: what the catalog
//! lacks is fetched, checked and kept, and served again when the upstream
//! is gone. The upstream is a real registry (layerlab's own, on its own
//! store) holding `library/app`, Docker Hub's name for `app`.

use registry::{Config, Naming, Registry, Upstream};
use reqwest::StatusCode;
use store::{Namespace, Store};

use crate::harness::*;

async fn hub_over(root: &std::path::Path, upstream: &str) -> Server {
    let store = Store::open(root).expect("hub store");
    let registry = Registry::open(Config {
        naming: Naming::Hub,
        read_only: true,
        upstream: Some(Upstream::new(upstream).expect("upstream URL")),
        ..Config::new(store.clone(), Namespace::new("hub").expect("namespace"))
    })
    .expect("hub");
    let router = registry.router();
    Server::serve(store, registry, router).await
}

/// A hub over the store at `root` in front of an upstream the test builds:
/// `upstream` gets the upstream's URL and returns its routes, which are
/// served until the test ends.
async fn hub_in_front_of(
    root: &std::path::Path,
    upstream: impl FnOnce(&str) -> axum::Router,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(registry::serve(
        listener,
        upstream(&url),
        std::future::pending(),
    ));
    hub_over(root, &url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_pulls_what_the_catalog_lacks_through_and_keeps_it() {
    let upstream = Server::start().await;
    let (manifest, digest) = upstream
        .push_image("library/app", "v1", "pulled through")
        .await;
    let document: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    let blobs: Vec<String> = std::iter::once(&document["config"])
        .chain(document["layers"].as_array().expect("layers"))
        .map(|d| d["digest"].as_str().expect("digest").to_owned())
        .collect();
    let root = tempfile::tempdir().expect("hub dir");
    let hub = hub_over(root.path(), &upstream.url).await;

    // A real client sees the upstream's image under the hub's short name.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:v1", hub.addr),
    ])
    .await;
    assert_eq!(raw.as_bytes(), &manifest[..]);
    let r = hub
        .get_accepting("/v2/app/manifests/v1", OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    for blob in &blobs {
        let r = hub.get(&format!("/v2/library/app/blobs/{blob}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{blob}");
        let bytes = r.bytes().await.expect("blob");
        assert_eq!(&digest_of(&bytes), blob);
    }

    // What the upstream lacks is unknown, and the answer says where it looked.
    let r = hub.get("/v2/nothing/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body = r.text().await.expect("body");
    assert!(
        body.contains("MANIFEST_UNKNOWN") && body.contains("upstream"),
        "{body}"
    );
    // Names of other registries are not the upstream's to answer.
    let r = hub.get("/v2/quay.io/team/app/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A tag that moved upstream is followed.
    let (_, moved_digest) = upstream.push_image("library/app", "v2", "moved on").await;
    let r = hub
        .get_accepting("/v2/app/manifests/v2", OCI_MANIFEST)
        .await;
    assert_eq!(r.headers()["Docker-Content-Digest"], moved_digest.as_str());
    let (_, moved_again) = upstream
        .push_image("library/app", "v2", "moved again")
        .await;
    let r = hub
        .get_accepting("/v2/app/manifests/v2", OCI_MANIFEST)
        .await;
    assert_eq!(r.headers()["Docker-Content-Digest"], moved_again.as_str());
    assert_ne!(moved_again, moved_digest);

    // With the upstream gone, what was fetched is still served.
    upstream.stop().await;
    for path in [
        "/v2/app/manifests/v1".to_owned(),
        format!("/v2/app/manifests/{digest}"),
    ] {
        let r = hub.get_accepting(&path, OCI_MANIFEST).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.bytes().await.expect("body").as_ref(), &manifest[..]);
    }
    for blob in &blobs {
        let r = hub.get(&format!("/v2/app/blobs/{blob}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{blob}");
    }
    // And what was never fetched says the upstream did not answer.
    let r = hub.get("/v2/other/manifests/v1").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body = r.text().await.expect("body");
    assert!(body.contains("did not answer"), "{body}");
    hub.stop().await;

    // The fetched image survives a restart of the hub.
    let again = hub_over(root.path(), "http://127.0.0.1:9").await;
    let r = again
        .get_accepting("/v2/library/app/manifests/v1", OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
}

/// Docker Hub's way with anonymous pulls: the registry answers 401 with a
/// bearer challenge naming a token service, and accepts the token that
/// service hands out. One token serves all of an image's requests.
#[tokio::test(flavor = "multi_thread")]
async fn the_hub_follows_a_bearer_challenge_to_the_token_service() {
    use axum::extract::{Query, Request};
    use axum::http::{HeaderValue, header};
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const TOKEN: &str = "pull-token-for-library-app";
    let upstream = Server::start().await;
    let (manifest, digest) = upstream
        .push_image("library/app", "v2", "behind a token")
        .await;
    let tokens_handed_out = Arc::new(AtomicUsize::new(0));
    let handed = tokens_handed_out.clone();
    let manifest_gets = Arc::new(AtomicUsize::new(0));
    let gets = manifest_gets.clone();
    let root = tempfile::tempdir().expect("hub dir");
    let hub = hub_in_front_of(root.path(), |url| {
    let challenge = format!(
        r#"Bearer realm="{url}/token",service="test-registry",scope="repository:library/app:pull""#
    );
    let guarded = upstream.registry.router().layer(middleware::from_fn(
        move |request: Request, next: Next| {
            let challenge = challenge.clone();
            let gets = gets.clone();
            async move {
                if request.method() == axum::http::Method::GET
                    && request.uri().path().contains("/manifests/")
                {
                    gets.fetch_add(1, Ordering::SeqCst);
                }
                let authorized = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .is_some_and(|v| v == format!("Bearer {TOKEN}").as_str());
                if authorized {
                    return next.run(request).await;
                }
                let mut response: Response = StatusCode::UNAUTHORIZED.into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge).expect("header"),
                );
                response
            }
        },
    ));
    let tokens = axum::Router::new().route(
        "/token",
        axum::routing::get(move |Query(q): Query<HashMap<String, String>>| async move {
            let asked_right = q.get("service").map(String::as_str) == Some("test-registry")
                && q.get("scope").map(String::as_str) == Some("repository:library/app:pull");
            if asked_right {
                handed.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({ "token": TOKEN, "expires_in": 300 })).into_response()
            } else {
                StatusCode::BAD_REQUEST.into_response()
            }
        }),
    );
    tokens.merge(guarded)
    })
    .await;
    let r = hub
        .get_accepting("/v2/app/manifests/v2", OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    let document: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    for blob in [&document["config"], &document["layers"][0]] {
        let blob = blob["digest"].as_str().expect("digest");
        let r = hub.get(&format!("/v2/app/blobs/{blob}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{blob}");
    }
    assert_eq!(tokens_handed_out.load(Ordering::SeqCst), 1);
    // Asked again, the tag is checked with a HEAD (free of Docker Hub's
    // pull limits) and the kept copy served.
    let r = hub
        .get_accepting("/v2/app/manifests/v2", OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    // The first GET earned the 401 and came back with the token.
    assert_eq!(manifest_gets.load(Ordering::SeqCst), 2);
}

/// A class pulling an image the hub has not fetched yet: each layer is
/// fetched from the upstream once while the others wait for it, and a
/// student who gives up does not stop the fetch for the rest.
#[tokio::test(flavor = "multi_thread")]
async fn a_class_pulling_one_new_layer_fetches_it_once() {
    use axum::extract::Request;
    use axum::middleware::{self, Next};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let upstream = Server::start().await;
    let layer: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let digest = upstream.push_blob("library/app", &layer).await;
    let blob_gets = Arc::new(AtomicUsize::new(0));
    let counter = blob_gets.clone();
    // A slow upstream, so every student asks while the first fetch runs.
    let counted = upstream.registry.router().layer(middleware::from_fn(
        move |request: Request, next: Next| {
            let counter = counter.clone();
            async move {
                if request.uri().path().contains("/blobs/sha256:") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                next.run(request).await
            }
        },
    ));
    let root = tempfile::tempdir().expect("hub dir");
    let hub = hub_in_front_of(root.path(), |_| counted).await;
    let path = format!("/v2/app/blobs/{digest}");
    // The first student gives up at once; the fetch goes on for the rest.
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(50))
        .build()
        .expect("client");
    assert!(impatient.get(hub.at(&path)).send().await.is_err());
    let answers = futures_util::future::join_all((0..8).map(|_| hub.get(&path))).await;
    for r in answers {
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.expect("blob").len(), layer.len());
    }
    assert_eq!(blob_gets.load(Ordering::SeqCst), 1);
}

/// An upstream is untrusted input like any other: what it sends that does
/// not check out is refused with the reason, and nothing of it is kept.
#[tokio::test(flavor = "multi_thread")]
async fn what_a_lying_upstream_sends_is_refused_and_not_kept() {
    use axum::body::Body;
    use axum::extract::Path;
    use axum::response::{IntoResponse, Response};

    let asked_blob = digest_of(b"the real layer");
    let asked_manifest = digest_of(b"{\"schemaVersion\":2}");
    let liar = axum::Router::new()
        .route(
            "/v2/library/liar/manifests/{reference}",
            axum::routing::get(|Path(reference): Path<String>| async move {
                let body: Vec<u8> = match reference.as_str() {
                    // Valid JSON, but not the bytes of the digest asked for.
                    r if r.starts_with("sha256:") => br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#.to_vec(),
                    "junk" => b"<html>not a manifest</html>".to_vec(),
                    _ => vec![b' '; 5 << 20],
                };
                ([("Content-Type", OCI_MANIFEST)], body).into_response()
            }),
        )
        .route(
            "/v2/library/liar/blobs/{digest}",
            axum::routing::get(|Path(digest): Path<String>| async move {
                if digest.ends_with(&"a".repeat(64)) {
                    // No declared size: a stream that could run forever.
                    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
                        bytes::Bytes::from_static(b"endless"),
                    )]);
                    Response::new(Body::from_stream(chunks))
                } else {
                    b"some other layer".to_vec().into_response()
                }
            }),
        );
    let root = tempfile::tempdir().expect("hub dir");
    let hub = hub_in_front_of(root.path(), |_| liar).await;

    let no_size = format!("sha256:{}", "a".repeat(64));
    for (path, reason) in [
        (format!("/v2/liar/manifests/{asked_manifest}"), "not kept"),
        ("/v2/liar/manifests/junk".to_owned(), "not a manifest"),
        ("/v2/liar/manifests/huge".to_owned(), "larger than"),
        (format!("/v2/liar/blobs/{asked_blob}"), "not kept"),
        (format!("/v2/liar/blobs/{no_size}"), "how large"),
    ] {
        let r = hub.get_accepting(&path, OCI_MANIFEST).await;
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY, "{path}");
        let body = r.text().await.expect("body");
        assert!(body.contains(reason), "{path}: {body}");
    }
    let store = Store::open(root.path()).expect("hub store");
    let mirror = Namespace::new("hub-upstream").expect("namespace");
    assert!(store.list(&mirror).expect("names").is_empty());
    for digest in [&asked_blob, &asked_manifest] {
        assert!(
            !store.blob_exists(&digest.parse().expect("digest")),
            "{digest}"
        );
    }
    use store::content::IngestManager as _;
    assert!(store.content().ingests().expect("ingests").is_empty());
}

/// A manifest asked for by its sha512 digest is fetched, checked in that
/// algorithm and kept under it, with its sha512 blobs.
#[tokio::test(flavor = "multi_thread")]
async fn the_hub_pulls_a_sha512_image_through_by_digest() {
    let upstream = Server::start().await;
    let (manifest, digest) = upstream
        .push_image_as("library/app", None, "sha512 through the hub", sha512_of)
        .await;
    let document: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    let root = tempfile::tempdir().expect("hub dir");
    let hub = hub_over(root.path(), &upstream.url).await;
    let r = hub
        .get_accepting(&format!("/v2/app/manifests/{digest}"), OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    assert_eq!(r.bytes().await.expect("body").as_ref(), &manifest[..]);
    let blobs = std::iter::once(&document["config"])
        .chain(document["layers"].as_array().expect("layers"))
        .map(|d| d["digest"].as_str().expect("digest").to_owned());
    for blob in blobs {
        let r = hub.get(&format!("/v2/app/blobs/{blob}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{blob}");
        assert_eq!(sha512_of(&r.bytes().await.expect("blob")), blob);
    }
    // Kept: served with the upstream gone.
    upstream.stop().await;
    let r = hub
        .get_accepting(&format!("/v2/app/manifests/{digest}"), OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(hub.store.blob_exists(&digest.parse().expect("digest")));
}
