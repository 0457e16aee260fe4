//! Hostile input: each class of bad request gets a clear error and leaves
//! nothing behind in the store.

use reqwest::StatusCode;
use store::content::IngestManager;

use crate::harness::*;

/// Blobs in the whole store, and ingestions in flight.
fn store_counts(s: &Server) -> (usize, usize) {
    let mut blobs = 0;
    store::content::Manager::walk(s.store.content(), &mut |_| {
        blobs += 1;
        Ok(())
    })
    .expect("walk");
    (blobs, s.store.content().ingests().expect("ingests").len())
}

#[tokio::test]
async fn path_tricks_in_names_are_refused() {
    let s = Server::start().await;
    let before = store_counts(&s);
    for path in [
        "/v2/../../etc/passwd/manifests/latest",
        "/v2/a/../b/manifests/latest",
        "/v2/%2e%2e/manifests/latest",
        "/v2/a%2fb/manifests/latest",
        "/v2//a/manifests/latest",
        "/v2/a//b/tags/list",
        "/v2/./a/blobs/uploads/",
        "/v2/UPPER/manifests/latest",
        "/v2/a/manifests/..",
        "/v2/a/manifests/%2e%2e",
    ] {
        let answer = raw(
            s.addr,
            format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").as_bytes(),
        )
        .await;
        let status_line = answer.lines().next().unwrap_or_default().to_owned();
        assert!(
            status_line.contains(" 400 ") || status_line.contains(" 404 "),
            "{path}: {status_line}"
        );
        assert!(
            answer.contains("NAME_INVALID")
                || answer.contains("MANIFEST_INVALID")
                || answer.contains("NAME_UNKNOWN"),
            "{path}: {answer}"
        );
    }
    let long = format!("/v2/{}/tags/list", "a".repeat(300));
    let r = s.get(&long).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "NAME_INVALID");
    // The repository a mount borrows from is a name like any other.
    let digest = format!("sha256:{}", "4".repeat(64));
    for from in ["../x", "a/../b", "UPPER", "%2e%2e"] {
        let r = s.mount("a", &digest, from).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{from}");
        assert_eq!(error_code(r).await, "NAME_INVALID", "{from}");
    }
    assert_eq!(store_counts(&s), before);
}

