//! Pull: ping, manifests by tag and digest (GET and HEAD), blobs with and
//! without ranges, and the errors for what is not there.

use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn ping_answers_with_the_api_version() {
    let s = Server::start().await;
    for path in ["/v2/", "/v2"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["Docker-Distribution-API-Version"],
            "registry/2.0"
        );
    }
    let r = s.get("/v3/").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.headers()["Docker-Distribution-API-Version"],
        "registry/2.0"
    );
}

#[tokio::test]
async fn manifests_pull_by_tag_and_digest_with_their_exact_bytes() {
    let s = Server::start().await;
    let (bytes, digest) = s.push_image("team/app", "v1", "pull").await;
    for reference in ["v1", digest.as_str()] {
        let url = s.at(&format!("/v2/team/app/manifests/{reference}"));
        let r = s
            .client
            .get(&url)
            .header("Accept", OCI_MANIFEST)
            .send()
            .await
            .expect("get manifest");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
        assert_eq!(r.headers()["Content-Type"], OCI_MANIFEST);
        assert_eq!(r.bytes().await.expect("body").as_ref(), &bytes[..]);

        let head = s.client.head(&url).send().await.expect("head manifest");
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(
            head.headers()["Content-Length"],
            bytes.len().to_string().as_str()
        );
        assert_eq!(head.headers()["Docker-Content-Digest"], digest.as_str());
    }
}

#[tokio::test]
async fn blobs_pull_whole_and_by_range() {
    let s = Server::start().await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = s.push_blob("app", &data).await;
    let url = s.at(&format!("/v2/app/blobs/{digest}"));

    let r = s.client.get(&url).send().await.expect("get blob");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());
    assert_eq!(r.bytes().await.expect("body").as_ref(), &data[..]);

    let head = s.client.head(&url).send().await.expect("head blob");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["Content-Length"], "100000");

    let r = s
        .client
        .get(&url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["Content-Range"], "bytes 1000-1999/100000");
    assert_eq!(r.bytes().await.expect("body").as_ref(), &data[1000..2000]);

    let r = s
        .client
        .get(&url)
        .header("Range", "bytes=200000-")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["Content-Range"], "bytes */100000");
}

#[tokio::test]
async fn missing_things_answer_with_spec_errors() {
    let s = Server::start().await;
    s.push_image("app", "v1", "missing").await;
    let zero = format!("sha256:{}", "0".repeat(64));
    let cases = [
        (
            "/v2/app/manifests/nope".to_owned(),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/app/manifests/{zero}"),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/v2/other/manifests/v1".to_owned(),
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/app/blobs/{zero}"),
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
        ),
        (
            "/v2/app/blobs/sha256:abc".to_owned(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "/v2/app/blobs/md5:abc".to_owned(),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "/v2/nothing/tags/list".to_owned(),
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
        ),
        (
            "/v2/Upper/tags/list".to_owned(),
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
    ];
    for (path, status, code) in cases {
        let r = s.get(&path).await;
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(error_code(r).await, code, "{path}");
    }
}

/// A tag the pattern refuses can name no manifest: reading or deleting it
/// is the 404 of any missing manifest, and only a push is told the tag is
/// malformed.
#[tokio::test]
async fn an_invalid_tag_is_a_missing_manifest() {
    let s = Server::start().await;
    s.push_image("app", "v1", "a layer").await;
    for tag in [".INVALID_MANIFEST_NAME", "-dash", &"t".repeat(129), "a%2fb"] {
        let path = format!("/v2/app/manifests/{tag}");
        let r = s.head(&path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "HEAD {tag}");
        let r = s.get_accepting(&path, OCI_MANIFEST).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "GET {tag}");
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN", "GET {tag}");
        let r = s.delete(&path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "DELETE {tag}");
        assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN", "DELETE {tag}");
        let r = s.put_manifest("app", tag, OCI_MANIFEST, b"{}").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "PUT {tag}");
        assert_eq!(error_code(r).await, "MANIFEST_INVALID", "PUT {tag}");
    }
}

#[tokio::test]
async fn a_blob_pushed_elsewhere_in_the_store_is_not_visible() {
    let s = Server::start().await;
    // Committed to the shared store by someone else (the hub, another lab).
    let info = s
        .store
        .write_blob_bytes(b"another namespace's blob")
        .expect("write");
    let r = s.get(&format!("/v2/app/blobs/{}", info.digest)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Pushing the same bytes makes it visible, stored once.
    let digest = s.push_blob("app", b"another namespace's blob").await;
    assert_eq!(digest, info.digest.to_string());
    let r = s.head(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::OK);
}