#[tokio::test]
async fn wrong_digests_store_nothing() {
    let s = Server::start().await;
    let before = store_counts(&s);
    for wrong in [
        format!("sha256:{}", "6".repeat(64)),
        format!("sha512:{}", "6".repeat(128)),
    ] {
        // Single POST.
        let r = s
            .client
            .post(s.at(&format!("/v2/app/blobs/uploads/?digest={wrong}")))
            .body(b"some bytes".to_vec())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        // POST, PATCH, then PUT with the wrong digest: the upload is discarded.
        let r = s.post("/v2/app/blobs/uploads/").await;
        let loc = r.headers()["Location"].to_str().expect("loc").to_owned();
        s.client
            .patch(s.at(&loc))
            .body(b"chunk".to_vec())
            .send()
            .await
            .expect("patch");
        let r = s.put(&format!("{loc}?digest={wrong}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
        let r = s
            .client
            .patch(s.at(&loc))
            .body(b"more".to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    }
    // Malformed digests and upload ids.
    for bad in ["sha256:xyz", "sha512:00", "nodigest"] {
        let r = s
            .client
            .post(s.at(&format!("/v2/app/blobs/uploads/?digest={bad}")))
            .body(b"x".to_vec())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
    }
    for uuid in [
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "..%2f..",
    ] {
        let r = s
            .client
            .patch(s.at(&format!("/v2/app/blobs/uploads/{uuid}")))
            .body(b"x".to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uuid}");
    }
    let r = s.put("/v2/app/blobs/uploads/nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(store_counts(&s), before);
}

#[tokio::test]
async fn a_truncated_upload_never_becomes_a_blob() {
    let s = Server::start().await;
    let before = store_counts(&s);
    let data = vec![7u8; 10_000];
    let digest = digest_of(&data);
    let mut request = format!(
        "POST /v2/app/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(&data[..4000]);
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(s.addr)
            .await
            .expect("connect");
        stream.write_all(&request).await.expect("write");
        stream.shutdown().await.expect("shutdown");
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
    }
    // The server has seen the connection end; the blob is not there.
    let r = s.head(&format!("/v2/app/blobs/{digest}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!s.store.blob_exists(&digest.parse().expect("digest")));
    assert_eq!(store_counts(&s), before);
}

#[tokio::test]
async fn huge_manifests_are_refused() {
    let s = Server::start().await;
    let before = store_counts(&s);
    let padding = "x".repeat(5 << 20);
    let huge = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","annotations":{{"pad":"{padding}"}}}}"#
    );
    let r = s
        .put_manifest("app", "big", OCI_MANIFEST, huge.as_bytes())
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures_util::stream::iter(
        huge.into_bytes()
            .chunks(1 << 20)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = s
        .client
        .put(s.at("/v2/app/manifests/big"))
        .header("Content-Type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(store_counts(&s), before);
}

#[tokio::test]
async fn read_only_registries_refuse_writes() {
    let s = Server::start_with(|c| registry::Config {
        read_only: true,
        ..c
    })
    .await;
    let r = s.post("/v2/app/blobs/uploads/").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
    let r = s.put_manifest("app", "v1", OCI_MANIFEST, b"{}").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Each class of bad digest gets the spec's `400 DIGEST_INVALID` on every
/// endpoint that takes a digest; a well-formed sha512 digest that names
/// nothing is simply unknown.
#[tokio::test]
async fn every_class_of_bad_digest_is_digest_invalid_everywhere() {
    let s = Server::start().await;
    let (_, manifest) = s.push_image("app", "v1", "a layer").await;
    let upload = s.post("/v2/app/blobs/uploads/").await;
    let loc = upload.headers()["Location"]
        .to_str()
        .expect("loc")
        .to_owned();
    let before = store_counts(&s);
    let hex128 = "ab".repeat(64);
    let classes = [
        ("unknown algorithm", format!("md5:{}", "0".repeat(32))),
        (
            "unregistered algorithm",
            format!("sha384:{}", "0".repeat(96)),
        ),
        ("malformed algorithm", format!("SHA256:{}", "0".repeat(64))),
        (
            "separator without component",
            format!("sha+:{}", "0".repeat(64)),
        ),
        (
            "sha512 with 64 digits",
            format!("sha512:{}", "0".repeat(64)),
        ),
        ("sha256 with 128 digits", format!("sha256:{hex128}")),
        (
            "upper-case hex",
            format!("sha512:{}", hex128.to_uppercase()),
        ),
        ("not hex", format!("sha512:{}", "g".repeat(128))),
        ("empty hex", "sha512:".to_owned()),
        ("no algorithm", format!(":{hex128}")),
    ];
    for (class, bad) in &classes {
        let bad = bad.as_str();
        let answers = [
            ("GET blob", s.get(&format!("/v2/app/blobs/{bad}")).await),
            (
                "DELETE blob",
                s.delete(&format!("/v2/app/blobs/{bad}")).await,
            ),
            (
                "POST ?digest",
                s.client
                    .post(s.at(&format!("/v2/app/blobs/uploads/?digest={bad}")))
                    .body(b"x".to_vec())
                    .send()
                    .await
                    .expect("post"),
            ),
            (
                "POST ?mount",
                s.post(&format!("/v2/app/blobs/uploads/?mount={bad}&from=app"))
                    .await,
            ),
            ("PUT ?digest", s.put(&format!("{loc}?digest={bad}")).await),
            (
                "GET manifest",
                s.get_accepting(&format!("/v2/app/manifests/{bad}"), OCI_MANIFEST)
                    .await,
            ),
            (
                "PUT manifest",
                s.put_manifest("app", bad, OCI_MANIFEST, b"{}").await,
            ),
            (
                "DELETE manifest",
                s.delete(&format!("/v2/app/manifests/{bad}")).await,
            ),
            (
                "referrers",
                s.get(&format!("/v2/app/referrers/{bad}")).await,
            ),
        ];
        for (endpoint, r) in answers {
            assert_eq!(
                r.status(),
                StatusCode::BAD_REQUEST,
                "{class} {bad}: {endpoint}"
            );
            assert_eq!(
                error_code(r).await,
                "DIGEST_INVALID",
                "{class} {bad}: {endpoint}"
            );
        }
        let r = s.head(&format!("/v2/app/blobs/{bad}")).await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{class} {bad}: HEAD blob"
        );
    }
    for algorithm in ["md5", "SHA512", "sha384", ""] {
        let r = s
            .post(&format!(
                "/v2/app/blobs/uploads/?digest-algorithm={algorithm}"
            ))
            .await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "digest-algorithm={algorithm}"
        );
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
    }
    // The upload whose PUTs were refused is still there, and empty.
    let r = s.get(&loc).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // A sha512 digest that does not match the bytes.
    let mismatch = format!("sha512:{hex128}");
    let r = s.put_manifest("app", &mismatch, OCI_MANIFEST, b"{}").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    // Well-formed and absent: unknown, not invalid.
    let r = s.get(&format!("/v2/app/blobs/{mismatch}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    let r = s.get(&format!("/v2/app/manifests/{mismatch}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    assert_eq!(store_counts(&s), before);
    let r = s
        .get_accepting(&format!("/v2/app/manifests/{manifest}"), OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
